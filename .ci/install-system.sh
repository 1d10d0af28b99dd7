#!/usr/bin/env bash
# Installs the Debian packages the tests need: Chromium (browser tests) and a software Vulkan driver (Mesa's
# lavapipe, from bookworm-backports: Debian 12's own is too old for Dawn) so the WebGPU backend has an adapter.
# The backports entry is derived from the machine's own Debian source list rather than naming an archive here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
  echo "install-system.sh: run as root (apt-get)" >&2
  exit 1
fi
sources=/etc/apt/sources.list.d/debian.sources
backports=/etc/apt/sources.list.d/lrnet-backports.sources
if [ -f "$sources" ] && [ ! -f "$backports" ]; then
  # Take the first stanza (the main archive) and point it at bookworm-backports.
  awk 'BEGIN{RS=""; ORS="\n\n"} NR==1' "$sources" | sed -E 's/^Suites:.*/Suites: bookworm-backports/' > "$backports"
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium libvulkan1 >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers >/dev/null || \
  echo "install-system.sh: mesa-vulkan-drivers from backports failed; WebGPU tests will report no adapter" >&2

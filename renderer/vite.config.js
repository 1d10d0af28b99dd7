// Builds the Svelte UI into renderer/dist. `base: './'` keeps asset URLs relative, so the same build loads from
// the headless host (http://127.0.0.1:PORT/) and from the Electron window's app:// protocol.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [svelte()],
  build: {
    sourcemap: true,
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 800,
  },
});

/**
 * Run ids: 8 characters of lower-case Crockford base32 (40 random bits). Short enough to type and to put in a URL or
 * a file name, and like git hashes they can be abbreviated to any unique prefix.
 */
import { randomBytes } from 'node:crypto';

/** Crockford's base32 alphabet without I, L, O, U: no look-alike characters, nothing to escape in URLs or paths. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** Length of a full run id. */
export const RUN_ID_LENGTH = 8;

/** A fresh random run id (collisions are handled by the caller retrying the insert). */
export function newRunId(): string {
  const bytes = randomBytes(5);
  // 40 bits -> eight 5-bit groups, most significant first.
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let id = '';
  for (let i = RUN_ID_LENGTH - 1; i >= 0; i--) id += ALPHABET[Number((bits >> BigInt(i * 5)) & 31n)];
  return id;
}

/**
 * The canonical form of what a person typed as a run id or prefix, or undefined when it cannot match any id.
 * Crockford base32 is case-insensitive, so upper case is accepted.
 */
export function normalizeIdPrefix(input: string): string | undefined {
  const s = input.trim().toLowerCase();
  if (s.length === 0 || s.length > RUN_ID_LENGTH) return undefined;
  for (const ch of s) if (!ALPHABET.includes(ch)) return undefined;
  return s;
}

/** A downloaded file checked against its publisher's checksums (md5 of the file, or of its gunzipped content). */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import type { PublishedFile } from './catalog.ts';

/** How a file's checksum was confirmed. */
export type VerifiedBy = 'md5' | 'inflated-md5';

export interface VerifiedFile {
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
  /** md5 of the file as stored. */
  readonly md5: string;
  /** md5 of the gunzipped content, when the catalogue has a published one to compare with. */
  readonly inflatedMd5?: string;
  readonly verifiedBy: readonly VerifiedBy[];
}

/** md5 (hex) of a file, streamed. */
export async function md5OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/** md5 (hex) of a gzip file's inflated content, streamed; throws when the data does not inflate. */
export async function md5OfInflated(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  await pipeline(fs.createReadStream(file), zlib.createGunzip(), hash);
  return hash.digest('hex');
}

export type Verification =
  | { readonly ok: true; readonly file: VerifiedFile }
  | { readonly ok: false; readonly md5: string; readonly inflatedMd5?: string; readonly problem: string };

/**
 * Checks a file against its published checksums. Accepted when its md5 is the published one, or, for files whose
 * uncompressed md5 is published (MNIST), when its content inflates to exactly the published data (a mirror may
 * re-compress). Where both are known both are checked, and a contradiction is refused.
 */
export async function verifyFile(file: string, spec: PublishedFile, onHashing?: () => void): Promise<Verification> {
  onHashing?.();
  const st = await fsp.stat(file);
  const md5 = await md5OfFile(file);
  let inflatedMd5: string | undefined;
  let inflateProblem: string | undefined;
  if (spec.inflatedMd5 !== undefined) {
    try {
      inflatedMd5 = await md5OfInflated(file);
    } catch (err) {
      inflateProblem = `it does not gunzip (${(err as Error).message})`;
    }
  }
  const md5Ok = md5 === spec.md5;
  const inflatedOk = inflatedMd5 !== undefined && inflatedMd5 === spec.inflatedMd5;
  const verifiedBy: VerifiedBy[] = [];
  if (md5Ok) verifiedBy.push('md5');
  if (inflatedOk) verifiedBy.push('inflated-md5');
  const contradiction = md5Ok && spec.inflatedMd5 !== undefined && !inflatedOk;
  if (verifiedBy.length > 0 && !contradiction) {
    return {
      ok: true,
      file: { name: spec.name, path: file, bytes: st.size, md5, ...(inflatedMd5 !== undefined ? { inflatedMd5 } : {}), verifiedBy },
    };
  }
  let problem = `its md5 is ${md5}, the published md5 is ${spec.md5}`;
  if (spec.inflatedMd5 !== undefined) {
    problem += inflateProblem !== undefined ? `, and ${inflateProblem}` : `, and its uncompressed content has md5 ${inflatedMd5}, not the published ${spec.inflatedMd5}`;
  }
  return { ok: false, md5, ...(inflatedMd5 !== undefined ? { inflatedMd5 } : {}), problem };
}

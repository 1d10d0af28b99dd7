/** Flattening configs into dotted paths and finding the paths on which runs disagree. */
import type { DiffRow, JsonValue } from './types.ts';

/**
 * Flattens nested objects into dotted paths: { optim: { lr: 0.1 } } -> { "optim.lr": 0.1 }. Arrays are leaves
 * (compared whole): layer lists read better as one value than as "layers.3", and differently long arrays would
 * otherwise show up as a cascade of missing indices. An empty object is a leaf too, so it is not lost.
 */
export function flattenConfig(value: JsonValue, prefix = '', out: Map<string, JsonValue> = new Map()): Map<string, JsonValue> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, value);
  }
  return out;
}

/** JSON with object keys sorted, so that equal values compare equal whatever their key order. */
export function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The keys whose values are not the same in every run (a key some runs lack counts as differing), sorted by key.
 * `flat` holds each run's flattened fields, keyed by run id.
 */
export function diffFlattened(flat: ReadonlyMap<string, ReadonlyMap<string, JsonValue>>): DiffRow[] {
  const keys = new Set<string>();
  for (const fields of flat.values()) for (const k of fields.keys()) keys.add(k);
  const rows: DiffRow[] = [];
  for (const key of [...keys].sort()) {
    const values: Record<string, JsonValue> = {};
    const seen = new Set<string>();
    let missing = false;
    for (const [runId, fields] of flat) {
      if (!fields.has(key)) {
        missing = true;
        continue;
      }
      const v = fields.get(key)!;
      values[runId] = v;
      seen.add(canonicalJson(v));
    }
    if (missing || seen.size > 1) rows.push({ key, values });
  }
  return rows;
}

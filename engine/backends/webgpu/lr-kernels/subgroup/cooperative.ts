/**
 * Subgroup variants. On llvmpipe (Mesa 25.0) every storage-buffer load is issued lane by lane, each with its own
 * bounds check, even when all lanes read the same address; the plain kernels (../plain/) spend most of their time there
 * loading weights that are the same for every lane. With subgroups, the lanes of a subgroup load *different*
 * weight vec4s and pass them around with subgroupBroadcast (a register shuffle), so one per-lane load brings in
 * `subgroupSize` useful values instead of one. The input rows are also loaded once per row window instead of once
 * per filter tap.
 */
/** Loads `count` uniform vec4s cooperatively: returns the per-lane load lines and an accessor for item t. */
export function cooperative(name: string, count: number, sg: number, index: (t: string) => string, buffers: readonly string[]): {
  setup: string[];
  load: string[];
  item: (buffer: string, t: number) => string;
} {
  const rounds = Math.ceil(count / sg);
  const setup: string[] = [];
  const load: string[] = [];
  for (let r = 0; r < rounds; r++) {
    setup.push(`let ${name}t${r} = min(i32(sid) + ${r * sg}, ${count - 1});`);
    for (const b of buffers) load.push(`let ${name}${b}${r} = ${b}[${index(`${name}t${r}`)}];`);
  }
  return { setup, load, item: (b, t) => `subgroupBroadcast(${name}${b}${Math.floor(t / sg)}, ${t % sg}u)` };
}

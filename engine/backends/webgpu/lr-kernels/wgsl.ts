/**
 * WGSL pieces that the fused LR kernels (plain/ and subgroup/) share word for word: the entry point, the
 * accumulator declarations and the decoding of a lane's work item into a tile of pixels along one row.
 */

/**
 * The `@compute` entry point of a kernel whose workgroups are `lanes` wide along x, up to the lane's work item
 * index `item`; with `subgroups`, it also takes the lane's index in its subgroup (`sid`).
 */
export function entryPoint(lanes: number, subgroups: boolean): string {
  const subgroupId = subgroups ? ',\n        @builtin(subgroup_invocation_id) sid : u32' : '';
  return `@compute @workgroup_size(${lanes})
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>${subgroupId}) {
  let item = i32(wid.x) * ${lanes} + i32(lid.x);`;
}

/** Declarations of the register tile am{i}_{j} (mean path) and av{i}_{j} (variance path), all `zero`. */
export function accumulators(rows: number, cols: number, zero: string): string[] {
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) lines.push(`var am${i}_${j} = ${zero}; var av${i}_${j} = ${zero};`);
  return lines;
}

/** A tiling of [n, height, width] pixels into tiles of `pixels` adjacent pixels along the width, one per lane. */
export interface RowTiling {
  readonly items: number;
  readonly tilesPerRow: number;
  readonly height: number;
  readonly width: number;
  readonly pixels: number;
  /** WGSL names of the lane's tile within its row and of its row (the forward pass walks output pixels, the input gradient input pixels). */
  readonly tile: string;
  readonly row: string;
}

/** Decodes `item` into image `n`, row and tile, `live` (not a padding lane) and the first pixel of the tile. */
export function rowTileIndex(r: RowTiling): string {
  return `  let live = item < ${r.items};
  let ic = min(item, ${r.items - 1});
  let ${r.tile} = ic % ${r.tilesPerRow};
  let t = ic / ${r.tilesPerRow};
  let ${r.row} = t % ${r.height};
  let n = t / ${r.height};
  let pixelBase = t * ${r.width} + ${r.tile} * ${r.pixels};`;
}

/**
 * WGSL for the fused LR layer (LRNETS.md section 2) as direct convolutions; a dense layer is the 1x1 convolution
 * of a [1, 1, batch, inputs] (or [batch, 1, 1, inputs]) tensor. Shapes are baked into each shader (one pipeline
 * per layer shape), so index arithmetic folds and register tiles unroll.
 *
 * - forward: m = conv(x, mu), v = conv(x^2, var) from the same loads of x, eps from Philox by output index,
 *   z = m + sqrt(v + 1e-3) * eps, and g = 0.5 * eps / sqrt(v + 1e-3) for the backward pass (dL/dv = dL/dz * g).
 * - backprop input: dx = convT(dz, mu) + 2x * convT(dz * g, var) in one pass.
 * - backprop filter: dmu = corr(x, dz), dvar = corr(x^2, dz * g) from the same loads of x, split over images
 *   into partial sums (added by one more small pass) when one pass would not fill the machine.
 *
 * Layout: invocations (lanes) walk the large dimension (output pixels, input pixels, filter rows) with a register
 * tile of several pixels x channels each, for both the mean and the variance path; the workgroup's y index picks
 * a block of channels, so the weights (or output gradients) a lane needs next are the same for every lane.
 *
 * What the tuning found on lavapipe (Mesa 25.0 llvmpipe, which runs a workgroup on one CPU thread, 8 lanes per
 * SIMD vector): every storage-buffer load is issued lane by lane with its own bounds check, even when all lanes
 * read the same address, so loads cost ~10x an FMA and the kernels are load-bound. Hence (1) register tiles as wide
 * as the compile time allows, (2) the subgroup variants (subgroup/), where the 8 lanes load 8
 * different weight vec4s once and share them with subgroupBroadcast, and input rows are loaded once per window
 * rather than once per filter tap, (3) products summed in temporaries before the one update per accumulator and
 * iteration (an assignment inside a loop costs a masked blend per component), (4) workgroup sizes that leave no
 * idle padding lanes (they run at full cost). The plain variants (plain/) stay for devices without
 * subgroups. Each kernel family is one file per variant; this index re-exports them all.
 */
export { LR_VARIANCE_EPSILON, type ConvGeometry, sameConvGeometry, denseGeometry, lanesFor, pixelsPerLane, pixelsPerLaneWide } from './geometry.ts';
export * from './plain/forward.ts';
export * from './plain/backprop-input.ts';
export * from './plain/backprop-filter.ts';
export * from './subgroup/forward.ts';
export * from './subgroup/backprop-input.ts';
export * from './subgroup/backprop-filter.ts';
export { philoxNormalProgram } from './philox-normal.ts';
export { sumPartialsProgram } from './sum-partials.ts';

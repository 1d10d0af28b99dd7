/**
 * A chart as a standalone SVG document (for papers and slides): the same series as on screen, drawn as polylines
 * with axes, ticks and a legend. Built from the data rather than from the canvas, so it stays vector.
 */
import { extent } from './series.ts';

export interface SvgSeries {
  readonly label: string;
  readonly color: string;
  readonly xs: readonly (number | null)[];
  readonly ys: readonly (number | null)[];
}

export interface SvgChart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly SvgSeries[];
  readonly width?: number;
  readonly height?: number;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** About `n` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

export function chartSvg(chart: SvgChart): string {
  const width = chart.width ?? 800;
  const height = chart.height ?? 420;
  const legendRows = Math.ceil(chart.series.length / 3);
  const m = { left: 64, right: 16, top: 36, bottom: 48 + legendRows * 18 };
  const xr = extent(chart.series.flatMap((s) => s.xs)) ?? [0, 1];
  const yr = extent(chart.series.flatMap((s) => s.ys)) ?? [0, 1];
  if (xr[0] === xr[1]) xr[1] = xr[0] + 1;
  if (yr[0] === yr[1]) yr[1] = yr[0] + 1;
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const sx = (x: number) => m.left + ((x - xr[0]) / (xr[1] - xr[0])) * pw;
  const sy = (y: number) => m.top + ph - ((y - yr[0]) / (yr[1] - yr[0])) * ph;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Inter, system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${m.left}" y="22" font-size="14" font-weight="600" fill="#111827">${esc(chart.title)}</text>`,
  ];
  for (const t of ticks(yr[0], yr[1])) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#e5e7eb"/>`, `<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#6b7280">${t}</text>`);
  }
  for (const t of ticks(xr[0], xr[1], 8)) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + ph}" stroke="#f3f4f6"/>`, `<text x="${x}" y="${m.top + ph + 16}" text-anchor="middle" fill="#6b7280">${t}</text>`);
  }
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#d1d5db"/>`,
    `<text x="${m.left + pw / 2}" y="${m.top + ph + 34}" text-anchor="middle" fill="#374151">${esc(chart.xLabel)}</text>`,
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#374151">${esc(chart.yLabel)}</text>`,
  );
  for (const s of chart.series) {
    // A null breaks the line, as on screen.
    let d = '';
    let pen = false;
    for (let i = 0; i < s.xs.length; i++) {
      const x = s.xs[i], y = s.ys[i];
      if (x === null || y === null || x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${sx(x).toFixed(1)} ${sy(y).toFixed(1)}`;
      pen = true;
    }
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${esc(s.color)}" stroke-width="1.5" stroke-linejoin="round"/>`);
  }
  chart.series.forEach((s, i) => {
    const x = m.left + (i % 3) * (pw / 3);
    const y = height - legendRows * 18 + Math.floor(i / 3) * 18 - 4;
    parts.push(`<rect x="${x}" y="${y - 9}" width="12" height="3" fill="${esc(s.color)}"/>`, `<text x="${x + 18}" y="${y - 5}" dominant-baseline="middle" fill="#374151">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

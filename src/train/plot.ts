// The loss curve as a hand-written SVG: training loss per step (a line) and validation loss (a
// line with dots) against the step, with labelled axes and a legend. No dependencies; the picture
// is redrawn from the whole history at every checkpoint.

import type { LossHistory } from './checkpoint.ts';

const W = 640;
const H = 400;
const M = { left: 60, right: 20, top: 20, bottom: 45 };

/** Round tick values covering [lo, hi]: about `count` of them, at 1, 2 or 5 × 10^k. */
function ticks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

export function lossSvg(history: LossHistory): string {
  const points = [...history.train, ...history.val];
  const finite = points.filter((p) => Number.isFinite(p.loss));
  const steps = points.map((p) => p.step);
  const x0 = Math.min(0, ...steps);
  const x1 = Math.max(x0 + 1, ...steps);
  let y0 = Math.min(...finite.map((p) => p.loss), Number.POSITIVE_INFINITY);
  let y1 = Math.max(...finite.map((p) => p.loss), Number.NEGATIVE_INFINITY);
  if (!(y0 <= y1)) [y0, y1] = [0, 1];
  if (y1 - y0 < 1e-6) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (s: number) => M.left + ((s - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (v: number) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const f = (v: number) => v.toFixed(1);
  const line = (ps: Array<{ step: number; loss: number }>) =>
    ps
      .filter((p) => Number.isFinite(p.loss))
      .map((p) => `${f(px(p.step))},${f(py(p.loss))}`)
      .join(' ');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  for (const t of ticks(x0, x1, 6)) {
    parts.push(
      `<line x1="${f(px(t))}" y1="${M.top}" x2="${f(px(t))}" y2="${H - M.bottom}" stroke="#eee"/>`,
      `<text x="${f(px(t))}" y="${H - M.bottom + 16}" text-anchor="middle">${t}</text>`,
    );
  }
  for (const t of ticks(y0, y1, 6)) {
    parts.push(
      `<line x1="${M.left}" y1="${f(py(t))}" x2="${W - M.right}" y2="${f(py(t))}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${f(py(t) + 4)}" text-anchor="end">${t}</text>`,
    );
  }
  parts.push(
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#444"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 8}" text-anchor="middle">step</text>`,
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`,
    `<polyline points="${line(history.train)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`,
    `<polyline points="${line(history.val)}" fill="none" stroke="#d62728" stroke-width="1.5"/>`,
    ...history.val
      .filter((p) => Number.isFinite(p.loss))
      .map((p) => `<circle cx="${f(px(p.step))}" cy="${f(py(p.loss))}" r="3" fill="#d62728"/>`),
    `<line x1="${W - 150}" y1="${M.top + 15}" x2="${W - 125}" y2="${M.top + 15}" stroke="#1f77b4" stroke-width="2"/>`,
    `<text x="${W - 120}" y="${M.top + 19}">train</text>`,
    `<line x1="${W - 150}" y1="${M.top + 33}" x2="${W - 125}" y2="${M.top + 33}" stroke="#d62728" stroke-width="2"/>`,
    `<text x="${W - 120}" y="${M.top + 37}">validation</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}

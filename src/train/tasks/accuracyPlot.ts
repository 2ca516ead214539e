// Accuracy against test length as a hand-written SVG (the synthetic tasks' table as a picture):
// one line with dots per model (S6, S4D), the x axis in powers of two of the test length, the y
// axis 0–100%, and chance as a dashed line. No dependencies, like the loss curve (../plot.ts).

import type { ExperimentResult } from './experiment.ts';

const W = 640;
const H = 400;
const M = { left: 60, right: 20, top: 30, bottom: 45 };
const COLORS: Record<string, string> = { s6: '#1f77b4', s4d: '#d62728' };

export function accuracySvg(title: string, results: readonly ExperimentResult[], chance: number): string {
  const exps = [...new Set(results.flatMap((r) => r.accuracy.map((a) => Math.log2(a.length))))].sort(
    (a, b) => a - b,
  );
  const [x0, x1] = exps.length > 1 ? [exps[0], exps[exps.length - 1]] : [exps[0] - 1, exps[0] + 1];
  const px = (e: number) => M.left + ((e - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (a: number) => H - M.bottom - a * (H - M.top - M.bottom);
  const f = (v: number) => v.toFixed(1);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle">${title}</text>`,
  ];
  for (let a = 0; a <= 1.0001; a += 0.2) {
    parts.push(
      `<line x1="${M.left}" y1="${f(py(a))}" x2="${W - M.right}" y2="${f(py(a))}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${f(py(a) + 4)}" text-anchor="end">${Math.round(a * 100)}%</text>`,
    );
  }
  for (const e of exps) {
    parts.push(`<text x="${f(px(e))}" y="${H - M.bottom + 16}" text-anchor="middle">2^${e}</text>`);
  }
  parts.push(
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#444"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 8}" text-anchor="middle">test length</text>`,
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">accuracy</text>`,
    `<line x1="${M.left}" y1="${f(py(chance))}" x2="${W - M.right}" y2="${f(py(chance))}" stroke="#888" stroke-dasharray="4 4"/>`,
    `<text x="${W - M.right - 4}" y="${f(py(chance) - 4)}" text-anchor="end" fill="#888">chance</text>`,
  );
  results.forEach((r, i) => {
    const color = COLORS[r.layer] ?? '#444';
    const points = r.accuracy.map((a) => `${f(px(Math.log2(a.length)))},${f(py(a.accuracy))}`);
    parts.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    for (const p of points) {
      const [cx, cy] = p.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${color}"/>`);
    }
    const y = M.top + 15 + 18 * i;
    parts.push(
      `<line x1="${W - 170}" y1="${y}" x2="${W - 145}" y2="${y}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${W - 140}" y="${y + 4}">Mamba, ${r.layer === 's6' ? 'S6' : 'S4D'} layer</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

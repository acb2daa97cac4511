/**
 * A cost curve (curves.ts) as an SVG line chart: the work on a log-scale x axis,
 * one line per series, C's baselines in grey; no dependencies.
 */

export interface Series {
  /** What the ratios of its curve name it by. */
  key: string;
  name: string;
  /** One value per x; undefined: not measured there (C has no like-for-like program, or no C compiler). */
  values: Array<number | undefined>;
  baseline?: boolean;
  dashed?: boolean;
}

export interface Curve {
  id: string;
  title: string;
  x: { name: string; unit: string; values: number[]; label: (x: number) => string };
  unit: 'B/s' | 'msg/s' | 'us';
  yLog: boolean;
  series: Series[];
  /** Ratio columns of the table: series `of` over series `to` (their keys) at the same x, or (atFirst) at the first x. */
  ratios: Array<{ name: string; of: string; to: string; atFirst?: boolean }>;
  /** The x is a message size: tables show the message rate beside the byte rate. */
  perMessage?: boolean;
  /** Columns of the table that are not charted. */
  extra?: Array<{ name: string; unit: 'B/s' | 'msg/s' | 'us' | '%'; values: Array<number | undefined> }>;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS = ['#1f6fb5', '#d9822b', '#3a9d5d', '#8e44ad'];
const GREYS = ['#444', '#999'];

function tickLabel(v: number, unit: Curve['unit']): string {
  const si = (n: number) => (n >= 1e9 ? `${+(n / 1e9).toPrecision(3)} G` : n >= 1e6 ? `${+(n / 1e6).toPrecision(3)} M` : n >= 1e3 ? `${+(n / 1e3).toPrecision(3)} k` : `${+n.toPrecision(3)} `);
  if (unit === 'us') return v >= 1e6 ? `${+(v / 1e6).toPrecision(3)} s` : v >= 1000 ? `${+(v / 1000).toPrecision(3)} ms` : `${+v.toPrecision(3)} µs`;
  return `${si(v)}${unit === 'B/s' ? 'B/s' : 'msg/s'}`;
}

export function renderCurveSvg(curve: Curve, machine: string): string {
  const W = 860;
  const H = 520;
  const L = 100;
  const R = 30;
  const T = 70;
  const plotH = 300;
  const plotW = W - L - R;
  const xs = curve.x.values;
  const all = curve.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && v > 0));
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  let yTicks: number[];
  if (curve.yLog) {
    lo = 10 ** Math.floor(Math.log10(lo));
    hi = 10 ** Math.ceil(Math.log10(hi));
    yTicks = [];
    for (let t = lo; t <= hi * 1.001; t *= 10) yTicks.push(t);
  } else {
    lo = 0;
    const mag = 10 ** Math.floor(Math.log10(hi));
    const step = hi / mag >= 5 ? mag : hi / mag >= 2 ? mag / 2 : mag / 4;
    hi = Math.ceil(hi / step) * step;
    yTicks = [];
    for (let t = 0; t <= hi * 1.001; t += step) yTicks.push(t);
  }
  const xPos = (x: number) => L + ((Math.log(x) - Math.log(xs[0]!)) / (Math.log(xs[xs.length - 1]!) - Math.log(xs[0]!))) * plotW;
  const yPos = (y: number) =>
    T + plotH - (curve.yLog ? (Math.log(y) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (y - lo) / (hi - lo)) * plotH;

  const p: string[] = [];
  p.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  p.push('<rect width="100%" height="100%" fill="white"/>');
  p.push(`<text x="16" y="26" font-size="16" font-weight="bold">${esc(curve.title)}</text>`);
  p.push(`<text x="16" y="46" fill="#555">${esc(machine)}</text>`);
  // Grid and axes.
  for (const t of yTicks) {
    const y = yPos(t).toFixed(1);
    p.push(`<line x1="${L}" x2="${L + plotW}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    p.push(`<text x="${L - 6}" y="${(+y + 4).toFixed(1)}" text-anchor="end" fill="#333">${esc(tickLabel(t, curve.unit))}</text>`);
  }
  for (const x of xs) {
    const px = xPos(x).toFixed(1);
    p.push(`<line x1="${px}" x2="${px}" y1="${T}" y2="${T + plotH}" stroke="#eee"/>`);
    p.push(`<text x="${px}" y="${T + plotH + 18}" text-anchor="middle" fill="#333">${esc(curve.x.label(x))}</text>`);
  }
  p.push(`<rect x="${L}" y="${T}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  p.push(`<text x="${L + plotW / 2}" y="${T + plotH + 38}" text-anchor="middle">${esc(`${curve.x.name} (log scale)`)}</text>`);
  p.push(
    `<text transform="translate(18 ${T + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(`${curve.unit === 'us' ? 'round trip' : curve.unit}${curve.yLog ? ' (log scale)' : ''}`)}</text>`,
  );
  // Series.
  let colour = 0;
  let grey = 0;
  const legend: string[] = [];
  curve.series.forEach((s, k) => {
    const c = s.baseline ? GREYS[grey++ % GREYS.length]! : COLORS[colour++ % COLORS.length]!;
    const pts = s.values.map((v, i) => (v === undefined || v <= 0 ? undefined : [xPos(xs[i]!), yPos(v)] as const)).filter((q) => q !== undefined);
    if (pts.length > 1) {
      p.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`,
      );
    }
    for (const [x, y] of pts) {
      p.push(s.baseline ? `<rect x="${(x - 4).toFixed(1)}" y="${(y - 4).toFixed(1)}" width="8" height="8" fill="${c}"/>` : `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${c}"/>`);
    }
    const ly = T + plotH + 62 + Math.floor(k / 2) * 20;
    const lx = L + (k % 2) * (plotW / 2);
    legend.push(`<line x1="${lx}" x2="${lx + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`);
    legend.push(`<text x="${lx + 36}" y="${ly}">${esc(s.name)}</text>`);
  });
  p.push(...legend);
  p.push('</svg>');
  return `${p.join('\n')}\n`;
}

/** A chart of the bench targets a person can look at: one bar per ratio, the target as a line. */
interface Target {
  name: string;
  ratio: number | undefined;
  target: number;
  higher: boolean;
  met: boolean | undefined;
}

interface Results {
  machine: { cpu: string; cores: number; kernel: string; node: string; date: string };
  targets: Target[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderSvg(results: Results): string {
  const rowH = 34;
  const left = 380;
  const barW = 420;
  const top = 70;
  const height = top + results.targets.length * rowH + 40;
  const width = left + barW + 170;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="16" y="26" font-size="17" font-weight="bold">npipe benchmark: measured ratio against each target (same run)</text>`);
  const m = results.machine;
  parts.push(`<text x="16" y="48" fill="#555">${esc(`${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}, ${m.date.slice(0, 16).replace('T', ' ')} UTC`)}</text>`);
  results.targets.forEach((t, i) => {
    const y = top + i * rowH;
    // Scale each row to twice its target, so the target line sits in the middle.
    const scale = barW / (2 * t.target);
    const w = t.ratio === undefined ? 0 : Math.min(barW, t.ratio * scale);
    const color = t.met === undefined ? '#bbb' : t.met ? '#3a9d5d' : '#d0443e';
    parts.push(`<text x="16" y="${y + 20}">${esc(t.name)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 6}" width="${barW}" height="20" fill="#f2f2f2"/>`);
    parts.push(`<rect x="${left}" y="${y + 6}" width="${w.toFixed(1)}" height="20" fill="${color}"/>`);
    parts.push(`<line x1="${left + barW / 2}" x2="${left + barW / 2}" y1="${y + 2}" y2="${y + 30}" stroke="#222" stroke-dasharray="3,2"/>`);
    const label = t.ratio === undefined ? 'skipped' : `${t.ratio.toFixed(2)} (${t.higher ? '≥' : '≤'} ${t.target})`;
    parts.push(`<text x="${left + barW + 10}" y="${y + 20}">${esc(label)}</text>`);
  });
  parts.push(`<text x="16" y="${height - 14}" fill="#555">Bar: measured ratio; dashed line: target. Green: met; red: not met. Each row is scaled to twice its target.</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

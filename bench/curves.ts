/**
 * Cost curves (`npm run bench -- --curves`, and part of a full `npm run bench`):
 * how npipe's cost grows with the work, one point per size of work, with C beside
 * it where C has a like-for-like program (bench/c/fifo_bench.c):
 *
 *   curve-size     throughput against message size, 16 B ... 64 MiB (format length:
 *                  for-await, a new Buffer per message, and receiveInto one buffer),
 *                  against C's one write() per message into the same 256 KiB pipe;
 *   curve-writers  64 B messages (frames) from 1 ... 64 writer processes into one
 *                  reader, against C writers (68 B: the same bytes on the wire);
 *   curve-clients  request/reply round trip p50 and p99 (64 B) with 1 ... 64 client
 *                  processes against one server, against C ping-pong (1 client).
 *
 * One run per point (a curve is read by its shape; its neighbours show a wild point),
 * printed as tables with ratios to C, written to bench/results/ as curves.json, one
 * SVG per curve (curves-svg.ts) and curves.md, and (a run at full size) into
 * docs/PERFORMANCE.md between its bench:curves markers.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { renderCurveSvg, type Curve } from './curves-svg.js';
import { percentile } from './round-trips.js';

/** A process the bench started (run.ts `run`). */
interface Proc {
  ready: Promise<void>;
  done: Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): void;
  go(): void;
}

/** What run.ts lends the curves: its process starter, FIFOs, the C program it compiled, CPU pinning. */
export interface CurveContext {
  run(command: string, args: string[], options?: { go?: boolean; cpu?: number }): Proc;
  workers: string;
  freshFifo(): Promise<string>;
  cBin: string | undefined;
  canPin: boolean;
  clientCpu: number;
  serverCpu: number;
  /** 0.1 with --quick: smaller counts, results written as curves-quick.*. */
  scale: number;
  repoRoot: string;
}

/** The curves, by id (docs/PROMISES.md names them as `bench: "<id>"`; `run.js --list` lists them). */
export const CURVES = [
  { id: 'curve-size', title: 'Throughput against message size (format length, one writer, one reader)' },
  { id: 'curve-writers', title: 'Throughput against writer processes into one reader (64 B, frames)' },
  { id: 'curve-clients', title: 'Request/reply round trip against client processes (64 B, one server)' },
] as const;
type CurveId = (typeof CURVES)[number]['id'];

export const SIZES = [16, 256, 4096, 65536, 1 << 20, 16 << 20, 64 << 20];
export const WRITERS = [1, 2, 4, 8, 16, 32, 64];
export const CLIENTS = [1, 2, 4, 8, 16, 32, 64];
/** The pipe both sides of the size curve use: npipe's receivers' default (DEFAULT_RECEIVER_PIPE_SIZE). */
const PIPE = 256 * 1024;

const sizeName = (b: number) => (b >= 1 << 20 ? `${b / 2 ** 20} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`);
const rss: number[] = [];

/** A reader's steady rate (after its first tenth, as the rows of run.ts), per `key`. */
function steady(r: Record<string, unknown>, key: 'count' | 'bytes', per = 1): number {
  const total = (r[key] as number) / per;
  const warm = (r[key === 'count' ? 'warmCount' : 'warmBytes'] as number) / per;
  return (total - warm) / ((r.seconds as number) - (r.warmSeconds as number));
}

/** /proc/stat's CPU time counters, all CPUs together: idle (idle + iowait) and total. */
function cpuTimes(): { idle: number; total: number } | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) };
}

/** The share of the machine's CPU time that was busy (any process) from `from` to `to` seconds from now, in %. */
async function cpuBusyOver(from: number, to: number): Promise<number | undefined> {
  await new Promise((resolve) => setTimeout(resolve, from * 1000));
  const a = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, (to - from) * 1000));
  const b = cpuTimes();
  if (!a || !b || b.total === a.total) return undefined;
  return 100 * (1 - (b.idle - a.idle) / (b.total - a.total));
}

export async function runCurves(ctx: CurveContext): Promise<void> {
  const Q = ctx.scale;
  const worker = (role: string, args: (string | number)[], options: { go?: boolean; cpu?: number } = {}) =>
    ctx.run(process.execPath, [ctx.workers, role, ...args.map(String)], options);
  const started = Date.now();
  const curves: Curve[] = [];

  // --- Size --------------------------------------------------------------------
  // 256 MiB, or at most 500 k messages, and at least 6: 0.3-2.5 s a point here.
  const sizeCount = (size: number) => Math.max(6, Math.min(Math.round(5e5 * Q), Math.ceil((256 * 2 ** 20 * Q) / size)));
  console.log(`\nCost curve: ${CURVES[0].title}; both sides a ${PIPE / 1024} KiB pipe`);
  console.log('  C: one write() per message, reads of up to 256 KiB (bytes, no framing); rates after the first tenth');
  const npipeSize = async (size: number, into: boolean) => {
    const path = await ctx.freshFifo();
    const count = sizeCount(size);
    const reader = worker('npipe-recv', [path, count, 'length', 0, into ? size : 0]);
    await reader.ready;
    const writer = worker('npipe-send', [path, count, size, 'length']);
    const [r, w] = await Promise.all([reader.done, writer.done]);
    rss.push(r.rss as number, w.rss as number);
    if (r.count !== count) throw new Error(`size ${size}: ${String(r.count)} of ${count} messages`);
    return steady(r, 'bytes');
  };
  const cSize = async (size: number) => {
    const path = await ctx.freshFifo();
    const count = sizeCount(size);
    const reader = ctx.run(ctx.cBin!, ['read', path, String(PIPE), String(size * count)]);
    const writer = ctx.run(ctx.cBin!, ['write', path, String(size), String(count), String(PIPE)]);
    const [r] = await Promise.all([reader.done, writer.done]);
    return steady(r, 'bytes');
  };
  const size: Curve = {
    id: CURVES[0].id,
    title: CURVES[0].title,
    x: { name: 'message size', unit: 'bytes', values: SIZES, label: sizeName },
    unit: 'B/s',
    yLog: true,
    series: [
      { key: 'npipe-for-await', name: 'npipe, for-await (a new Buffer each)', values: [] },
      { key: 'npipe-into', name: 'npipe, receiveInto one buffer', values: [] },
      { key: 'c', name: 'C, one write() per message', values: [], baseline: true },
    ],
    ratios: [
      { name: 'for-await / C', of: 'npipe-for-await', to: 'c' },
      { name: 'into / C', of: 'npipe-into', to: 'c' },
    ],
    perMessage: true,
  };
  for (const s of SIZES) {
    // Measured in turns at each size, so all three sample the same stretch of time.
    size.series[0]!.values.push(await npipeSize(s, false));
    size.series[1]!.values.push(await npipeSize(s, true));
    size.series[2]!.values.push(ctx.cBin ? await cSize(s) : undefined);
    printPoint(size, size.series[0]!.values.length - 1);
  }
  curves.push(size);

  // --- Writers -----------------------------------------------------------------
  const total = Math.round(1e6 * Q);
  console.log(`\nCost curve: ${CURVES[1].title}; ${total} messages per point, shared among the writers`);
  console.log('  writers start together once all are up (start-up not timed); C: 68 B writes (64 B + the frame header), one write() each');
  const npipeWriters = async (n: number) => {
    const path = await ctx.freshFifo();
    const per = Math.round(total / n);
    const reader = worker('npipe-recv', [path, per * n, 'frames']);
    await reader.ready;
    const senders = Array.from({ length: n }, () => worker('npipe-send', [path, per, 64, 'frames', '--wait-go'], { go: true }));
    await Promise.all(senders.map((s) => s.ready));
    for (const s of senders) s.go();
    const [r, ...w] = await Promise.all([reader.done, ...senders.map((s) => s.done)]);
    rss.push(r.rss as number, ...w.map((x) => x.rss as number));
    if (r.count !== per * n) throw new Error(`${n} writers: messages lost`);
    return steady(r, 'count');
  };
  const cWriters = async (n: number) => {
    const path = await ctx.freshFifo();
    const per = Math.round(total / n);
    const reader = ctx.run(ctx.cBin!, ['read', path, String(PIPE), String(68 * per * n), 'hold']);
    const writers = Array.from({ length: n }, () => ctx.run(ctx.cBin!, ['write', path, '68', String(per), String(PIPE)]));
    const [r] = await Promise.all([reader.done, ...writers.map((w) => w.done)]);
    return steady(r, 'bytes', 68);
  };
  const writers: Curve = {
    id: CURVES[1].id,
    title: CURVES[1].title,
    x: { name: 'writer processes', unit: 'processes', values: WRITERS, label: String },
    unit: 'msg/s',
    yLog: false,
    series: [
      { key: 'npipe', name: 'npipe frames, 64 B', values: [] },
      { key: 'c', name: 'C writers, 68 B, one write() each', values: [], baseline: true },
    ],
    ratios: [
      { name: 'npipe / C (same writers)', of: 'npipe', to: 'c' },
      { name: 'npipe / C (1 writer)', of: 'npipe', to: 'c', atFirst: true },
    ],
  };
  for (const n of WRITERS) {
    writers.series[0]!.values.push(await npipeWriters(n));
    writers.series[1]!.values.push(ctx.cBin ? await cWriters(n) : undefined);
    printPoint(writers, writers.series[0]!.values.length - 1);
  }
  curves.push(writers);

  // --- Clients -----------------------------------------------------------------
  const seconds = Q < 1 ? 0.5 : 1.5;
  // One client: pinned as the request/reply rows of run.ts and C's ping-pong are, so that
  // this point is theirs; several: not pinned (as the 8-client row), the kernel spreads them.
  const pinned = ctx.canPin ? `1 client: client on CPU ${ctx.clientCpu}, server on CPU ${ctx.serverCpu} (taskset), as C; more: not pinned` : 'not pinned (no taskset, or one CPU)';
  console.log(`\nCost curve: ${CURVES[2].title}; ${pinned}`);
  console.log(`  each client: requests back to back for ${seconds} s, all at once, the first fifth not recorded; percentiles over every client's requests`);
  const clientsAt = async (n: number) => {
    const path = await ctx.freshFifo();
    const one = n === 1;
    const server = worker('rpc-serve', [path, 0], one ? { cpu: ctx.serverCpu } : {});
    await server.ready;
    const clients = Array.from({ length: n }, () => worker('rpc-client-timed', [path, seconds, 64], one ? { go: true, cpu: ctx.clientCpu } : { go: true }));
    await Promise.all(clients.map((c) => c.ready));
    for (const c of clients) c.go();
    // How busy the machine's CPUs are while the clients' requests are recorded (after
    // their first fifth): near 100 %, the point is bound by CPU time, not by waiting.
    const busy = cpuBusyOver(seconds * 0.25, seconds * 0.95);
    const results = await Promise.all(clients.map((c) => c.done));
    server.kill();
    const s = await server.done;
    rss.push(s.rss as number, ...results.map((x) => x.rss as number));
    const all = results.flatMap((r) => r.latencies as number[]).sort((a, b) => a - b);
    const rate = results.reduce((sum, r) => sum + (r.count as number) / (r.seconds as number), 0);
    return { p50: percentile(all, 0.5), p99: percentile(all, 0.99), rate, busy: await busy };
  };
  const cPing = async () => {
    const req = await ctx.freshFifo();
    const rep = await ctx.freshFifo();
    const server = ctx.run(ctx.cBin!, ['pong', req, rep, '64', '0'], { cpu: ctx.serverCpu });
    const client = ctx.run(ctx.cBin!, ['ping', req, rep, '64', String(Math.round(20_000 * Q)), '0'], { cpu: ctx.clientCpu });
    const r = await client.done;
    await server.done;
    return { p50: r.p50 as number, p99: r.p99 as number };
  };
  const clients: Curve = {
    id: CURVES[2].id,
    title: CURVES[2].title,
    x: { name: 'client processes', unit: 'clients', values: CLIENTS, label: String },
    unit: 'us',
    yLog: true,
    series: [
      { key: 'npipe-p50', name: 'npipe p50', values: [] },
      { key: 'npipe-p99', name: 'npipe p99', values: [], dashed: true },
      { key: 'c-p50', name: 'C ping-pong p50 (1 client)', values: [], baseline: true },
      { key: 'c-p99', name: 'C ping-pong p99 (1 client)', values: [], baseline: true, dashed: true },
    ],
    ratios: [{ name: 'p50 / C p50', of: 'npipe-p50', to: 'c-p50', atFirst: true }],
    extra: [
      { name: 'requests/s, all clients', unit: 'msg/s', values: [] },
      { name: 'CPUs busy (whole machine)', unit: '%', values: [] },
      { name: 'CPU time per request', unit: 'us', values: [] },
    ],
  };
  for (const [i, n] of CLIENTS.entries()) {
    const m = await clientsAt(n);
    const c = i === 0 && ctx.cBin ? await cPing() : undefined;
    clients.series[0]!.values.push(m.p50);
    clients.series[1]!.values.push(m.p99);
    clients.series[2]!.values.push(c?.p50);
    clients.series[3]!.values.push(c?.p99);
    clients.extra![0]!.values.push(m.rate);
    clients.extra![1]!.values.push(m.busy);
    clients.extra![2]!.values.push(m.busy === undefined ? undefined : ((m.busy / 100) * cpus().length * 1e6) / m.rate);
    printPoint(clients, i);
  }
  curves.push(clients);

  const took = (Date.now() - started) / 1000;
  console.log(`\nCurves took ${took.toFixed(0)} s; peak RSS of an npipe process in them: ${(Math.max(...rss) / 2 ** 20).toFixed(0)} MiB`);
  write(ctx, curves, took);
}

export function format(v: number | undefined, unit: Curve['unit'] | '%'): string {
  if (v === undefined) return '-';
  if (unit === '%') return `${v.toFixed(0)} %`;
  if (unit === 'msg/s') return v < 1000 ? `${v.toFixed(1)}/s` : v < 1e6 ? `${(v / 1e3).toFixed(1)} k/s` : `${(v / 1e6).toFixed(2)} M/s`;
  if (unit === 'B/s') return v < 1e9 ? `${(v / 1e6).toFixed(0)} MB/s` : `${(v / 1e9).toFixed(2)} GB/s`;
  return v < 1000 ? `${v.toFixed(1)} µs` : `${(v / 1000).toFixed(2)} ms`;
}

/** The ratios of a curve at point i (a ratio `atFirst` divides by the baseline's first point). */
function ratiosAt(curve: Curve, i: number): Array<number | undefined> {
  return curve.ratios.map((r) => {
    const a = curve.series.find((s) => s.key === r.of)!.values[i];
    const b = curve.series.find((s) => s.key === r.to)!.values[r.atFirst ? 0 : i];
    return a === undefined || b === undefined ? undefined : a / b;
  });
}

/** The columns of a curve's table: x, each series (with msg/s where the x is a size), the extra column, the ratios. */
function columns(curve: Curve): { head: string[]; cells: (i: number) => string[] } {
  const head = [
    curve.x.name,
    ...curve.series.map((s) => s.name),
    ...(curve.extra ?? []).map((e) => e.name),
    ...curve.ratios.map((r) => r.name),
  ];
  const cells = (i: number) => {
    const x = curve.x.values[i]!;
    return [
      curve.x.label(x),
      ...curve.series.map((s) => {
        const v = s.values[i];
        return curve.perMessage && v !== undefined ? `${format(v, curve.unit)} (${format(v / x, 'msg/s')})` : format(v, curve.unit);
      }),
      ...(curve.extra ?? []).map((e) => format(e.values[i], e.unit)),
      ...ratiosAt(curve, i).map((r) => (r === undefined ? '-' : r.toFixed(2))),
    ];
  };
  return { head, cells };
}

function printPoint(curve: Curve, i: number): void {
  const { head, cells } = columns(curve);
  if (i === 0) console.log(`  ${head.map((h) => h.padEnd(26)).join(' ')}`);
  console.log(`  ${cells(i).map((c) => c.padEnd(26)).join(' ')}`);
}

export function markdown(curves: Curve[], machine: string, took: number): string {
  const out = [`Measured ${machine}; one run per point; the curves took ${took.toFixed(0)} s.`, ''];
  for (const c of curves) {
    const { head, cells } = columns(c);
    out.push(`**${c.title}** (\`${c.id}\`)`, '', `| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`);
    for (let i = 0; i < c.x.values.length; i++) out.push(`| ${cells(i).join(' | ')} |`);
    out.push('');
  }
  return out.join('\n');
}

const BEGIN = '<!-- bench:curves:begin (written by npm run bench -- --curves; edits between these markers are overwritten) -->';
const END = '<!-- bench:curves:end -->';

function write(ctx: CurveContext, curves: Curve[], took: number): void {
  const machine = `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, Linux ${release()}, Node ${process.version}`;
  const name = ctx.scale < 1 ? 'curves-quick' : 'curves';
  const dir = join(ctx.repoRoot, 'bench', 'results');
  const json = {
    machine,
    date: new Date().toISOString(),
    quick: ctx.scale < 1,
    seconds: took,
    peakRssMiB: Math.round(Math.max(...rss) / 2 ** 20),
    curves: curves.map(({ x: { label, ...x }, ...c }) => ({ ...c, x: { ...x, labels: x.values.map(label) } })),
  };
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  const svgs = curves.map((c) => {
    const file = `${name}-${c.id.replace(/^curve-/, '')}.svg`;
    writeFileSync(join(dir, file), renderCurveSvg(c, machine));
    return file;
  });
  const md = markdown(curves, machine, took);
  writeFileSync(join(dir, `${name}.md`), md);
  console.log(`written: bench/results/${name}.json, ${name}.md, ${svgs.join(', ')}`);
  if (ctx.scale < 1) return;
  const doc = join(ctx.repoRoot, 'docs', 'PERFORMANCE.md');
  const text = existsSync(doc) ? readFileSync(doc, 'utf8') : '';
  const b = text.indexOf(BEGIN);
  const e = text.indexOf(END);
  if (b < 0 || e < b) {
    console.log(`docs/PERFORMANCE.md not updated: its curve markers are missing (${BEGIN} ... ${END})`);
    return;
  }
  writeFileSync(doc, `${text.slice(0, b + BEGIN.length)}\n\n${md}\n${text.slice(e)}`);
  console.log('written: docs/PERFORMANCE.md (the curve tables between its bench:curves markers)');
}

export type { CurveId };

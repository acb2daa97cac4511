/**
 * npm run bench: npipe and its baselines measured side by side in one run,
 * medians over repeated runs, printed as a table of figures and ratios, and
 * written to bench/results/ as JSON, SVG and Markdown; a full run also puts the
 * Markdown tables into docs/PERFORMANCE.md, between its bench:latest markers.
 * Absolute figures move from run to run on a shared machine; the ratios are what
 * the targets are about.
 *
 *   npm run bench [-- --repeat N] [--quick] [--skip-curves]
 *   npm run bench -- --curves [--quick]   the cost curves only (curves.ts)
 *   npm run bench -- --only SECTION[,SECTION]  those sections only (oneway, bulk, rtt, cli, raw, startup,
 *                                     nats, pubsub, shm), written to bench/results/only.*; no curves, docs untouched
 *   node dist/bench/run.js --list     the ids and labels of every row, target, ratio and curve; measures nothing
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mkfifo } from '../src/fifo-public.js';
import { renderSvg } from './svg.js';
import { CURVES, runCurves } from './curves.js';
import { NatsServer, natsServerAvailable } from '../test/nats-server.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = join(here, '..', '..');
const WORKERS = join(here, 'workers.js');
const BIN = join(repoRoot, 'dist', 'bundle', 'cli', 'npipe.cjs');
const { values } = parseArgs({
  options: { repeat: { type: 'string' }, quick: { type: 'boolean' }, list: { type: 'boolean' }, curves: { type: 'boolean' }, 'skip-curves': { type: 'boolean' }, only: { type: 'string' } },
});
const REPEAT = Number(values.repeat ?? 3);
const SECTIONS = ['oneway', 'bulk', 'rtt', 'cli', 'raw', 'startup', 'nats', 'pubsub', 'shm'] as const;
const only = values.only?.split(',');
for (const section of only ?? []) if (!(SECTIONS as readonly string[]).includes(section)) throw new Error(`--only: no section ${section} (${SECTIONS.join(', ')})`);
/** Whether this run measures `section` (every one unless --only names some). */
const want = (section: (typeof SECTIONS)[number]) => !only || only.includes(section);
const Q = values.quick ? 0.1 : 1;

/** The busyPoll the bench's busy-polling rows use, in microseconds (docs/TUNING.md). */
const BUSY_POLL_US = 100;

type Unit = 'msg/s' | 'B/s' | 'us';

/**
 * Every row the bench measures. The id is what the code looks rows up by, and what
 * the targets, bench/results/*.json and docs/PROMISES.md (`bench: "<id>"`) name;
 * the label is only printed, so rewording it breaks none of them.
 */
const ROWS = [
  { id: 'c-oneway-68b', label: 'C: one write() per 68-byte message', unit: 'msg/s' },
  { id: 'c-fanout-8x64b', label: 'C: 64 B, one write() to each of 8 FIFOs', unit: 'msg/s' },
  { id: 'pubsub-8x64b', label: 'npipe publish to 8 subscribers, 64 B', unit: 'msg/s' },
  { id: 'c-fanout-8x64k', label: 'C: 64 KiB, one write() to each of 8 FIFOs', unit: 'msg/s' },
  { id: 'pubsub-8x64k', label: 'npipe publish to 8 subscribers, 64 KiB', unit: 'msg/s' },
  { id: 'node-oneway-64b', label: 'plain Node: net.Socket, corked, 64 B, no framing', unit: 'msg/s' },
  { id: 'zmq-oneway-64b', label: 'zeromq.js ipc:// PUSH/PULL, 64 B', unit: 'msg/s' },
  { id: 'fifo-frames-64b-oneway', label: 'npipe frames, 64 B', unit: 'msg/s' },
  { id: 'fifo-length-64b-oneway', label: 'npipe length, 64 B', unit: 'msg/s' },
  { id: 'fifo-frames-1k-oneway', label: 'npipe frames, 1 KiB', unit: 'msg/s' },
  { id: 'fifo-length-1k-oneway', label: 'npipe length, 1 KiB', unit: 'msg/s' },
  { id: 'fifo-frames-64b-16writers', label: 'npipe frames, 16 writer processes into one reader, 64 B', unit: 'msg/s' },
  { id: 'c-bulk', label: 'C: 64 KiB writes into a 1 MiB pipe', unit: 'B/s' },
  { id: 'fifo-length-1m-bulk', label: 'npipe length, 1 MiB messages', unit: 'B/s' },
  { id: 'fifo-length-1m-bulk-into', label: 'npipe length, 1 MiB messages, receiveInto one buffer', unit: 'B/s' },
  { id: 'fifo-frames-1m-bulk', label: 'npipe frames, 1 MiB messages', unit: 'B/s' },
  { id: 'fifo-raw-bulk', label: 'npipe raw byte stream (64 KiB writes)', unit: 'B/s' },
  { id: 'rtt-c-p50', label: 'C: ping-pong over two FIFOs, p50', unit: 'us' },
  { id: 'rtt-c-same-cpu-p50', label: 'C: ping-pong, both on one CPU, p50', unit: 'us' },
  { id: 'rtt-busypoll-c-p50', label: `C: ping-pong, reads busy-poll ${BUSY_POLL_US} µs, p50`, unit: 'us' },
  { id: 'rtt-node-p50', label: 'plain Node: ping-pong over two FIFOs, p50', unit: 'us' },
  { id: 'rtt-zmq-p50', label: 'zeromq.js ipc:// REQ/REP, p50', unit: 'us' },
  { id: 'rtt-zmq-p99', label: 'zeromq.js ipc:// REQ/REP, p99', unit: 'us' },
  { id: 'rtt-fifo-p50', label: 'npipe request/reply, 1 client, p50', unit: 'us' },
  { id: 'rtt-fifo-p99', label: 'npipe request/reply, 1 client, p99', unit: 'us' },
  { id: 'rtt-busypoll-fifo-p50', label: `npipe request/reply, 1 client, busyPoll ${BUSY_POLL_US} µs, p50`, unit: 'us' },
  { id: 'rtt-busypoll-fifo-p99', label: `npipe request/reply, 1 client, busyPoll ${BUSY_POLL_US} µs, p99`, unit: 'us' },
  { id: 'rtt-fifo-8clients-p50', label: 'npipe request/reply, 8 clients, p50', unit: 'us' },
  { id: 'rtt-fifo-8clients-p99', label: 'npipe request/reply, 8 clients, p99', unit: 'us' },
  { id: 'cli-lines-64b', label: 'CLI: 64 B lines', unit: 'msg/s' },
  { id: 'cli-raw', label: 'CLI: raw stream', unit: 'B/s' },
  { id: 'c-splice-max', label: 'C: splice(2) file -> FIFO -> /dev/null, pipe-max-size pipe, once running', unit: 'B/s' },
  { id: 'cli-raw-running', label: 'CLI: raw stream file -> FIFO -> /dev/null, once running', unit: 'B/s' },
  { id: 'c-rw-4g', label: 'C: read/write file -> FIFO -> /dev/null, 4 GiB, start to exit', unit: 'B/s' },
  { id: 'cli-raw-4g', label: 'CLI: raw stream file -> FIFO -> /dev/null, 4 GiB, start to exit', unit: 'B/s' },
  { id: 'c-splice-to-file', label: 'C: splice(2) file -> FIFO -> file, once running', unit: 'B/s' },
  { id: 'c-rw-to-file', label: 'C: read/write file -> FIFO -> file, once running', unit: 'B/s' },
  { id: 'cli-raw-to-file', label: 'CLI: raw stream file -> FIFO -> file, once running', unit: 'B/s' },
  { id: 'startup-node', label: 'plain Node: node -e 0, start to exit', unit: 'us' },
  { id: 'startup-cli-send', label: 'CLI: one npipe send of one message to a waiting reader, start to exit', unit: 'us' },
  { id: 'startup-cli-send-frames', label: 'CLI: the same with --format frames (no writers\' lock, no koffi), start to exit', unit: 'us' },
  { id: 'shm-c-bulk', label: 'shm section: C, 64 KiB writes into a 1 MiB pipe', unit: 'B/s' },
  { id: 'shm-1m-bulk-into', label: 'npipe shm://, 1 MiB messages, receiveInto one buffer', unit: 'B/s' },
  { id: 'shm-1m-bulk', label: 'npipe shm://, 1 MiB messages, for-await', unit: 'B/s' },
  { id: 'shm-fifo-frames-64b', label: 'shm section: npipe frames over a FIFO, 64 B', unit: 'msg/s' },
  { id: 'shm-64b-oneway', label: 'npipe shm://, 64 B', unit: 'msg/s' },
  { id: 'shm-js-floor-64b', label: 'shm section: for-await alone, a new 64 B Buffer each (no transport)', unit: 'msg/s' },
  { id: 'shm-rtt-c-p50', label: 'shm section: C ping-pong over two FIFOs, p50', unit: 'us' },
  { id: 'shm-rtt-busypoll-p50', label: `npipe ping-pong over two shm:// lanes, busyPoll ${BUSY_POLL_US} µs, p50`, unit: 'us' },
  { id: 'shm-rtt-busypoll-p99', label: `npipe ping-pong over two shm:// lanes, busyPoll ${BUSY_POLL_US} µs, p99`, unit: 'us' },
  { id: 'nats-plain-64b-oneway', label: 'plain nats.js publish/subscribe, 64 B', unit: 'msg/s' },
  { id: 'nats-core-64b-oneway', label: 'npipe over core NATS, 64 B', unit: 'msg/s' },
  { id: 'nats-jetstream-64b-oneway', label: 'npipe over JetStream, 64 B (stored, acknowledged)', unit: 'msg/s' },
  { id: 'rtt-nats-plain-p50', label: 'plain nats.js request/reply, p50', unit: 'us' },
  { id: 'rtt-nats-p50', label: 'npipe request/reply over NATS, p50', unit: 'us' },
  { id: 'rtt-nats-p99', label: 'npipe request/reply over NATS, p99', unit: 'us' },
] as const satisfies ReadonlyArray<{ id: string; label: string; unit: Unit }>;
type RowId = (typeof ROWS)[number]['id'];
const rowSpec = (id: RowId) => ROWS.find((r) => r.id === id)!;

/** A ratio of two measured rows; undefined when either was skipped. */
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);

/** The targets of issue 5: each a ratio measured in one run, and the goal it is held to. */
const TARGETS = [
  { id: 'target-fifo-frames-64b-vs-c', name: '64 B one-way (frames) vs C one write per message', target: 2, higher: true, ratio: () => ratio(value('fifo-frames-64b-oneway'), value('c-oneway-68b')) },
  { id: 'target-fifo-length-64b-vs-c', name: '64 B one-way (length) vs C one write per message', target: 2, higher: true, ratio: () => ratio(value('fifo-length-64b-oneway'), value('c-oneway-68b')) },
  { id: 'target-fifo-frames-64b-vs-zmq', name: '64 B one-way (frames) vs zeromq.js PUSH/PULL', target: 10, higher: true, ratio: () => ratio(value('fifo-frames-64b-oneway'), value('zmq-oneway-64b')) },
  { id: 'target-bulk-into-vs-c', name: '1 MiB messages (length, receiveInto) vs C bulk', target: 0.75, higher: true, ratio: () => ratio(value('fifo-length-1m-bulk-into'), value('c-bulk')) },
  { id: 'target-rtt-busypoll-vs-c', name: `request/reply p50 (busyPoll ${BUSY_POLL_US} µs) vs C ping-pong p50`, target: 1.3, higher: false, ratio: () => ratio(value('rtt-busypoll-fifo-p50'), value('rtt-c-p50')) },
  { id: 'target-rtt-busypoll-vs-zmq', name: `request/reply p50 (busyPoll ${BUSY_POLL_US} µs) vs zeromq.js REQ/REP p50`, target: 0.5, higher: false, ratio: () => ratio(value('rtt-busypoll-fifo-p50'), value('rtt-zmq-p50')) },
  { id: 'target-16writers-vs-c', name: '16 writers, 64 B vs C single writer', target: 1, higher: true, ratio: () => ratio(value('fifo-frames-64b-16writers'), value('c-oneway-68b')) },
  { id: 'target-cli-lines-vs-c', name: 'CLI 64 B lines vs C one write per message', target: 1, higher: true, ratio: () => ratio(value('cli-lines-64b'), value('c-oneway-68b')) },
  { id: 'target-cli-raw-vs-c', name: 'CLI raw stream vs C bulk', target: 0.5, higher: true, ratio: () => ratio(value('cli-raw'), value('c-bulk')) },
  { id: 'target-rtt-default-vs-c', name: 'request/reply p50, default (no busy poll), vs C ping-pong p50 (issue 18 #3)', target: 1.6, higher: false, ratio: () => ratio(value('rtt-fifo-p50'), value('rtt-c-p50')) },
  { id: 'target-rtt-busypoll-vs-c-1x', name: `request/reply p50 (busyPoll ${BUSY_POLL_US} µs) vs C ping-pong p50 (issue 18 #3)`, target: 1.0, higher: false, ratio: () => ratio(value('rtt-busypoll-fifo-p50'), value('rtt-c-p50')) },
  { id: 'target-bulk-into-vs-c-1x', name: '1 MiB messages (length, receiveInto) vs C bulk (issue 18 #2)', target: 1.0, higher: true, ratio: () => ratio(value('fifo-length-1m-bulk-into'), value('c-bulk')) },
  { id: 'target-bulk-vs-c', name: '1 MiB messages (length, for-await, a new Buffer each) vs C bulk (issue 18 #2)', target: 0.5, higher: true, ratio: () => ratio(value('fifo-length-1m-bulk'), value('c-bulk')) },
  { id: 'target-cli-raw-vs-c-splice', name: 'CLI raw stream once running vs C splice, largest pipe (issue 18 #1)', target: 0.5, higher: true, ratio: () => ratio(value('cli-raw-running'), value('c-splice-max')) },
  { id: 'target-cli-raw-vs-c-bulk-1.5x', name: 'CLI raw stream once running vs C bulk read/write (issue 18 #1)', target: 1.5, higher: true, ratio: () => ratio(value('cli-raw-running'), value('c-bulk')) },
  { id: 'target-cli-raw-4g-vs-c-rw', name: 'CLI raw stream, 4 GiB start to exit, vs C read/write (issue 18 #1)', target: 1.0, higher: true, ratio: () => ratio(value('cli-raw-4g'), value('c-rw-4g')) },
  { id: 'target-cli-raw-to-file-vs-c-splice', name: 'CLI raw stream into a file vs C splice into it (issue 18 #1)', target: 0.5, higher: true, ratio: () => ratio(value('cli-raw-to-file'), value('c-splice-to-file')) },
  { id: 'target-cli-raw-to-file-vs-c-rw-1.5x', name: 'CLI raw stream into a file vs C read/write into it (issue 18 #1)', target: 1.5, higher: true, ratio: () => ratio(value('cli-raw-to-file'), value('c-rw-to-file')) },
  { id: 'target-cli-send-startup', name: 'one-shot npipe send vs node -e 0, start to exit (issue 18 #6)', target: 1.25, higher: false, ratio: () => ratio(value('startup-cli-send'), value('startup-node')) },
  { id: 'target-shm-bulk-into-vs-c', name: '1 MiB over shm:// (receiveInto) vs C bulk over a FIFO (issue 22 #6)', target: 2, higher: true, ratio: () => ratio(value('shm-1m-bulk-into'), value('shm-c-bulk')) },
  { id: 'target-shm-bulk-vs-c', name: '1 MiB over shm:// (for-await) vs C bulk over a FIFO (issue 22 #6)', target: 2, higher: true, ratio: () => ratio(value('shm-1m-bulk'), value('shm-c-bulk')) },
  { id: 'target-shm-64b-vs-fifo', name: '64 B over shm:// vs npipe frames over a FIFO (issue 22 #6)', target: 3, higher: true, ratio: () => ratio(value('shm-64b-oneway'), value('shm-fifo-frames-64b')) },
  { id: 'target-shm-rtt-busypoll-vs-c', name: `shm:// ping-pong p50 (busyPoll ${BUSY_POLL_US} µs) vs C FIFO ping-pong p50 (issue 22 #6)`, target: 0.5, higher: false, ratio: () => ratio(value('shm-rtt-busypoll-p50'), value('shm-rtt-c-p50')) },
  { id: 'target-fifo-rss', name: 'peak RSS of npipe processes (FIFO rows), MiB (under 100)', target: 100, higher: false, ratio: () => Math.max(...rssSeen) / 2 ** 20 },
] as const;

/**
 * Beside the targets, no goal of their own: 64 B with every message timed (warm-up
 * included); request/reply against zeromq.js by default (no busy polling), and
 * against C busy-polling too; publish/subscribe to 8 subscribers against C writing
 * each message to 8 FIFOs (issue 20 #8).
 */
const RATIOS = [
  { id: 'ratio-fifo-frames-64b-vs-c-all', name: '64 B one-way (frames) vs C, every message timed (warm-up included)', ratio: () => ratio(allValue('fifo-frames-64b-oneway'), allValue('c-oneway-68b')) },
  { id: 'ratio-fifo-length-64b-vs-c-all', name: '64 B one-way (length) vs C, every message timed (warm-up included)', ratio: () => ratio(allValue('fifo-length-64b-oneway'), allValue('c-oneway-68b')) },
  { id: 'ratio-cli-send-frames-startup', name: 'one-shot npipe send --format frames vs node -e 0, start to exit', ratio: () => ratio(value('startup-cli-send-frames'), value('startup-node')) },
  { id: 'ratio-rtt-vs-zmq', name: 'request/reply p50, default (no busy poll), vs zeromq.js REQ/REP', ratio: () => ratio(value('rtt-fifo-p50'), value('rtt-zmq-p50')) },
  { id: 'ratio-rtt-busypoll-both-vs-c', name: `request/reply p50, both busy-polling ${BUSY_POLL_US} µs: npipe vs C`, ratio: () => ratio(value('rtt-busypoll-fifo-p50'), value('rtt-busypoll-c-p50')) },
  { id: 'ratio-pubsub-64b-vs-c', name: 'publish to 8 subscribers, 64 B: npipe vs C writing each message to 8 FIFOs', ratio: () => ratio(value('pubsub-8x64b'), value('c-fanout-8x64b')) },
  { id: 'ratio-for-await-floor-vs-fifo-64b', name: 'for-await alone (a new 64 B Buffer each, no transport) vs npipe frames over a FIFO: the most any for-await receiver can gain', ratio: () => ratio(value('shm-js-floor-64b'), value('shm-fifo-frames-64b')) },
  { id: 'ratio-pubsub-64k-vs-c', name: 'publish to 8 subscribers, 64 KiB: npipe vs C writing each message to 8 FIFOs', ratio: () => ratio(value('pubsub-8x64k'), value('c-fanout-8x64k')) },
] as const;

/** NATS: no targets; ratios to plain nats.js in the same run. */
const NATS_RATIOS = [
  { id: 'ratio-nats-core-vs-plain', name: 'npipe over core NATS vs plain nats.js, 64 B rate', ratio: () => ratio(value('nats-core-64b-oneway'), value('nats-plain-64b-oneway')) },
  { id: 'ratio-rtt-nats-vs-plain', name: 'npipe request/reply over NATS vs plain nats.js, p50', ratio: () => ratio(value('rtt-nats-p50'), value('rtt-nats-plain-p50')) },
  { id: 'ratio-rtt-nats-vs-fifo', name: 'npipe request/reply over NATS vs over FIFOs, p50', ratio: () => ratio(value('rtt-nats-p50'), value('rtt-fifo-p50')) },
  { id: 'nats-rss', name: 'peak RSS of npipe NATS processes, MiB', ratio: () => (natsRss.length > 0 ? Math.max(...natsRss) / 2 ** 20 : undefined) },
] as const;

const work = mkdtempSync(join(tmpdir(), 'npipe-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let seq = 0;
const freshFifo = async () => {
  const path = join(work, `f${seq++}`);
  await mkfifo(path);
  return path;
};

interface Proc {
  ready: Promise<void>;
  done: Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): void;
  /** Writes a line to its stdin (kept open with `go: true`). */
  go(): void;
  /** Its process id (taskset execs the command, so the same process). */
  pid: number;
}

/**
 * The request/reply rows pin client and server to different CPUs (taskset), as
 * the two ends of a round trip between processes on a 2-CPU machine. Unpinned, a
 * single-threaded C pair is sometimes placed on one CPU, where a round trip costs
 * 6-10 µs instead of 70-100 (no wake-up of the other CPU): seen here in two runs
 * of three, which made C's median flip between the two.
 */
const CLIENT_CPU = 0;
const SERVER_CPU = 1;
const canPin = cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/** `cpu`: run on that CPU only (taskset), where canPin. */
function run(command: string, args: string[], options: { stdin?: string; stdout?: string; go?: boolean; cpu?: number } = {}): Proc {
  if (options.cpu !== undefined && canPin) {
    args = ['-c', String(options.cpu), command, ...args];
    command = 'taskset';
  }
  // stdin from a file is the file itself, as `npipe send < file` gets it from a shell.
  const stdinFd = options.stdin ? fs.openSync(options.stdin, 'r') : undefined;
  // Likewise stdout into a file (/dev/null): no copy through this process.
  const stdoutFd = options.stdout ? fs.openSync(options.stdout, 'w') : undefined;
  const child = spawn(command, args, { stdio: [stdinFd ?? 'pipe', stdoutFd ?? 'pipe', 'inherit'] });
  if (stdinFd !== undefined) fs.closeSync(stdinFd);
  else if (!options.go) child.stdin!.end();
  if (stdoutFd !== undefined) fs.closeSync(stdoutFd);
  let out = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((resolve) => (readyResolve = resolve));
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('ready\n')) readyResolve();
  });
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.on('close', (code) => {
      if (code !== 0 && code !== null) return reject(new Error(`${command} ${args.join(' ')} exited ${code}`));
      const last = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      resolve(last ? (JSON.parse(last) as Record<string, unknown>) : {});
    });
  });
  return { ready, done, kill: (signal = 'SIGTERM') => child.kill(signal), go: () => child.stdin?.end('go\n'), pid: child.pid! };
}


/** A bench worker process (workers.ts) in `role`, on CPU `cpu` only, or (undefined) anywhere. */
const nodeOn = (cpu: number | undefined, role: string, ...args: (string | number)[]) => run(process.execPath, [WORKERS, role, ...args.map(String)], { cpu });
const node = (role: string, ...args: (string | number)[]) => nodeOn(undefined, role, ...args);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function repeat(measure: () => Promise<number>): Promise<{ median: number; runs: number[] }> {
  const runs: number[] = [];
  for (let i = 0; i < REPEAT; i++) runs.push(await measure());
  return { median: median(runs), runs };
}

/**
 * A throughput run, from the reader's JSON (workers.ts printReader, fifo_bench.c
 * read): the rate after the reader's warm-up (its first tenth), which the rows
 * and targets use, and the rate over every message, warm-up included.
 */
interface Rate {
  steady: number;
  all: number;
}

/** `key`: what is counted, messages or bytes; `per`: bytes per message, to count messages by bytes. */
function rateOf(r: Record<string, unknown>, key: 'count' | 'bytes', per = 1): Rate {
  const seconds = r.seconds as number;
  const total = (r[key] as number) / per;
  const warm = (r[key === 'count' ? 'warmCount' : 'warmBytes'] as number) / per;
  return { steady: (total - warm) / (seconds - (r.warmSeconds as number)), all: total / seconds };
}

/** A row of ROWS (by its id) and how to measure it once. */
interface Measured {
  row: RowId;
  /** Undefined: the row is skipped, for the reason in `note`. */
  measure: (() => Promise<Rate>) | undefined;
  note?: string;
}

/**
 * Rows compared with one another (npipe and its baselines), measured in turns: one
 * run of each row, REPEAT times over, then recorded. On a shared machine whose
 * speed drifts over minutes, every row's runs then sample the same stretches of
 * time, instead of the baselines' runs all coming before npipe's.
 */
async function interleaved(list: Measured[]): Promise<void> {
  const runs: Rate[][] = list.map(() => []);
  for (let i = 0; i < REPEAT; i++) {
    for (const [j, row] of list.entries()) if (row.measure) runs[j]!.push(await row.measure());
  }
  for (const [j, { row, measure, note }] of list.entries()) {
    const steady = runs[j]!.map((r) => r.steady);
    const all = runs[j]!.map((r) => r.all);
    record(row, measure ? { median: median(steady), runs: steady } : undefined, note, measure ? all : undefined);
  }
}

// ---------------------------------------------------------------------------
// C baseline, compiled now.

let cBin: string | undefined;
function compileC(): string | undefined {
  const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
  if (!cc) return undefined;
  const out = join(work, 'fifo_bench');
  execFileSync(cc, ['-O2', '-o', out, join(repoRoot, 'bench', 'c', 'fifo_bench.c')]);
  return out;
}

async function cOneWay(size: number, count: number): Promise<Rate> {
  const path = await freshFifo();
  const reader = run(cBin!, ['read', path, '65536', String(size * count)]);
  const writer = run(cBin!, ['write', path, String(size), String(count)]);
  const [r] = await Promise.all([reader.done, writer.done]);
  return rateOf(r, 'bytes', size);
}

async function cBulk(total: number): Promise<Rate> {
  const path = await freshFifo();
  const reader = run(cBin!, ['read', path, String(1 << 20), String(total)]);
  const writer = run(cBin!, ['bulk', path, '65536', String(total), String(1 << 20)]);
  const [r] = await Promise.all([reader.done, writer.done]);
  return rateOf(r, 'bytes');
}

/** The slowest subscriber's rate: a message counts once every subscriber has it. */
function slowest(rates: Rate[]): Rate {
  return { steady: Math.min(...rates.map((r) => r.steady)), all: Math.min(...rates.map((r) => r.all)) };
}

/** C: `count` messages of `size` bytes, each written to 8 FIFOs in turn, each read by a C reader. */
async function cFanout(size: number, count: number, subscribers = 8): Promise<Rate> {
  const paths = await Promise.all(Array.from({ length: subscribers }, () => freshFifo()));
  const readers = paths.map((path) => run(cBin!, ['read', path, '65536', String(size * count)]));
  const writer = run(cBin!, ['fanout', String(size), String(count), ...paths]);
  const [, ...results] = await Promise.all([writer.done, ...readers.map((r) => r.done)]);
  return slowest(results.map((r) => rateOf(r, 'bytes', size)));
}

/** npipe: one publisher process, 8 subscriber processes on a topic folder. */
async function npipeFanout(size: number, count: number, subscribers = 8): Promise<Rate> {
  const topic = join(work, `topic${seq++}`);
  const readers = Array.from({ length: subscribers }, () => node('npipe-subscribe', topic, count));
  await Promise.all(readers.map((r) => r.ready));
  const writer = node('npipe-publish', topic, count, size);
  const [w, ...results] = await Promise.all([writer.done, ...readers.map((r) => r.done)]);
  if (w.subscribers !== subscribers) throw new Error(`the publisher saw ${String(w.subscribers)} subscribers, not ${subscribers}`);
  peak(w, ...results);
  return slowest(results.map((r) => rateOf(r, 'count')));
}

/** `sameCpu`: both on CLIENT_CPU (a row for comparison, no target). */
async function cPingPong(iterations: number, spinUs = 0, sameCpu = false): Promise<{ p50: number; p99: number }> {
  const req = await freshFifo();
  const rep = await freshFifo();
  const server = run(cBin!, ['pong', req, rep, '64', String(spinUs)], { cpu: sameCpu ? CLIENT_CPU : SERVER_CPU });
  const client = run(cBin!, ['ping', req, rep, '64', String(iterations), String(spinUs)], { cpu: CLIENT_CPU });
  const r = await client.done;
  await server.done;
  return { p50: r.p50 as number, p99: r.p99 as number };
}

// ---------------------------------------------------------------------------
// npipe and plain Node.

async function npipeOneWay(format: string, size: number, count: number): Promise<Rate> {
  const path = await freshFifo();
  const reader = node('npipe-recv', path, count, format);
  await reader.ready;
  const writer = node('npipe-send', path, count, size, format);
  const [r, w] = await Promise.all([reader.done, writer.done]);
  peak(r, w);
  return rateOf(r, 'count');
}

/** `into`: the reader takes each message with receiveInto() into one reused buffer of `size` bytes. */
async function npipeBulkBytes(format: string, size: number, count: number, into = false): Promise<Rate> {
  const path = await freshFifo();
  const reader = node('npipe-recv', path, format === 'raw' ? size * count : count, format, 1 << 20, into ? size : 0);
  await reader.ready;
  const writer = node('npipe-send', path, count, size, format);
  const [r, w] = await Promise.all([reader.done, writer.done]);
  peak(r, w);
  return rateOf(r, 'bytes');
}

async function nodeOneWay(size: number, count: number): Promise<Rate> {
  const path = await freshFifo();
  const reader = node('node-recv', path, size * count);
  await reader.ready;
  const writer = node('node-send', path, count, size);
  const [r] = await Promise.all([reader.done, writer.done]);
  return rateOf(r, 'bytes', size);
}

async function manyWriters(writers: number, size: number, perWriter: number): Promise<Rate> {
  const path = await freshFifo();
  const reader = node('npipe-recv', path, writers * perWriter, 'frames');
  await reader.ready;
  const senders = Array.from({ length: writers }, () =>
    run(process.execPath, [WORKERS, 'npipe-send', path, String(perWriter), String(size), 'frames', '--wait-go'], { go: true }),
  );
  await Promise.all(senders.map((s) => s.ready));
  for (const s of senders) s.go();
  const [r, ...w] = await Promise.all([reader.done, ...senders.map((s) => s.done)]);
  peak(r, ...w);
  if (r.count !== writers * perWriter) throw new Error('messages lost');
  return rateOf(r, 'count');
}

/** One client: client and server pinned to different CPUs, as the baselines are; several: not pinned. */
async function rpcLatency(clients: number, iterations: number, busyPoll = 0): Promise<{ p50: number; p99: number }> {
  const path = await freshFifo();
  const one = clients === 1;
  const server = nodeOn(one ? SERVER_CPU : undefined, 'rpc-serve', path, busyPoll);
  await server.ready;
  const results = await Promise.all(Array.from({ length: clients }, () => nodeOn(one ? CLIENT_CPU : undefined, 'rpc-client', path, iterations, 64, busyPoll).done));
  server.kill();
  const s = await server.done;
  peak(s, ...results);
  const all = results.flatMap((r) => r.latencies as number[]).sort((a, b) => a - b);
  return { p50: median(results.map((r) => r.p50 as number)), p99: all[Math.floor(all.length * 0.99)] ?? (results[0]!.p99 as number) };
}

async function nodeLatency(iterations: number): Promise<{ p50: number; p99: number }> {
  const req = await freshFifo();
  const rep = await freshFifo();
  const server = nodeOn(SERVER_CPU, 'node-pong', req, rep, 64);
  await server.ready;
  const r = await nodeOn(CLIENT_CPU, 'node-ping', req, rep, 64, iterations).done;
  await server.done;
  return { p50: r.p50 as number, p99: r.p99 as number };
}

/** A fresh shm:// name for one run. */
const freshShm = () => `shm://npipe-bench-${process.pid}-${seq++}`;

/** npipe over shared memory: as npipeBulkBytes and npipeOneWay, on an shm:// name. */
async function shmOneWay(size: number, count: number, into = false, bytes = false): Promise<Rate> {
  const address = freshShm();
  const reader = node('npipe-recv', address, count, 'frames', 0, into ? size : 0);
  await reader.ready;
  const writer = node('npipe-send', address, count, size, 'frames');
  // Not peak(): that goal is about the FIFO rows, and a process's RSS here counts the ring's pages it touched.
  const [r] = await Promise.all([reader.done, writer.done]);
  return rateOf(r, bytes ? 'bytes' : 'count');
}

/**
 * The floor under any for-await receiver, with no transport at all: an async
 * iterator whose every next() is already resolved, handing out a new `size`-byte
 * Buffer copied from a batch (what a receiver does at least per message). Timed
 * after the first tenth, as the other rows. A transport cannot make for-await
 * faster than this.
 */
async function forAwaitFloor(size: number, count: number): Promise<Rate> {
  const batch = Buffer.alloc(65536, 120);
  const per = Math.floor(batch.length / size);
  let i = 0;
  const source: AsyncIterableIterator<Buffer> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      if (i >= count) return Promise.resolve({ done: true, value: undefined });
      const at = (i++ % per) * size;
      const message = Buffer.allocUnsafe(size);
      batch.copy(message, 0, at, at + size);
      return Promise.resolve({ done: false, value: message });
    },
  };
  const warm = Math.floor(count / 10);
  let n = 0;
  let bytes = 0;
  let start = 0n;
  let warmAt = 0n;
  for await (const message of source) {
    if (n === 0) start = process.hrtime.bigint();
    bytes += message.length;
    if (++n === warm) warmAt = process.hrtime.bigint();
  }
  const end = process.hrtime.bigint();
  if (bytes !== count * size) throw new Error('the floor lost messages');
  return { steady: (count - warm) / (Number(end - warmAt) / 1e9), all: count / (Number(end - start) / 1e9) };
}

/** Two shm:// lanes, one each way, every end busy-polling: pinned as the C ping-pong is. */
async function shmPingPong(iterations: number): Promise<{ p50: number; p99: number }> {
  const a = freshShm();
  const b = freshShm();
  const server = nodeOn(SERVER_CPU, 'shm-pong', a, b, BUSY_POLL_US);
  await server.ready;
  const r = await nodeOn(CLIENT_CPU, 'shm-ping', a, b, 64, iterations, BUSY_POLL_US).done;
  server.kill();
  await server.done.catch(() => ({}));
  return { p50: r.p50 as number, p99: r.p99 as number };
}

// ---------------------------------------------------------------------------
// zeromq.js, if installed.

let zmqAvailable = false;
async function zmqOneWay(size: number, count: number): Promise<Rate> {
  const endpoint = `ipc://${join(work, `z${seq++}`)}`;
  const reader = node('zmq-pull', endpoint, count);
  await reader.ready;
  const writer = node('zmq-push', endpoint, count, size);
  const [r] = await Promise.all([reader.done, writer.done]);
  return rateOf(r, 'count');
}

async function zmqLatency(iterations: number): Promise<{ p50: number; p99: number }> {
  const endpoint = `ipc://${join(work, `z${seq++}`)}`;
  const server = nodeOn(SERVER_CPU, 'zmq-rep', endpoint);
  await server.ready;
  const r = await nodeOn(CLIENT_CPU, 'zmq-req', endpoint, iterations, 64).done;
  server.kill();
  await server.done.catch(() => ({}));
  return { p50: r.p50 as number, p99: r.p99 as number };
}

// ---------------------------------------------------------------------------
// The CLI end to end: npipe send < file | (FIFO) | npipe listen > /dev/null.

async function cliLines(count: number): Promise<number> {
  const file = join(work, 'lines.txt');
  if (!existsSync(file)) {
    const line = `${'x'.repeat(63)}\n`;
    writeFileSync(file, line.repeat(count));
  }
  const path = await freshFifo();
  const t = process.hrtime.bigint();
  const listener = run(process.execPath, [BIN, 'listen', path, '--count', String(count)], { stdout: '/dev/null' });
  const sender = run(process.execPath, [BIN, 'send', path], { stdin: file });
  await Promise.all([listener.done, sender.done]);
  return count / (Number(process.hrtime.bigint() - t) / 1e9);
}

async function cliRaw(total: number): Promise<number> {
  const file = join(work, 'raw.bin');
  if (!existsSync(file)) {
    const chunk = Buffer.alloc(1 << 20, 97);
    const fd = fs.openSync(file, 'w');
    for (let i = 0; i < total / chunk.length; i++) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
  }
  const path = await freshFifo();
  const t = process.hrtime.bigint();
  const listener = run(process.execPath, [BIN, 'listen', path, '--format', 'raw', '--once', '--pipe-size', String(1 << 20)], { stdout: '/dev/null' });
  const sender = run(process.execPath, [BIN, 'send', path, '--format', 'raw', '--pipe-size', String(1 << 20)], { stdin: file });
  await Promise.all([listener.done, sender.done]);
  return total / (Number(process.hrtime.bigint() - t) / 1e9);
}

/**
 * Raw streams against C, file -> FIFO -> /dev/null and file -> FIFO -> file (issue
 * 18 #1). npipe's CLI prints no timings, so every pipeline here, C's too, is timed
 * from outside the same way: the bytes moved so far are sampled every millisecond
 * (the sender's stdin position from /proc/PID/fdinfo/0, or the output file's size),
 * and the rate "once running" is taken from the moment a tenth had gone by, as the
 * readers of the other throughput rows time themselves. The rate "start to exit"
 * is the total over the time from spawning both processes to both exiting.
 */
type RawPipeline = 'c-splice' | 'c-rw' | 'cli';

const pipeMaxSize = () => {
  try {
    return Number.parseInt(fs.readFileSync('/proc/sys/fs/pipe-max-size', 'latin1'), 10) || 1 << 20;
  } catch {
    return 1 << 20;
  }
};

/** A file of `bytes` bytes under the bench's folder (made once, then read from the page cache). */
function rawInput(bytes: number): string {
  const file = join(work, `raw-${bytes}.bin`);
  if (existsSync(file)) return file;
  const chunk = Buffer.alloc(1 << 20, 97);
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < bytes / chunk.length; i++) fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  return file;
}

/** Whether the bench's folder has room for `bytes` more (and 1 GiB to spare). */
function roomFor(bytes: number): boolean {
  const st = fs.statfsSync(work);
  return st.bavail * st.bsize > bytes + 2 ** 30;
}

/** The bytes a process's descriptor has read so far (its file position); undefined once it has exited. */
function fdPosition(pid: number, fd: number): number | undefined {
  try {
    const m = /^pos:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function rawPipeline(kind: RawPipeline, input: string, total: number, output: string): Promise<Rate> {
  const path = await freshFifo();
  const toFile = output !== '/dev/null';
  if (toFile) {
    rmSync(output, { force: true });
    spawnSync('sync'); // each run starts with no dirty pages left by the last
  }
  const max = String(pipeMaxSize());
  const t0 = performance.now();
  const [receiver, sender] =
    kind === 'c-splice'
      ? [run(cBin!, ['splice-recv', path, max], { stdout: output }), run(cBin!, ['splice-send', path, max], { stdin: input })]
      : kind === 'c-rw'
        ? [run(cBin!, ['rw-recv', path, String(1 << 20)], { stdout: output }), run(cBin!, ['rw-send', path, '65536', String(1 << 20)], { stdin: input })]
        : [
            run(process.execPath, [BIN, 'listen', path, '--format', 'raw', '--once'], { stdout: output }),
            run(process.execPath, [BIN, 'send', path, '--format', 'raw'], { stdin: input }),
          ];
  let exited = false;
  const both = Promise.all([receiver.done, sender.done]).finally(() => (exited = true));
  const moved = () => (toFile ? (existsSync(output) ? fs.statSync(output).size : 0) : (fdPosition(sender.pid, 0) ?? total));
  let tenth: { t: number; bytes: number } | undefined;
  let end: number | undefined;
  while (!exited) {
    const bytes = moved();
    const t = performance.now();
    if (!tenth && bytes >= total / 10) tenth = { t, bytes };
    if (bytes >= total) {
      end = t;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await both;
  const done = performance.now();
  end ??= done;
  if (toFile) {
    const size = fs.statSync(output).size;
    rmSync(output, { force: true });
    if (size !== total) throw new Error(`${kind}: ${size} of ${total} bytes reached the file`);
  }
  tenth ??= { t: t0, bytes: 0 };
  return { steady: (total - tenth.bytes) / ((end - tenth.t) / 1e3), all: total / ((done - t0) / 1e3) };
}

/** The raw rows: each pipeline once per turn, REPEAT turns, so that all sample the same stretches of time. */
async function rawRows(Q: number): Promise<void> {
  const BIG = Math.round(4096 * Q) * 2 ** 20;
  const TO_FILE = Math.round(1024 * Q) * 2 ** 20;
  const ids = ['c-splice-max', 'cli-raw-running', 'c-rw-4g', 'cli-raw-4g', 'c-splice-to-file', 'c-rw-to-file', 'cli-raw-to-file'] as const;
  const skip = !cBin ? 'no C compiler (cc) found; install gcc' : process.platform !== 'linux' ? 'splice(2) is Linux-only' : !roomFor(BIG + 2 * TO_FILE) ? `not ${(BIG + 2 * TO_FILE) / 2 ** 30 + 1} GiB free under ${work}` : undefined;
  if (skip) {
    for (const id of ids) record(id, undefined, skip);
    return;
  }
  const big = rawInput(BIG);
  const small = rawInput(TO_FILE);
  const out = join(work, 'raw-out.bin');
  const runs = { cSplice: [] as Rate[], cRw: [] as Rate[], cli: [] as Rate[], cSpliceFile: [] as Rate[], cRwFile: [] as Rate[], cliFile: [] as Rate[] };
  for (let i = 0; i < REPEAT; i++) {
    runs.cSplice.push(await rawPipeline('c-splice', big, BIG, '/dev/null'));
    runs.cRw.push(await rawPipeline('c-rw', big, BIG, '/dev/null'));
    runs.cli.push(await rawPipeline('cli', big, BIG, '/dev/null'));
  }
  for (let i = 0; i < REPEAT; i++) {
    runs.cSpliceFile.push(await rawPipeline('c-splice', small, TO_FILE, out));
    runs.cRwFile.push(await rawPipeline('c-rw', small, TO_FILE, out));
    runs.cliFile.push(await rawPipeline('cli', small, TO_FILE, out));
  }
  const steady = (rs: Rate[]) => ({ median: median(rs.map((r) => r.steady)), runs: rs.map((r) => r.steady) });
  const all = (rs: Rate[]) => ({ median: median(rs.map((r) => r.all)), runs: rs.map((r) => r.all) });
  record('c-splice-max', steady(runs.cSplice));
  record('cli-raw-running', steady(runs.cli));
  record('c-rw-4g', all(runs.cRw));
  record('cli-raw-4g', all(runs.cli));
  record('c-splice-to-file', steady(runs.cSpliceFile));
  record('c-rw-to-file', steady(runs.cRwFile));
  record('cli-raw-to-file', steady(runs.cliFile));
  rmSync(big, { force: true });
  rmSync(small, { force: true });
}

/** Start to exit of one process, in µs. */
async function oneShot(command: string, args: string[]): Promise<number> {
  const t = process.hrtime.bigint();
  await run(command, args).done;
  return Number(process.hrtime.bigint() - t) / 1e3;
}

/**
 * One-shot start-up, what a shell user pays per `npipe send`: `node -e 0`, one
 * `npipe send` of one message (lines, the default) and one with `--format frames`
 * (which loads no koffi: docs/TUNING.md), each to a listener already waiting,
 * alternated, `n` of each; medians. The listeners hold their FIFOs open
 * throughout, so no send waits.
 */
async function startup(n: number): Promise<Record<'node' | 'send' | 'frames', { median: number; runs: number[] }>> {
  const lines = await freshFifo();
  const frames = await freshFifo();
  const listeners = [
    run(process.execPath, [BIN, 'listen', lines], { stdout: '/dev/null' }),
    run(process.execPath, [BIN, 'listen', frames, '--format', 'frames'], { stdout: '/dev/null' }),
  ];
  for (const path of [lines, frames]) {
    for (;;) {
      try {
        fs.closeSync(fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
  const runs = { node: [] as number[], send: [] as number[], frames: [] as number[] };
  for (let i = 0; i < n; i++) {
    runs.node.push(await oneShot(process.execPath, ['-e', '0']));
    runs.send.push(await oneShot(process.execPath, [BIN, 'send', lines, `event ${i}`]));
    runs.frames.push(await oneShot(process.execPath, [BIN, 'send', frames, '--format', 'frames', `event ${i}`]));
  }
  for (const listener of listeners) {
    listener.kill('SIGTERM');
    await listener.done;
  }
  return {
    node: { median: median(runs.node), runs: runs.node },
    send: { median: median(runs.send), runs: runs.send },
    frames: { median: median(runs.frames), runs: runs.frames },
  };
}

// ---------------------------------------------------------------------------
// NATS, when nats-server is installed: npipe over NATS beside plain nats.js, on
// one local nats-server (so these rows measure the client libraries and the
// server's hop, not a network).

const NATS_WORKERS = join(here, 'nats-workers.js');
const natsNode = (role: string, ...args: (string | number)[]) => run(process.execPath, [NATS_WORKERS, role, ...args.map(String)]);
let natsSubjects = 0;
/** Peak RSS of npipe's NATS processes: reported on its own (issue 5's RSS goal is about the FIFO rows). */
const natsRss: number[] = [];

async function natsOneWay(server: NatsServer, kind: 'plain' | 'core' | 'jetstream', size: number, count: number): Promise<number> {
  const url = server.url(`bench.s${++natsSubjects}`, kind === 'jetstream' ? 'delivery=jetstream' : '');
  const reader = kind === 'plain' ? natsNode('nats-sub', url, count) : node('npipe-recv', url, count, 'frames');
  await reader.ready;
  const writer = kind === 'plain' ? natsNode('nats-pub', url, count, size) : node('npipe-send', url, count, size, 'frames');
  const [r, w] = await Promise.all([reader.done, writer.done]);
  if (kind !== 'plain') natsRss.push(r.rss as number, w.rss as number);
  if (r.count !== count) throw new Error(`NATS ${kind}: ${String(r.count)} of ${count} messages arrived`);
  return (r.count as number) / (r.seconds as number);
}

async function natsLatency(server: NatsServer, kind: 'plain' | 'npipe', iterations: number): Promise<{ p50: number; p99: number }> {
  const url = server.url(`bench.s${++natsSubjects}`);
  const responder = kind === 'plain' ? natsNode('nats-rep', url) : node('rpc-serve', url);
  await responder.ready;
  const r = await (kind === 'plain' ? natsNode('nats-req', url, iterations, 64) : node('rpc-client', url, iterations, 64)).done;
  responder.kill();
  const s = await responder.done.catch(() => ({}) as Record<string, unknown>);
  if (kind === 'npipe') natsRss.push(r.rss as number, ...(typeof s.rss === 'number' ? [s.rss] : []));
  return { p50: r.p50 as number, p99: r.p99 as number };
}

const NATS_ROWS = ['nats-plain-64b-oneway', 'nats-core-64b-oneway', 'nats-jetstream-64b-oneway', 'rtt-nats-plain-p50', 'rtt-nats-p50', 'rtt-nats-p99'] as const satisfies readonly RowId[];

async function natsRows(Q: number, M64: number, RTT: number): Promise<void> {
  console.log('\nNATS (one local nats-server; npipe beside plain nats.js)');
  if (!natsServerAvailable()) {
    for (const id of NATS_ROWS) record(id, undefined, 'nats-server is not installed (apt-get install -y nats-server)');
    return;
  }
  const server = await NatsServer.start();
  try {
    const count = Math.round(M64 / 6);
    record('nats-plain-64b-oneway', await repeat(() => natsOneWay(server, 'plain', 64, count)));
    record('nats-core-64b-oneway', await repeat(() => natsOneWay(server, 'core', 64, count)));
    record('nats-jetstream-64b-oneway', await repeat(() => natsOneWay(server, 'jetstream', 64, Math.max(1000, Math.round(30_000 * Q)))));
    const plain = [];
    const npipe = [];
    for (let i = 0; i < REPEAT; i++) {
      plain.push(await natsLatency(server, 'plain', Math.round(RTT / 4)));
      npipe.push(await natsLatency(server, 'npipe', Math.round(RTT / 4)));
    }
    record('rtt-nats-plain-p50', { median: median(plain.map((x) => x.p50)), runs: plain.map((x) => x.p50) });
    record('rtt-nats-p50', { median: median(npipe.map((x) => x.p50)), runs: npipe.map((x) => x.p50) });
    record('rtt-nats-p99', { median: median(npipe.map((x) => x.p99)), runs: npipe.map((x) => x.p99) });
  } finally {
    await server.dispose();
  }
}

// ---------------------------------------------------------------------------

const rssSeen: number[] = [];
/** Records the peak RSS each npipe process printed (workers.ts adds `rss` to every result line). */
function peak(...results: Array<Record<string, unknown>>) {
  for (const r of results) {
    if (typeof r.rss !== 'number') throw new Error(`a worker's result has no rss: ${JSON.stringify(r)}`);
    rssSeen.push(r.rss);
  }
}

/** A measured row as bench/results/*.json holds it: `name` is its label, as in files written before rows had ids. */
interface Row {
  id: RowId;
  name: string;
  unit: Unit;
  value: number | undefined;
  runs?: number[];
  /** Throughput rows: the median, and the runs, with every message timed (warm-up included). */
  allValue?: number;
  allRuns?: number[];
  note?: string;
}
const rows: Row[] = [];
function record(id: RowId, result: { median: number; runs: number[] } | undefined, note?: string, all?: number[]) {
  const { label: name, unit } = rowSpec(id);
  const allValue = all ? median(all) : undefined;
  rows.push({ id, name, unit, value: result?.median, ...(result ? { runs: result.runs } : {}), ...(all ? { allValue, allRuns: all } : {}), ...(note ? { note } : {}) });
  const runs = (xs: number[]) => xs.map((r) => format(r, unit)).join(', ');
  const shown =
    result === undefined
      ? `skipped${note ? ` (${note})` : ''}`
      : `${format(result.median, unit)}  [runs: ${runs(result.runs)}]${all ? `  every message timed: ${format(allValue!, unit)}` : ''}`;
  console.log(`  ${name.padEnd(46)} ${shown}`);
}

/**
 * A target's ratio, to two decimals, or three where two would round a miss onto
 * the goal (0.7487 against 0.75 is shown 0.749, not 0.75 NOT met).
 */
function targetRatio(t: { ratio: number | undefined; target: number }): string {
  const two = t.ratio!.toFixed(2);
  return Number(two) === t.target && t.ratio !== t.target ? t.ratio!.toFixed(3) : two;
}

function format(v: number, unit: Unit): string {
  if (unit === 'msg/s') return v < 100_000 ? `${(v / 1e3).toFixed(1)} k msg/s` : `${(v / 1e6).toFixed(2)} M msg/s`;
  if (unit === 'B/s') return `${(v / 1e9).toFixed(2)} GB/s`;
  if (unit === 'us') return `${v.toFixed(1)} µs`;
  return `${v}`;
}

const value = (id: RowId) => rows.find((r) => r.id === id)?.value;
const allValue = (id: RowId) => rows.find((r) => r.id === id)?.allValue;

/** --list: every id and what it is, so docs/PROMISES.md and readers of the JSON can name rows without running anything. */
function list(): void {
  for (const r of ROWS) console.log(`row     ${r.id.padEnd(32)} ${r.label} (${r.unit})`);
  for (const t of TARGETS) console.log(`target  ${t.id.padEnd(32)} ${t.name} (${t.higher ? '>=' : '<='} ${t.target})`);
  for (const r of [...RATIOS, ...NATS_RATIOS]) console.log(`ratio   ${r.id.padEnd(32)} ${r.name}`);
  for (const c of CURVES) console.log(`curve   ${c.id.padEnd(32)} ${c.title}`);
}

/** The cost curves (curves.ts), with this file's process starter, FIFOs and C program. */
async function curves(): Promise<void> {
  await runCurves({
    run,
    workers: WORKERS,
    freshFifo,
    cBin,
    canPin,
    clientCpu: CLIENT_CPU,
    serverCpu: SERVER_CPU,
    scale: Q,
    repoRoot,
  });
}

async function main() {
  if (values.list) return list();
  if (values.curves) {
    console.log(`npm run bench -- --curves: one run per point${values.quick ? ' (quick sizes)' : ''}`);
    cBin = compileC();
    return curves();
  }
  console.log(`npm run bench: ${REPEAT} runs per row, medians${values.quick ? ' (quick sizes)' : ''}\n`);
  cBin = compileC();
  try {
    await import('zeromq');
    zmqAvailable = true;
  } catch {
    zmqAvailable = false;
  }
  const noC = cBin ? undefined : 'no C compiler (cc) found; install gcc to run the C baselines';
  const noZmq = zmqAvailable ? undefined : 'zeromq is not installed (npm ci installs it as a devDependency)';
  const M64 = Math.round(3_000_000 * Q);
  // The 64 B one-way rows send three times as many, about 3 s of npipe per run:
  // long enough that the JIT's warm-up (~8% of a 3M-message run) is ~3% of the rate
  // with every message timed, which is printed beside the steady rate.
  const ONE_WAY_64 = 3 * M64;
  const M1K = Math.round(600_000 * Q);
  const BULK = Math.round(2048 * Q); // 1 MiB messages
  const RAW = Math.round(2048 * Q) * 2 ** 20;
  const RTT = Math.round(20_000 * Q);

  console.log('Throughput rows time each reader after its first tenth (its warm-up: in a Node process, before the JIT');
  console.log('has compiled the hot path); the rate with every message timed is shown beside them and in the JSON.\n');
  if (want('oneway')) {
    console.log('One-way message rate (delivered to the reader as separate messages; rows measured in turns)');
    await interleaved([
      { row: 'c-oneway-68b', measure: cBin ? () => cOneWay(68, ONE_WAY_64) : undefined, note: noC },
      { row: 'node-oneway-64b', measure: () => nodeOneWay(64, ONE_WAY_64) },
      { row: 'zmq-oneway-64b', measure: zmqAvailable ? () => zmqOneWay(64, Math.round(ONE_WAY_64 / 6)) : undefined, note: noZmq },
      { row: 'fifo-frames-64b-oneway', measure: () => npipeOneWay('frames', 64, ONE_WAY_64) },
      { row: 'fifo-length-64b-oneway', measure: () => npipeOneWay('length', 64, ONE_WAY_64) },
      { row: 'fifo-frames-1k-oneway', measure: () => npipeOneWay('frames', 1024, M1K) },
      { row: 'fifo-length-1k-oneway', measure: () => npipeOneWay('length', 1024, M1K) },
      { row: 'fifo-frames-64b-16writers', measure: () => manyWriters(16, 64, Math.round(M64 / 16)) },
    ]);
  }
  if (want('bulk')) {
    console.log('\nBulk (rows measured in turns)');
    await interleaved([
      { row: 'c-bulk', measure: cBin ? () => cBulk(RAW) : undefined, note: noC },
      { row: 'fifo-length-1m-bulk', measure: () => npipeBulkBytes('length', 1 << 20, BULK) },
      { row: 'fifo-length-1m-bulk-into', measure: () => npipeBulkBytes('length', 1 << 20, BULK, true) },
      { row: 'fifo-frames-1m-bulk', measure: () => npipeBulkBytes('frames', 1 << 20, Math.round(BULK / 4)) },
      { row: 'fifo-raw-bulk', measure: () => npipeBulkBytes('raw', 65536, RAW / 65536) },
    ]);
  }
  if (want('rtt')) {
    console.log(
      `\nRequest/reply round trip, 64 B (one client: client and server ${canPin ? `on CPUs ${CLIENT_CPU} and ${SERVER_CPU} (taskset)` : 'not pinned (no taskset, or one CPU)'})`,
    );
    const cP50 = cBin ? await repeat(async () => (await cPingPong(RTT)).p50) : undefined;
    record('rtt-c-p50', cP50, noC);
    const cSame = cBin && canPin ? await repeat(async () => (await cPingPong(RTT, 0, true)).p50) : undefined;
    record('rtt-c-same-cpu-p50', cSame, cBin ? 'no taskset, or one CPU' : noC);
    const cSpin = cBin ? await repeat(async () => (await cPingPong(RTT, BUSY_POLL_US)).p50) : undefined;
    record('rtt-busypoll-c-p50', cSpin, noC);
    const nodeRtt = await repeat(async () => (await nodeLatency(RTT)).p50);
    record('rtt-node-p50', nodeRtt);
    let zmqP50: { median: number; runs: number[] } | undefined;
    let zmqP99: number[] = [];
    if (zmqAvailable) {
      const z = [];
      for (let i = 0; i < REPEAT; i++) z.push(await zmqLatency(RTT));
      zmqP50 = { median: median(z.map((x) => x.p50)), runs: z.map((x) => x.p50) };
      zmqP99 = z.map((x) => x.p99);
    }
    record('rtt-zmq-p50', zmqP50, noZmq);
    record('rtt-zmq-p99', zmqAvailable ? { median: median(zmqP99), runs: zmqP99 } : undefined, noZmq);
    const one = [];
    for (let i = 0; i < REPEAT; i++) one.push(await rpcLatency(1, RTT));
    record('rtt-fifo-p50', { median: median(one.map((x) => x.p50)), runs: one.map((x) => x.p50) });
    record('rtt-fifo-p99', { median: median(one.map((x) => x.p99)), runs: one.map((x) => x.p99) });
    const polled = [];
    for (let i = 0; i < REPEAT; i++) polled.push(await rpcLatency(1, RTT, BUSY_POLL_US));
    record('rtt-busypoll-fifo-p50', { median: median(polled.map((x) => x.p50)), runs: polled.map((x) => x.p50) });
    record('rtt-busypoll-fifo-p99', { median: median(polled.map((x) => x.p99)), runs: polled.map((x) => x.p99) });
    const eight = [];
    for (let i = 0; i < REPEAT; i++) eight.push(await rpcLatency(8, Math.round(RTT / 4)));
    record('rtt-fifo-8clients-p50', { median: median(eight.map((x) => x.p50)), runs: eight.map((x) => x.p50) });
    record('rtt-fifo-8clients-p99', { median: median(eight.map((x) => x.p99)), runs: eight.map((x) => x.p99) });
  }
  if (want('cli')) {
    console.log('\nThe CLI end to end: npipe send < file  ->  npipe listen > /dev/null');
    record('cli-lines-64b', await repeat(() => cliLines(M64)));
    record('cli-raw', await repeat(() => cliRaw(Math.round(1024 * Q) * 2 ** 20)));
  }
  if (want('raw')) {
    console.log('\nRaw streams beside C (file -> FIFO -> /dev/null, 4 GiB; file -> FIFO -> file, 1 GiB; timed from outside)');
    await rawRows(Q);
  }
  if (want('startup')) {
    const { node: startNode, send: startSend, frames: startFrames } = await startup(15);
    record('startup-node', startNode);
    record('startup-cli-send', startSend);
    record('startup-cli-send-frames', startFrames);
  }
  if (want('nats')) await natsRows(Q, M64, RTT);
  if (want('pubsub')) {
    console.log('\nPublish/subscribe: one publisher, 8 subscribers, each message to every one (rows measured in turns)');
    const PS64 = Math.round(200_000 * Q);
    const PS64K = Math.round(4096 * Q);
    await interleaved([
      { row: 'c-fanout-8x64b', measure: cBin ? () => cFanout(64, PS64) : undefined, note: noC },
      { row: 'pubsub-8x64b', measure: () => npipeFanout(64, PS64) },
      { row: 'c-fanout-8x64k', measure: cBin ? () => cFanout(65536, PS64K) : undefined, note: noC },
      { row: 'pubsub-8x64k', measure: () => npipeFanout(65536, PS64K) },
    ]);
  }

  if (want('shm')) {
    console.log('\nShared memory (shm://) beside C and npipe over FIFOs (rows measured in turns)');
    await interleaved([
      { row: 'shm-c-bulk', measure: cBin ? () => cBulk(RAW) : undefined, note: noC },
      { row: 'shm-1m-bulk-into', measure: () => shmOneWay(1 << 20, BULK, true, true) },
      { row: 'shm-1m-bulk', measure: () => shmOneWay(1 << 20, BULK, false, true) },
      { row: 'shm-fifo-frames-64b', measure: () => npipeOneWay('frames', 64, M64) },
      { row: 'shm-64b-oneway', measure: () => shmOneWay(64, M64) },
      { row: 'shm-js-floor-64b', measure: () => forAwaitFloor(64, M64) },
    ]);
    const cRtt = cBin ? await repeat(async () => (await cPingPong(RTT)).p50) : undefined;
    record('shm-rtt-c-p50', cRtt, noC);
    const shmRtt = [];
    for (let i = 0; i < REPEAT; i++) shmRtt.push(await shmPingPong(RTT));
    record('shm-rtt-busypoll-p50', { median: median(shmRtt.map((x) => x.p50)), runs: shmRtt.map((x) => x.p50) });
    record('shm-rtt-busypoll-p99', { median: median(shmRtt.map((x) => x.p99)), runs: shmRtt.map((x) => x.p99) });
  }

  const targets = TARGETS.map((t) => {
    const r = t.ratio();
    return { id: t.id, name: t.name, ratio: r, target: t.target, higher: t.higher, met: r === undefined ? undefined : t.higher ? r >= t.target : r <= t.target };
  });
  const latencyRatios = RATIOS.map(({ ratio: measured, ...r }) => ({ ...r, ratio: measured() }));
  console.log('\nRatios without a target (this run)');
  for (const r of latencyRatios) console.log(`  ${r.name.padEnd(66)} ${r.ratio === undefined ? 'n/a (skipped)' : r.ratio.toFixed(2)}`);

  const natsRatios = NATS_RATIOS.map(({ ratio: measured, ...r }) => ({ ...r, ratio: measured() }));
  console.log('\nNATS ratios (this run; no targets)');
  for (const r of natsRatios) console.log(`  ${r.name.padEnd(52)} ${r.ratio === undefined ? 'n/a (skipped)' : r.ratio.toFixed(2)}`);

  console.log('\nTargets (ratios measured in this run)');
  for (const t of targets) {
    const shown = t.ratio === undefined ? 'n/a (baseline skipped)' : `${targetRatio(t)} (target ${t.higher ? '>=' : '<='} ${t.target})  ${t.met ? 'met' : 'NOT met'}`;
    console.log(`  ${t.name.padEnd(52)} ${shown}`);
  }

  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    date: new Date().toISOString(),
  };
  const results = { machine, repeat: REPEAT, quick: values.quick === true, rows, targets, latencyRatios, natsRatios };
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // --quick (a smoke test of the bench) writes beside the full results, never over them.
  const name = only ? 'only' : values.quick ? 'quick' : 'latest';
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, `${name}.svg`), renderSvg(results));
  const table = markdown(results);
  writeFileSync(join(dir, `${name}.md`), table);
  console.log(`\nmachine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}`);
  console.log(`written: bench/results/${name}.json, ${name}.svg, ${name}.md`);
  if (!values.quick && !only) intoPerformanceDoc(table);
  if (!values['skip-curves'] && !only) await curves();
}

const PERFORMANCE_DOC = join(repoRoot, 'docs', 'PERFORMANCE.md');
const BEGIN = '<!-- bench:latest:begin (written by npm run bench; edits between these markers are overwritten) -->';
const END = '<!-- bench:latest:end -->';

/**
 * Puts a full run's tables into docs/PERFORMANCE.md between its markers, so the
 * document shows the latest run without copying by hand. The prose around them
 * (the history of runs, what the figures mean) stays as written. Markers missing or
 * out of order: the document is left alone and the reason printed; the results in
 * bench/results/ are written already.
 */
function intoPerformanceDoc(table: string): void {
  const doc = existsSync(PERFORMANCE_DOC) ? fs.readFileSync(PERFORMANCE_DOC, 'utf8') : '';
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) {
    console.log(`docs/PERFORMANCE.md not updated: its markers are missing (${BEGIN} ... ${END})`);
    return;
  }
  writeFileSync(PERFORMANCE_DOC, `${doc.slice(0, begin + BEGIN.length)}\n\n${table}\n${doc.slice(end)}`);
  console.log('written: docs/PERFORMANCE.md (the tables between its bench:latest markers)');
}

/** The tables docs/PERFORMANCE.md shows: the machine, the date, each target's and ratio's value, every row; each with its id. */
function markdown(results: {
  machine: { cpu: string; cores: number; kernel: string; node: string; date: string };
  repeat: number;
  rows: Row[];
  targets: Array<{ id: string; name: string; ratio: number | undefined; target: number; higher: boolean; met: boolean | undefined }>;
  latencyRatios: Array<{ id: string; name: string; ratio: number | undefined }>;
  natsRatios: Array<{ id: string; name: string; ratio: number | undefined }>;
}): string {
  const m = results.machine;
  const lines = [
    `Measured ${m.date.slice(0, 10)} on ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}; medians of ${results.repeat} runs.`,
    '',
    '| target | ratio in this run | goal | | id |',
    '| --- | --- | --- | --- | --- |',
    ...results.targets.map(
      (t) => `| ${t.name} | ${t.ratio === undefined ? 'skipped' : targetRatio(t)} | ${t.higher ? '>=' : '<='} ${t.target} | ${t.met === undefined ? '' : t.met ? 'met' : 'not met'} | \`${t.id}\` |`,
    ),
    '',
    '| no target | ratio in this run | id |',
    '| --- | --- | --- |',
    ...results.latencyRatios.map((r) => `| ${r.name} | ${r.ratio === undefined ? 'skipped' : r.ratio.toFixed(2)} | \`${r.id}\` |`),
    '',
    '| NATS (no targets) | ratio in this run | id |',
    '| --- | --- | --- |',
    ...results.natsRatios.map((r) => `| ${r.name} | ${r.ratio === undefined ? 'skipped' : r.ratio.toFixed(2)} | \`${r.id}\` |`),
    '',
    '| row | median | every message timed (throughput rows) | id |',
    '| --- | --- | --- | --- |',
    ...results.rows.map(
      (r) =>
        `| ${r.name} | ${r.value === undefined ? `skipped${r.note ? ` (${r.note})` : ''}` : format(r.value, r.unit)} | ${r.allValue === undefined ? '' : format(r.allValue, r.unit)} | \`${r.id}\` |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

await main();

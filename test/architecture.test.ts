/**
 * The layering of src/ (README "Code layout", issue 16), checked on the source:
 * every import goes down the layers or stays in its own folder, no file imports
 * itself back through others (no circle), no driver reaches into another, and the
 * only code that looks at an address's form to pick a transport is the registry
 * (with the NATS URL parser that defines the form).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { BIN, RECORD_REQUIRES, loadedModules, readerOn, start, tempDir } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  /** src-relative path of the imported file. */
  target: string;
  /** `import type` / `export type`: erased at build, no run-time dependency. */
  typeOnly: boolean;
}

/** Every src file this one imports (static, dynamic, re-exports, type-only). */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const statements = [...text.matchAll(/\b(import|export)\s+(type\s+)?(?:[^;'()]*?\sfrom\s+)?'(\.{1,2}\/[^']+)\.js'/g)];
  const dynamic = [...text.matchAll(/import\(\s*'(\.{1,2}\/[^']+)\.js'\s*\)/g)];
  const target = (spec: string) => relative(SRC, resolve(dirname(file), `${spec}.ts`));
  return [
    ...statements.map((m) => ({ target: target(m[3]!), typeOnly: m[2] !== undefined })),
    ...dynamic.map((m) => ({ target: target(m[1]!), typeOnly: false })),
  ];
}

/**
 * Layers from the bottom: a file may import from a lower layer, or from its own
 * folder. Root files are layers of their own.
 */
const LAYERS: [string, number][] = [
  ['errors.ts', 0],
  ['sys/', 1],
  ['util/', 1],
  ['codec.ts', 1],
  ['fifo/', 2],
  ['framing/', 2],
  ['transport/', 3],
  ['rpc/', 4],
  ['drivers/', 5],
  ['registry.ts', 6],
  ['messaging.ts', 6],
  ['publisher.ts', 6],
  ['api.ts', 7],
  ['index.ts', 8],
  ['fifo-public.ts', 8],
  ['cli/', 9],
];

function layerOf(path: string): { name: string; rank: number } {
  const hit = LAYERS.find(([prefix]) => path === prefix || (prefix.endsWith('/') && path.startsWith(prefix)));
  assert.ok(hit, `src/${path} is in no layer: add its folder to LAYERS here and to README "Code layout"`);
  return { name: hit[0], rank: hit[1] };
}

/** drivers/fifo/x.ts -> 'fifo'; drivers/types.ts -> undefined. */
function driverOf(path: string): string | undefined {
  return /^drivers\/([^/]+)\//.exec(path)?.[1];
}

const files = sources(SRC).map((f) => relative(SRC, f));
const graph = new Map(files.map((f) => [f, importsOf(join(SRC, f))]));

test('every import in src goes down the layers or stays in its folder', () => {
  const wrong: string[] = [];
  for (const [file, imports] of graph) {
    const from = layerOf(file);
    for (const { target } of imports) {
      const to = layerOf(target);
      if (to.rank < from.rank || to.name === from.name) continue;
      wrong.push(`src/${file} (${from.name}) imports src/${target} (${to.name})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no driver imports another, and above the drivers only the registry loads one (others take types)', () => {
  const wrong: string[] = [];
  for (const [file, imports] of graph) {
    const mine = driverOf(file);
    for (const { target, typeOnly } of imports) {
      const driver = driverOf(target);
      if (!driver || driver === mine) continue;
      if (mine) wrong.push(`src/${file} imports src/${target}: a driver never uses another's code`);
      else if (typeOnly) continue;
      // The registry loads drivers/<m>/index.ts and reads the address forms (scheme.ts, address.ts) that claim addresses.
      else if (file === 'registry.ts' && /^drivers\/[^/]+\/(index|scheme|address)\.ts$/.test(target)) continue;
      else wrong.push(`src/${file} imports src/${target}: ask registry.ts for the driver and its capabilities instead`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the import graph of src has no circle', () => {
  const state = new Map<string, 'open' | 'done'>();
  const circles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      circles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
      return;
    }
    state.set(file, 'open');
    for (const { target } of graph.get(file) ?? []) visit(target, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(circles, []);
});

test('only the registry and the NATS scheme check look at an address to pick a transport (no isNatsUrl elsewhere)', () => {
  const users = files.filter((f) => /\bisNatsUrl\b/.test(readFileSync(join(SRC, f), 'utf8')));
  assert.deepEqual(users.sort(), ['drivers/nats/scheme.ts', 'registry.ts']);
});

/** The modules a process loaded while using `address` (test/fixtures/uses-one-medium.ts), and what it printed. */
function loadsWhileUsing(address: string, record: string): { loaded: string[]; printed: string } {
  const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));
  const printed = execFileSync(process.execPath, ['--import', fixture('record-loads'), fixture('uses-one-medium'), address], {
    env: { ...process.env, NPIPE_RECORD_LOADS: record },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { loaded: readFileSync(record, 'utf8').split('\n').filter(Boolean), printed };
}

test('a process that only uses FIFOs never loads the NATS driver or client; one that names a nats:// URL does', (t) => {
  const dir = tempDir(t);
  const fifo = loadsWhileUsing(join(dir, 'pipe'), join(dir, 'fifo-loads'));
  assert.equal(fifo.printed, 'hello\nREPLY\n');
  assert.ok(fifo.loaded.some((url) => url.includes('/drivers/fifo/')), 'the record sees the FIFO driver load');
  assert.deepEqual(fifo.loaded.filter((url) => url.includes('@nats-io') || url.includes('/drivers/nats/') && !url.endsWith('/drivers/nats/scheme.js')), []);
  // The same record, for a nats:// address: the NATS driver and client do load (so the check above can see them).
  const nats = loadsWhileUsing('nats://127.0.0.1:1/npipe-architecture', join(dir, 'nats-loads'));
  assert.equal(nats.printed, 'ERR_NPIPE_UNREACHABLE\n');
  assert.ok(nats.loaded.some((url) => url.includes('@nats-io')));
  assert.ok(nats.loaded.some((url) => url.includes('/drivers/nats/index.js')));
});

test('a one-shot npipe send loads only what it runs: its own command, the FIFO sender; not the other commands, the receiver, request/reply or the splice lanes, nor node:net; koffi\'s native module without its loader; with --format frames not koffi or node:crypto either', async (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'pipe');
  // A reader holding the FIFO open, so that the send does not wait.
  const reader = start(process.execPath, [BIN, 'listen', fifo]);
  t.after(() => reader.child.kill('SIGKILL'));
  await readerOn(fifo);
  const sendLoads = (name: string, ...args: string[]) => {
    const record = join(dir, name);
    execFileSync(process.execPath, ['-r', RECORD_REQUIRES, BIN, 'send', fifo, ...args], {
      env: { ...process.env, NPIPE_RECORD_LOADS: record },
      timeout: 60_000,
    });
    return loadedModules(record);
  };
  const loaded = sendLoads('lines-loads', 'one event');
  assert.ok(loaded.some((url) => url.endsWith('/src/cli/send.js')) && loaded.some((url) => url.endsWith('/src/drivers/fifo/sender.js')), 'the record sees the send');
  const notNeeded = /\/cli\/(listen|serve|request|bridge|mkfifo|demo)\.js$|\/rpc\/frame-(server|client)\.js$|\/drivers\/fifo\/(receiver|reply-transport|raw-stream|counted-reader)\.js$|\/drivers\/(nats|winpipe)\/index\.js$/;
  assert.deepEqual(loaded.filter((url) => notNeeded.test(url)), []);
  // Its one write goes through at once: no socket, so node:net (~5 ms with node:stream) is never loaded.
  assert.deepEqual(loaded.filter((url) => url === 'node:net' || url === 'node:stream'), []);
  // lines takes the writers' lock through koffi: its native module, loaded where the pinned version
  // puts it, without koffi's loader (16-17 ms here against 4.5: src/sys/libc.ts requireKoffi).
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    assert.ok(loaded.some((url) => url.endsWith(`/@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`)), 'koffi.node loaded directly');
    assert.deepEqual(loaded.filter((url) => /\/koffi\/(index|src\/koffi\/index)\.c?js$/.test(url)), [], "koffi's loader");
  }
  // frames needs no writers' lock, so nothing calls libc: koffi (~15-25 ms to load here) stays out, as does
  // node:crypto (~7 ms). lines takes the lock (flock, through koffi) to stay whole beside a large message.
  const frames = sendLoads('frames-loads', '--format', 'frames', 'one event');
  assert.ok(frames.some((url) => url.endsWith('/src/drivers/fifo/sender.js')), 'the record sees the frames send');
  assert.deepEqual(frames.filter((url) => notNeeded.test(url) || url.includes('koffi') || url === 'node:crypto'), []);
});

/**
 * Issue 15, signal fault test: `npipe send` processes SIGTERMed and SIGKILLed at
 * random moments, in every format, while one reader reads (throttled, so that the
 * pipe is often full and kills land inside writes). Every message carries its own
 * length and checksum; the reader checks each one, that each sender's messages
 * arrive as an in-order prefix of what it sent (nothing torn, skipped or doubled),
 * and, after each kill, that a message from a fresh sender arrives intact (the
 * reader never loses step).
 *
 * What is promised, and so what is tested (README "Many writers, one reader",
 * docs/PROTOCOL.md): `frames` never delivers a torn message, whatever kills the
 * writer, at any size. `lines`, `length` and `fixed:N`: a message of at most
 * PIPE_BUF bytes goes out in one write and is never torn, even by SIGKILL; a larger
 * one is written in pieces, which SIGTERM (SIGINT, SIGHUP) lets finish whole, but
 * SIGKILL can cut. So SIGKILL runs use messages up to PIPE_BUF in those formats.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { PIPE_BUF, mkfifo, openReceiver, openSender } from '../src/index.js';
import { BIN, delay, start, tempDir, until } from './helpers.js';

const RUNS = 20;
/** Header: kind (M message, K marker), run (3), seq (5), body length (7), FNV-1a of the body (8 hex), ':'. */
const HEADER = 1 + 3 + 5 + 7 + 8 + 1;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fnv(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** A self-checking message of exactly `size` bytes (>= HEADER), letters only (no newline). */
function makeMessage(kind: 'M' | 'K', run: number, seq: number, size: number, random: () => number): Buffer {
  const body = Buffer.allocUnsafe(size - HEADER);
  for (let i = 0; i < body.length; i++) body[i] = 0x61 + Math.floor(random() * 26);
  const header = `${kind}${String(run).padStart(3, '0')}${String(seq).padStart(5, '0')}${String(body.length).padStart(7, '0')}${fnv(body).toString(16).padStart(8, '0')}:`;
  return Buffer.concat([Buffer.from(header), body]);
}

/** The message's kind, run and seq if it is whole and unaltered, else a description of what is wrong. */
function check(m: Buffer): { kind: string; run: number; seq: number } | string {
  if (m.length < HEADER) return `short message (${m.length} bytes)`;
  const h = m.subarray(0, HEADER).toString('latin1');
  const parsed = /^([MK])(\d{3})(\d{5})(\d{7})([0-9a-f]{8}):$/.exec(h);
  if (!parsed) return `bad header ${JSON.stringify(h)}`;
  const body = m.subarray(HEADER);
  if (body.length !== Number(parsed[4])) return `torn: ${body.length} body bytes, header says ${parsed[4]}`;
  if (fnv(body).toString(16).padStart(8, '0') !== parsed[5]) return `corrupt body in ${h}`;
  return { kind: parsed[1]!, run: Number(parsed[2]), seq: Number(parsed[3]) };
}

interface Combo {
  format: string;
  signal: 'SIGTERM' | 'SIGKILL';
  /** A message size for this combination. */
  size(random: () => number): number;
  /** Messages per sender. */
  count: number;
}

/** Sizes spread evenly on a log scale between HEADER and `max`. */
const logSize = (max: number) => (random: () => number) => Math.floor(Math.exp(Math.log(HEADER) + random() * (Math.log(max) - Math.log(HEADER))));

interface Outcome {
  killedMidRun: number;
  delivered: number;
  dropped: number;
}

async function runCombo(t: TestContext, combo: Combo, seed: number): Promise<Outcome> {
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  mkfifo(path);
  const random = rng(seed);
  const receiver = await openReceiver<Buffer>(path, { format: combo.format, codec: 'bytes' });
  const bad: string[] = [];
  const seqs = new Map<number, number[]>();
  const markers = new Set<number>();
  let delivered = 0;
  let readerError: unknown;
  const reading = (async () => {
    try {
      for await (const m of receiver) {
        const c = check(m);
        if (typeof c === 'string') bad.push(c);
        else if (c.kind === 'K') markers.add(c.run);
        else {
          let list = seqs.get(c.run);
          if (!list) seqs.set(c.run, (list = []));
          list.push(c.seq);
        }
        // A throttled reader: the pipe fills, and kills land inside writes.
        if (++delivered % 8 === 0) await delay(1);
      }
    } catch (err) {
      readerError = err;
    }
  })();
  let killedMidRun = 0;
  try {
    for (let run = 0; run < RUNS; run++) {
      const sizes = Array.from({ length: combo.count }, () => combo.size(random));
      const input = join(dir, `in-${run}`);
      writeFileSync(input, Buffer.concat(sizes.flatMap((size, seq) => [makeMessage('M', run, seq, size, random), Buffer.from('\n')])));
      // `npipe send < file` (exec: the signal reaches npipe itself, not a shell).
      const sender = start('sh', ['-c', 'f=$1; shift; exec "$@" < "$f"', 'sh', input, process.execPath, BIN, 'send', path, '--format', combo.format], { hangMs: 20_000 });
      let exited = false;
      void sender.done.then(() => (exited = true));
      if (random() < 0.25) await delay(Math.floor(random() * 80)); // anywhere, start-up included
      else {
        await until(() => (seqs.get(run)?.length ?? 0) > 0 || exited, `run ${run}: its first message`, 15_000);
        await delay(Math.floor(random() * 20));
      }
      if (!exited) killedMidRun++;
      sender.child.kill(combo.signal);
      const result = await sender.done;
      // A fresh sender after the kill: its message must arrive whole.
      const fresh = await openSender<Uint8Array>(path, { format: combo.format, codec: 'bytes', timeout: 10_000 });
      await fresh.send(makeMessage('K', run, 0, combo.format.startsWith('fixed:') ? combo.size(random) : HEADER + 10, random));
      await fresh.close();
      await until(() => markers.has(run) || readerError !== undefined || bad.length > 0, `run ${run}: the fresh sender's message`, 15_000);
      if (readerError !== undefined || bad.length > 0) break;
      // What arrived from the killed sender is an in-order prefix of what it sent.
      const got = seqs.get(run) ?? [];
      if (!got.every((s, i) => s === i)) bad.push(`run ${run}: sequence ${got.slice(0, 20).join(',')}... is not a prefix`);
      if (combo.signal === 'SIGTERM') {
        // 143 after its handler ran; 0 when it had finished. Or killed by the signal's
        // default action while Node starts (before any handler: nothing sent) or
        // exits (its handlers gone: everything sent).
        const ok =
          (result.code === 143 && result.stderr === 'npipe send: stopped by SIGTERM\n') ||
          (result.code === 0 && result.stderr === '') ||
          (result.signal === 'SIGTERM' && (got.length === 0 || got.length === combo.count));
        if (!ok) bad.push(`run ${run} (${combo.format}): exit ${result.code ?? result.signal}, stderr ${JSON.stringify(result.stderr)}, ${got.length} delivered`);
      }
    }
  } finally {
    await receiver.close();
    await reading;
  }
  assert.equal(readerError, undefined, `the reader failed: ${String((readerError as Error | undefined)?.message)}`);
  assert.deepEqual(bad, []);
  return { killedMidRun, delivered, dropped: receiver.dropped.messages };
}

function combos(signal: 'SIGTERM' | 'SIGKILL'): Combo[] {
  // SIGTERM: messages up to 200 KB (the pipe holds 256 KiB) in every format. SIGKILL: any size
  // in frames; up to PIPE_BUF with framing in the others (see the file comment).
  const large = signal === 'SIGTERM';
  return [
    { format: 'frames', signal, size: logSize(200_000), count: large ? 40 : 120 },
    { format: 'lines', signal, size: logSize(large ? 200_000 : PIPE_BUF - 1), count: large ? 40 : 300 },
    { format: 'length', signal, size: logSize(large ? 200_000 : PIPE_BUF - 4), count: large ? 40 : 300 },
    large ? { format: 'fixed:60000', signal, size: () => 60_000, count: 60 } : { format: `fixed:${PIPE_BUF}`, signal, size: () => PIPE_BUF, count: 300 },
  ];
}

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  test(`#15.4 - ${signal} at random moments, ${RUNS} senders per format: every message whole, each sender's an in-order prefix, the reader never out of step`, async (t) => {
    const seed = Number(process.env.NPIPE_SIGNAL_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`seed ${seed} (NPIPE_SIGNAL_SEED=${seed} repeats this run)`);
    const outcomes = await Promise.all(combos(signal).map((combo, i) => runCombo(t, combo, seed + i)));
    combos(signal).forEach((combo, i) => {
      const o = outcomes[i]!;
      t.diagnostic(`${combo.format}: ${o.killedMidRun}/${RUNS} killed while running, ${o.delivered} messages checked, ${o.dropped} dropped by the reader`);
    });
  });
}

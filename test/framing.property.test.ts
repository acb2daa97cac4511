/**
 * Property tests (fast-check) for every encoder/decoder pair: frames, lines, length,
 * fixed:N, raw. Whatever the messages and however the byte stream is cut into reads,
 * a decoder gives back exactly the messages encoded; whatever bytes it is fed, it
 * gives messages, drops (frames) or a coded NpipeError, never another exception; and
 * a size over the limit is refused before a buffer for it is allocated. The lines
 * splitter under the lines decoder and the CLI's lines paths (split-lines.ts) gives,
 * however the stream is cut, what one split of the whole stream gives.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { NpipeError, createFraming, type DropInfo, type Framing } from '../src/index.js';
import type { FrameTooLargeError } from '../src/errors.js';
import { framesFraming } from '../src/framing/frames.js';
import { LineSplitter } from '../src/framing/split-lines.js';

/** Cases per property: the suite stays fast on 2 cores. */
const RUNS = { numRuns: 150 };

/** How a reader feeds a decoder: cut points in the stream, and whether it reads into target() (the receiver's large-message path) or lends buffers (receiveInto). */
interface Feed {
  cuts: number[];
  useTarget: boolean;
  borrow: boolean;
}

const feedArb: fc.Arbitrary<Feed> = fc.record({
  cuts: fc.array(fc.nat(), { maxLength: 40 }),
  useTarget: fc.boolean(),
  borrow: fc.boolean(),
});

/** The stream cut at `cuts` (taken modulo its length), in order. */
function split(stream: Buffer, cuts: number[]): Buffer[] {
  if (stream.length === 0) return [];
  const at = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b).filter((c) => c > 0);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const c of [...at, stream.length]) {
    pieces.push(stream.subarray(from, c));
    from = c;
  }
  return pieces;
}

/**
 * Decodes `stream` as a reader would: pieces cut at `feed.cuts`, each copied into a
 * reused read buffer that is scribbled over after push() (so a message kept past its
 * push() must have been copied by the decoder), with target()/filled() taken when the
 * decoder offers it and `feed.useTarget` says so.
 */
function decodeAll(framing: Framing, stream: Buffer, feed: Feed, drops: DropInfo[] = []): Buffer[] {
  const out: Buffer[] = [];
  const emit = (m: Buffer) => out.push(Buffer.from(m));
  const decoder = framing.createDecoder({
    onDrop: (d) => drops.push(d),
    ...(feed.borrow ? { borrow: (size: number) => Buffer.alloc(size) } : {}),
  });
  const reused = Buffer.alloc(stream.length + 1);
  for (const piece of split(stream, feed.cuts)) {
    let at = 0;
    while (at < piece.length) {
      const target = feed.useTarget ? decoder.target?.() : undefined;
      if (target && target.length > 0) {
        const n = Math.min(target.length, piece.length - at);
        piece.copy(target, 0, at, at + n);
        decoder.filled!(n, emit);
        at += n;
      } else {
        const n = piece.length - at;
        piece.copy(reused, 0, at);
        decoder.push(reused.subarray(0, n), emit);
        reused.fill(0xee, 0, n);
        at += n;
      }
    }
  }
  decoder.end(emit);
  return out;
}

function encodeAll(framing: Framing, messages: Uint8Array[]): Buffer {
  return Buffer.concat(messages.flatMap((m) => [...framing.encode(m)]));
}

/**
 * Messages of 0 to maxLength bytes: short random ones, or any length up to maxLength
 * (fast-check keeps arrays small by default; large messages take other code paths:
 * several packets, reads straight into the message's buffer) filled from a seed.
 */
const bytes = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.uint8Array({ maxLength: Math.min(maxLength, 64) }).map((a) => Buffer.from(a)),
    fc.tuple(fc.integer({ min: 0, max: maxLength }), fc.integer({ min: 0, max: 255 })).map(([n, seed]) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = (seed + i * 31 + (i >> 7)) & 0xff;
      return b;
    }),
  );
const exactly = (n: number): fc.Arbitrary<Buffer> => bytes(n).map((b) => Buffer.concat([b, Buffer.alloc(n, 0x42)]).subarray(0, n));
/** Bytes with every "\n" made a space: what a line can hold. */
const lineBytes = (maxLength: number) => bytes(maxLength).map((b) => Buffer.from(b.map((x) => (x === 0x0a ? 0x20 : x))));

/** Each format with what it can carry. */
const formats: Array<{ name: string; framing: () => Framing; messages: fc.Arbitrary<Buffer[]>; joined?: boolean }> = [
  { name: 'frames (4096-byte packets)', framing: () => createFraming('frames', { maxMessageSize: 1 << 20 }), messages: fc.array(bytes(12_000), { maxLength: 12 }) },
  { name: 'frames (32-byte packets: many per message)', framing: () => framesFraming({ maxMessageSize: 1 << 20, packetSize: 32 }), messages: fc.array(bytes(300), { maxLength: 12 }) },
  { name: 'lines', framing: () => createFraming('lines', { maxMessageSize: 1 << 20 }), messages: fc.array(lineBytes(3000), { maxLength: 20 }) },
  { name: 'length', framing: () => createFraming('length', { maxMessageSize: 1 << 20 }), messages: fc.array(bytes(200_000), { maxLength: 8 }) },
  { name: 'fixed:7', framing: () => createFraming('fixed:7'), messages: fc.array(exactly(7), { maxLength: 30 }) },
  { name: 'fixed:5000', framing: () => createFraming('fixed:5000'), messages: fc.array(exactly(5000), { maxLength: 4 }) },
  // raw has no boundaries: what comes back, joined, is the bytes that went in.
  { name: 'raw', framing: () => createFraming('raw'), messages: fc.array(bytes(5000), { maxLength: 10 }), joined: true },
];

/** The only errors a decoder may throw on hostile input. */
function isCodedFramingError(err: unknown): boolean {
  return err instanceof NpipeError && (err.code === 'ERR_NPIPE_BAD_FRAME' || err.code === 'ERR_NPIPE_FRAME_TOO_LARGE');
}

describe('every encoder/decoder pair round-trips, however the stream is cut', () => {
  for (const format of formats) {
    test(`${format.name}: encode arbitrary messages, cut the bytes anywhere, decode incrementally: exactly the messages back`, () => {
      fc.assert(
        fc.property(format.messages, feedArb, (messages, feed) => {
          const framing = format.framing();
          const drops: DropInfo[] = [];
          const got = decodeAll(framing, encodeAll(framing, messages), feed, drops);
          assert.deepEqual(drops, []);
          if (format.joined) assert.ok(Buffer.concat(got).equals(Buffer.concat(messages)));
          else {
            assert.equal(got.length, messages.length);
            for (const [i, m] of messages.entries()) assert.ok(got[i]!.equals(m), `message ${i} of ${messages.length}`);
          }
        }),
        RUNS,
      );
    });
  }

  test("frames: several writers' packets interleaved, the stream cut anywhere: each writer's messages whole, in its order", () => {
    fc.assert(
      fc.property(fc.array(fc.array(bytes(200), { maxLength: 6 }), { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 200 }), feedArb, (perWriter, order, feed) => {
        const queues = perWriter.map((messages, w) => messages.flatMap((m) => [...framesFraming({ maxMessageSize: 1 << 20, packetSize: 32, writerId: w + 1 }).encode(m)]));
        const packets: Buffer[] = [];
        for (let pick = 0; queues.some((q) => q.length > 0); pick++) {
          const live = queues.filter((q) => q.length > 0);
          packets.push(live[(order.length > 0 ? order[pick % order.length]! : 0) % live.length]!.shift()!);
        }
        const out: Buffer[] = [];
        const decoder = framesFraming({ maxMessageSize: 1 << 20, packetSize: 32 }).createDecoder({ onDrop: (d) => assert.fail(`dropped: ${JSON.stringify(d)}`) });
        for (const piece of split(Buffer.concat(packets), feed.cuts)) decoder.push(piece, (m) => out.push(Buffer.from(m)));
        decoder.end(() => {});
        assert.equal(out.length, perWriter.flat().length);
        // Each writer's messages come out in its order (a subsequence of all that came out).
        for (const messages of perWriter) {
          let at = 0;
          for (const m of out) if (at < messages.length && m.equals(messages[at]!)) at++;
          assert.equal(at, messages.length);
        }
      }),
      RUNS,
    );
  });
});

describe('hostile input: only messages, drops, or a coded NpipeError', () => {
  const hostile: Array<{ name: string; framing: () => Framing }> = [
    { name: 'frames', framing: () => createFraming('frames', { maxMessageSize: 5000, maxPartialBytes: 20_000 }) },
    { name: 'frames (32-byte packets)', framing: () => framesFraming({ maxMessageSize: 5000, packetSize: 32, maxPartialBytes: 20_000 }) },
    { name: 'lines', framing: () => createFraming('lines', { maxMessageSize: 5000 }) },
    { name: 'length', framing: () => createFraming('length', { maxMessageSize: 5000 }) },
    { name: 'fixed:7', framing: () => createFraming('fixed:7') },
    { name: 'raw', framing: () => createFraming('raw', { maxMessageSize: 5000 }) },
  ];
  for (const format of hostile) {
    test(`${format.name}: garbage cut anywhere yields messages (within the limit, but for raw), drops, or ERR_NPIPE_BAD_FRAME / ERR_NPIPE_FRAME_TOO_LARGE, never another exception`, () => {
      fc.assert(
        fc.property(bytes(20_000), feedArb, (garbage, feed) => {
          try {
            const got = decodeAll(format.framing(), garbage, feed);
            // raw has no messages, only reads as they come: no limit to hold them to.
            if (format.name !== 'raw') for (const m of got) assert.ok(m.length <= 5000, `a message of ${m.length} bytes over the 5000 limit`);
          } catch (err) {
            if (!isCodedFramingError(err)) throw err;
          }
        }),
        RUNS,
      );
    });

    test(`${format.name}: a valid stream with bytes changed, cut anywhere, never throws anything but a coded framing error`, () => {
      fc.assert(
        fc.property(
          fc.array(lineBytes(3000), { maxLength: 8 }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 10 }),
          feedArb,
          (messages, changes, feed) => {
            const framing = format.framing();
            const carried = format.name.startsWith('fixed') ? messages.map((m) => Buffer.concat([m, Buffer.alloc(7)]).subarray(0, 7)) : messages;
            const stream = Buffer.from(encodeAll(framing, carried));
            if (stream.length === 0) return;
            for (const [at, value] of changes) stream[at % stream.length] = value;
            try {
              decodeAll(format.framing(), stream, feed);
            } catch (err) {
              if (!isCodedFramingError(err)) throw err;
            }
          },
        ),
        RUNS,
      );
    });
  }

  test('encoders refuse what their format cannot carry with a coded error: over the limit, a "\\n" in a line, a fixed:N message of another size', () => {
    fc.assert(
      fc.property(bytes(300), (m) => {
        const cases: Array<[Framing, boolean]> = [
          [createFraming('length', { maxMessageSize: 100 }), m.length > 100],
          [createFraming('frames', { maxMessageSize: 100 }), m.length > 100],
          [createFraming('lines', { maxMessageSize: 1000 }), m.includes(0x0a)],
          [createFraming('fixed:10'), m.length !== 10],
        ];
        for (const [framing, refused] of cases) {
          let error: unknown;
          try {
            for (const unit of framing.encode(m)) void unit;
          } catch (err) {
            error = err;
          }
          if (refused) assert.ok(error instanceof NpipeError && ['ERR_NPIPE_FRAME_TOO_LARGE', 'ERR_NPIPE_BAD_FRAME'].includes(error.code), `${framing.name}: ${String(error)}`);
          else assert.equal(error, undefined, framing.name);
        }
      }),
      RUNS,
    );
  });
});

describe('size limits are enforced before allocating', () => {
  /** ArrayBuffer memory grown while `fn` runs (an allocation of the announced size would show here). */
  function allocatedDuring(fn: () => void): number {
    const before = process.memoryUsage().arrayBuffers;
    fn();
    return process.memoryUsage().arrayBuffers - before;
  }

  test('length: a header announcing up to 2^31-1 bytes (or up to 2^64-1 in the long form) over the limit throws ERR_NPIPE_FRAME_TOO_LARGE with nothing allocated', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1001, max: 0x7fffffff }), fc.bigInt({ min: 1001n, max: 2n ** 64n - 1n }), fc.boolean(), (size, long, useLong) => {
        const header = Buffer.alloc(useLong ? 12 : 4);
        if (useLong) {
          header.writeInt32BE(-1, 0);
          header.writeBigUInt64BE(long, 4);
        } else header.writeUInt32BE(size, 0);
        const decoder = createFraming('length', { maxMessageSize: 1000 }).createDecoder();
        let error: unknown;
        const grown = allocatedDuring(() => {
          try {
            decoder.push(Buffer.concat([header, Buffer.alloc(10)]), () => {});
          } catch (err) {
            error = err;
          }
        });
        assert.ok(error instanceof NpipeError && error.code === 'ERR_NPIPE_FRAME_TOO_LARGE', String(error));
        assert.ok(grown < 1 << 20, `${grown} bytes allocated`);
      }),
      { numRuns: 60 },
    );
  });

  test('frames: a first packet announcing up to 2^32-1 bytes over the limit is dropped (too-large) with nothing allocated, and the next message arrives', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1001, max: 0xffffffff }), (total) => {
        const packet = Buffer.alloc(16 + 8);
        packet[0] = 0xfe;
        packet[1] = 0x01;
        packet.writeUInt16BE(8, 2);
        packet.writeUInt32BE(9, 4);
        packet.writeUInt32BE(total, 8);
        const next = [...framesFraming({ maxMessageSize: 1000, packetSize: 4096, writerId: 10 }).encode(Buffer.from('next'))];
        const drops: DropInfo[] = [];
        const out: string[] = [];
        const decoder = createFraming('frames', { maxMessageSize: 1000 }).createDecoder({ onDrop: (d) => drops.push(d) });
        const grown = allocatedDuring(() => decoder.push(Buffer.concat([packet, ...next]), (m) => out.push(m.toString())));
        assert.deepEqual(drops.map((d) => [d.reason, d.bytes]), [['too-large', total]]);
        assert.deepEqual(out, ['next']);
        assert.ok(grown < 1 << 20, `${grown} bytes allocated`);
        assert.equal(decoder.pendingBytes, 0);
      }),
      { numRuns: 60 },
    );
  });

  test('lines: a line growing past the limit throws ERR_NPIPE_FRAME_TOO_LARGE, never holding more than the limit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 30 }), (max, reads) => {
        const decoder = createFraming('lines', { maxMessageSize: max }).createDecoder();
        let fed = 0;
        let current = 0;
        try {
          for (const n of reads) {
            current = n;
            decoder.push(Buffer.alloc(n, 0x61), () => {});
            fed += n;
            assert.ok(decoder.pendingBytes <= max, `${decoder.pendingBytes} held, limit ${max}`);
          }
          assert.ok(fed <= max, `${fed} bytes without a "\\n" accepted over a limit of ${max}`);
        } catch (err) {
          if (!(err instanceof NpipeError && err.code === 'ERR_NPIPE_FRAME_TOO_LARGE')) throw err;
          assert.ok(fed + current > max, `refused at ${fed + current} bytes, limit ${max}`);
        }
      }),
      RUNS,
    );
  });
});

/** The stream as one split gives it (latin1: one char per byte): every "\n"-ended line, and the unended tail. */
function oneSplit(stream: Buffer): { lines: string[]; tail: string } {
  const parts = stream.toString('latin1').split('\n');
  return { lines: parts.slice(0, -1), tail: parts.at(-1)! };
}

/** Bytes with many "\n"s (and "\r"s, empty lines), or any bytes (few "\n"s: long lines). */
const lineStream: fc.Arbitrary<Buffer> = fc.oneof(
  fc.array(fc.constantFrom(0x0a, 0x0a, 0x0d, 0x61, 0x00, 0xff), { maxLength: 3000 }).map((a) => Buffer.from(a)),
  bytes(12_000),
);

type SplitMode = 'pushLines' | 'push' | 'push with runBytes';
const splitModes: SplitMode[] = ['pushLines', 'push', 'push with runBytes'];

/**
 * Feeds `stream`, cut at `cuts`, to a LineSplitter in `mode`, and gathers what comes
 * out as latin1 lines, checking the shape of each run on the way. With `copyTail`,
 * every piece is read into one reused buffer scribbled over after push() (as the
 * receiver does); without, pieces are views of `stream` (as the CLI's reads are).
 * `error`: what was thrown, if anything (`lines` then holds what came out before).
 */
function splitAll(
  stream: Buffer,
  cuts: number[],
  mode: SplitMode,
  options: { max: number; runBytes: number; copyTail: boolean },
): { lines: string[]; tail: string | undefined; error?: unknown } {
  const lines: string[] = [];
  const splitter = new LineSplitter(options.max, {
    what: 'line',
    copyTail: options.copyTail,
    ...(mode === 'push with runBytes' ? { runBytes: options.runBytes } : {}),
  });
  const sink = {
    run(bytes: Buffer, count: number) {
      const text = bytes.toString('latin1');
      assert.ok(text.endsWith('\n'), 'a run ends with "\n"');
      const runLines = text.slice(0, -1).split('\n');
      if (mode === 'push with runBytes') {
        assert.ok(bytes.length <= options.runBytes, `a run of ${bytes.length} bytes, runBytes ${options.runBytes}`);
        assert.equal(count, 0);
      } else assert.equal(count, runLines.length, 'the count of lines in a run');
      lines.push(...runLines);
    },
    line(line: Buffer) {
      lines.push(line.toString('latin1'));
    },
  };
  const reused = Buffer.alloc(stream.length + 1);
  try {
    for (const piece of split(stream, cuts)) {
      let chunk = piece;
      if (options.copyTail) {
        piece.copy(reused);
        chunk = reused.subarray(0, piece.length);
      }
      if (mode === 'pushLines') splitter.pushLines(chunk, (line) => lines.push(line.toString('latin1')));
      else splitter.push(chunk, sink);
      if (options.copyTail) chunk.fill(0xee);
      assert.ok(splitter.pendingBytes <= options.max, `${splitter.pendingBytes} bytes held, limit ${options.max}`);
    }
  } catch (error) {
    return { lines, tail: undefined, error };
  }
  const pending = splitter.pendingBytes;
  const tail = splitter.end();
  assert.equal(tail?.length ?? 0, pending);
  assert.equal(splitter.pendingBytes, 0);
  return { lines, tail: tail?.toString('latin1') ?? '' };
}

describe('the lines splitter (split-lines.ts): what one split of the whole stream gives, however it is cut', () => {
  for (const mode of splitModes) {
    test(`${mode}: any bytes cut anywhere give exactly the lines and the tail of one split`, () => {
      fc.assert(
        fc.property(lineStream, fc.array(fc.nat(), { maxLength: 40 }), fc.constantFrom(1, 2, 7, 64, 4096), fc.boolean(), (stream, cuts, runBytes, copyTail) => {
          // A limit nothing reaches: every line comes out.
          const max = stream.length + 1;
          const got = splitAll(stream, cuts, mode, { max, runBytes: Math.min(runBytes, max + 1), copyTail });
          assert.equal(got.error, undefined);
          const want = oneSplit(stream);
          assert.deepEqual(got.lines, want.lines);
          assert.equal(got.tail, want.tail);
        }),
        RUNS,
      );
    });
  }

  for (const mode of ['pushLines', 'push'] as const) {
    test(`${mode}: a line over the limit, whole or cut, throws ERR_NPIPE_FRAME_TOO_LARGE after exactly the lines before it`, () => {
      fc.assert(
        fc.property(lineStream, fc.array(fc.nat(), { maxLength: 40 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), (stream, cuts, max, copyTail) => {
          const got = splitAll(stream, cuts, mode, { max, runBytes: 0, copyTail });
          const want = oneSplit(stream);
          const over = [...want.lines, want.tail].findIndex((line) => line.length > max);
          if (over === -1) {
            assert.equal(got.error, undefined);
            assert.deepEqual(got.lines, want.lines);
            assert.equal(got.tail, want.tail);
            return;
          }
          const error = got.error as FrameTooLargeError;
          assert.ok(error instanceof NpipeError && error.code === 'ERR_NPIPE_FRAME_TOO_LARGE', `thrown: ${String(error)}`);
          assert.equal(error.what, 'line');
          assert.equal(error.limit, max);
          // The size seen when refused: over the limit, and no more than the line (a line still being read is refused as soon as it passes the limit).
          const line = [...want.lines, want.tail][over]!;
          assert.ok(error.size > max && error.size <= line.length, `refused at ${error.size} bytes, a line of ${line.length}, limit ${max}`);
          assert.deepEqual(got.lines, want.lines.slice(0, over));
        }),
        RUNS,
      );
    });
  }

  test('push with runBytes: only the line still being read is held to the limit; whole lines go out, long ones alone, for the sink to check', () => {
    fc.assert(
      fc.property(lineStream, fc.array(fc.nat(), { maxLength: 40 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), (stream, cuts, max, copyTail) => {
        const got = splitAll(stream, cuts, 'push with runBytes', { max, runBytes: max + 1, copyTail });
        const want = oneSplit(stream);
        if (got.error === undefined) {
          assert.deepEqual(got.lines, want.lines);
          assert.equal(got.tail, want.tail);
          return;
        }
        const error = got.error as FrameTooLargeError;
        assert.ok(error instanceof NpipeError && error.code === 'ERR_NPIPE_FRAME_TOO_LARGE', `thrown: ${String(error)}`);
        // Refused: the line after those that went out, over the limit and cut by a read.
        assert.deepEqual(got.lines, want.lines.slice(0, got.lines.length));
        const refused = [...want.lines, want.tail][got.lines.length]!;
        assert.ok(error.size > max && error.size <= refused.length, `refused at ${error.size} bytes, a line of ${refused.length}, limit ${max}`);
      }),
      RUNS,
    );
  });

  test('runBytes over max + 1 is refused (a run could hold a line over the limit)', () => {
    assert.throws(() => new LineSplitter(10, { runBytes: 12 }), RangeError);
    assert.doesNotThrow(() => new LineSplitter(10, { runBytes: 11 }));
  });
});

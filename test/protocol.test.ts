/**
 * The frames protocol: docs/PROTOCOL.md's test vectors against the code, and the
 * reader's rules (reassembly per writer, drops, bounds).
 */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { BadFrameError, createFraming, openReceiver, type DropInfo, type FrameDecoder } from '../src/index.js';
import { MAX_PARTIALS, encodePackets, framesFraming } from '../src/framing/frames.js';

const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');

interface Vector {
  message: string;
  writer: number;
  pid: number;
  packetSize: number;
  packets: string[];
}

function vectors(): Vector[] {
  const out: Vector[] = [];
  for (const [, body] of doc.matchAll(/```vector\n([\s\S]*?)```/g)) {
    const lines = body!.trim().split('\n');
    const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))!.slice(name.length + 2);
    out.push({
      message: JSON.parse(field('message')) as string,
      writer: Number(field('writer')),
      pid: Number(field('pid')),
      packetSize: Number(field('packet-size')),
      packets: lines.filter((l) => /^[0-9a-f]{2}( [0-9a-f]{2})*$/.test(l)).map((l) => l.replaceAll(' ', '')),
    });
  }
  return out;
}

function decode(decoder: FrameDecoder, chunks: Buffer[]): string[] {
  const out: string[] = [];
  for (const c of chunks) decoder.push(c, (m) => out.push(m.toString()));
  return out;
}

describe('docs/PROTOCOL.md test vectors', () => {
  const all = vectors();
  test('the document has the vectors', () => assert.ok(all.length >= 3));
  for (const v of all) {
    test(`${JSON.stringify(v.message).slice(0, 30)} in ${v.packets.length} packet(s)`, () => {
      const encoded = [...encodePackets(Buffer.from(v.message), v.writer, v.pid, v.packetSize)].map((p) => p.toString('hex'));
      assert.deepEqual(encoded, v.packets);
      const framing = framesFraming({ maxMessageSize: 1 << 20, packetSize: v.packetSize });
      const messages = decode(framing.createDecoder(), v.packets.map((p) => Buffer.from(p, 'hex')));
      assert.deepEqual(messages, [v.message]);
    });
  }

  test('the documented header sizes and magic are the code\'s', () => {
    assert.match(doc, /0      1    magic: 0xFE/);
    const [single] = [...encodePackets(Buffer.from('x'), 7, 0, 4096)];
    assert.equal(single![0], 0xfe);
    assert.equal(single!.length - 1, 8, 'single packet header is 8 bytes');
  });
});

const small = (packetSize = 64) => framesFraming({ maxMessageSize: 1 << 20, packetSize });

function packetsOf(message: string | Buffer, writer: number, packetSize = 64, pid = 0): Buffer[] {
  return [...encodePackets(typeof message === 'string' ? Buffer.from(message) : message, writer, pid, packetSize)];
}

describe('reader rules', () => {
  test('interleaved packets of many writers come out whole, in each writer\'s order', () => {
    const writers = 5;
    const queues: Buffer[][] = [];
    const expected = new Map<number, string[]>();
    for (let w = 1; w <= writers; w++) {
      const messages = Array.from({ length: 20 }, (_, i) => `w${w}-m${i}-` + String.fromCharCode(96 + w).repeat((i * 53 + w * 7) % 400));
      expected.set(w, messages);
      queues.push(messages.flatMap((m) => packetsOf(m, w)));
    }
    // A deterministic shuffle of whole packets, the way the kernel interleaves writes.
    let seed = 42;
    const stream: Buffer[] = [];
    while (queues.some((q) => q.length > 0)) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const q = queues.filter((x) => x.length > 0)[seed % queues.filter((x) => x.length > 0).length]!;
      stream.push(q.shift()!);
    }
    const bytes = Buffer.concat(stream);
    for (const cut of [1, 7, 8, 16, 63, 1000]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += cut) chunks.push(bytes.subarray(i, i + cut));
      const drops: DropInfo[] = [];
      const got = decode(small().createDecoder({ onDrop: (d) => drops.push(d) }), chunks);
      assert.deepEqual(drops, []);
      for (const [w, messages] of expected) {
        assert.deepEqual(got.filter((m) => m.startsWith(`w${w}-`)), messages, `writer ${w}, reads of ${cut}`);
      }
    }
  });

  test('a dead writer\'s partial message is dropped and reported; the others still arrive', () => {
    const drops: DropInfo[] = [];
    const decoder = small().createDecoder({ onDrop: (d) => drops.push(d) });
    const dead = packetsOf('d'.repeat(500), 1, 64, 999_999);
    const out: string[] = [];
    const emit = (m: Buffer) => out.push(m.toString());
    for (const p of dead.slice(0, 3)) decoder.push(p, emit); // then the writer is killed
    for (const p of packetsOf('alive', 2)) decoder.push(p, emit);
    decoder.sweep!((pid) => pid !== 999_999);
    assert.deepEqual(out, ['alive']);
    assert.equal(drops.length, 1);
    assert.equal(drops[0]!.reason, 'writer-died');
    assert.equal(drops[0]!.writerId, 1);
    assert.equal(drops[0]!.pid, 999_999);
    assert.equal(decoder.pendingBytes, 0, 'its memory is released');
  });

  test('#3 - a writer that wrote its last packets and exited is not cut short: what is still in the pipe is read first', () => {
    const drops: DropInfo[] = [];
    const decoder = small().createDecoder({ onDrop: (d) => drops.push(d) });
    const packets = packetsOf('e'.repeat(500), 1, 64, 999_999);
    const out: string[] = [];
    const emit = (m: Buffer) => out.push(m.toString());
    const head = packets.slice(0, 3);
    const rest = packets.slice(3);
    for (const p of head) decoder.push(p, emit);
    const inPipe = rest.reduce((n, p) => n + p.length, 0);
    decoder.sweep!(() => false, () => inPipe); // gone, but its last packets wait in the pipe
    assert.deepEqual(drops, []);
    for (const p of rest) decoder.push(p, emit);
    decoder.sweep!(() => false, () => 0);
    assert.deepEqual(out, ['e'.repeat(500)]);
    assert.deepEqual(drops, []);
  });

  test('the tail of a message whose start this reader never saw is dropped once (orphan)', () => {
    const drops: DropInfo[] = [];
    const packets = packetsOf('o'.repeat(500), 3);
    const got = decode(small().createDecoder({ onDrop: (d) => drops.push(d) }), [...packets.slice(2), ...packetsOf('next', 3)]);
    assert.deepEqual(got, ['next']);
    assert.deepEqual(drops.map((d) => d.reason), ['orphan']);
  });

  test('a message started again from its first packet replaces the cut copy (abandoned)', () => {
    const drops: DropInfo[] = [];
    const message = 'r'.repeat(300);
    const packets = packetsOf(message, 4);
    const got = decode(small().createDecoder({ onDrop: (d) => drops.push(d) }), [...packets.slice(0, 2), ...packets]);
    assert.deepEqual(got, [message]);
    assert.deepEqual(drops.map((d) => d.reason), ['abandoned']);
  });

  test('an announced size over the limit is skipped without allocating it (too-large)', () => {
    const drops: DropInfo[] = [];
    const framing = framesFraming({ maxMessageSize: 100, packetSize: 64 });
    const huge = packetsOf(Buffer.alloc(1000, 1), 5);
    const got = decode(framing.createDecoder({ onDrop: (d) => drops.push(d) }), [...huge, ...packetsOf('ok', 5)]);
    assert.deepEqual(got, ['ok']);
    assert.deepEqual(drops.map((d) => [d.reason, d.bytes]), [['too-large', 1000]]);
  });

  test('messages in progress are bounded in total (memory)', () => {
    const drops: DropInfo[] = [];
    const framing = framesFraming({ maxMessageSize: 1000, packetSize: 64, maxPartialBytes: 1500 });
    const decoder = framing.createDecoder({ onDrop: (d) => drops.push(d) });
    const a = packetsOf(Buffer.alloc(1000, 1), 1);
    const b = packetsOf(Buffer.alloc(1000, 2), 2);
    const out: Buffer[] = [];
    decoder.push(a[0]!, (m) => out.push(m));
    decoder.push(b[0]!, (m) => out.push(m)); // would hold 2000 > 1500
    assert.deepEqual(drops.map((d) => [d.writerId, d.reason]), [[2, 'memory']]);
    assert.ok(decoder.pendingBytes <= 1500);
    for (const p of [...a.slice(1), ...b.slice(1)]) decoder.push(p, (m) => out.push(m));
    assert.equal(out.length, 1);
    assert.ok(out[0]!.equals(Buffer.alloc(1000, 1)));
  });

  test('messages in progress are bounded in number too: first packets of 0-byte messages, one writer id each, are dropped (memory) past MAX_PARTIALS', () => {
    const drops: DropInfo[] = [];
    const decoder = framesFraming({ maxMessageSize: 1000, packetSize: 4096 }).createDecoder({ onDrop: (d) => drops.push(d) });
    // A first packet (flags 0x01) announcing 0 bytes: it costs nothing against maxPartialBytes.
    const forged = (writer: number) => {
      const p = Buffer.alloc(16);
      p[0] = 0xfe;
      p[1] = 0x01;
      p.writeUInt32BE(writer, 4);
      p.writeUInt32BE(1, 12);
      return p;
    };
    const batch: Buffer[] = [];
    for (let writer = 1; writer <= MAX_PARTIALS + 1000; writer++) batch.push(forged(writer));
    decoder.push(Buffer.concat(batch), () => {});
    assert.equal(drops.length, 1000);
    assert.ok(drops.every((d) => d.reason === 'memory'));
  });

  test('bytes from something that is not an npipe frames writer stop the reader with ERR_NPIPE_BAD_FRAME', () => {
    const decoder = small().createDecoder();
    assert.throws(() => decoder.push(Buffer.from('hello from echo\n'), () => {}), BadFrameError);
  });

  test('header overhead is under 1% for messages of 1 KiB and more', () => {
    const framing = createFraming('frames');
    for (const size of [1024, 4088, 4089, 5000, 65536, 1 << 20, 8 << 20]) {
      const bytes = [...framing.encode(Buffer.alloc(size))].reduce((n, p) => n + p.length, 0);
      assert.ok((bytes - size) / size < 0.01, `${size}: ${bytes - size} bytes of headers`);
    }
  });

  test('every packet fits in PIPE_BUF', () => {
    const framing = createFraming('frames');
    for (const p of framing.encode(Buffer.alloc(100_000))) assert.ok(p.length <= 4096);
  });
});

test('the sender\'s in-place packet writer makes the same bytes as encode()', () => {
  const framing = framesFraming({ maxMessageSize: 1 << 20, packetSize: 64, writerId: 0x0a0b0c0d, pid: 77 });
  for (const size of [57, 100, 1000, 4096]) {
    const message = Buffer.from(Array.from({ length: size }, (_, i) => i & 0xff));
    const expected = Buffer.concat([...framing.encode(message)]);
    for (const room of [64, 100, 200, 4096]) {
      const cursor = { at: 0 };
      const parts: Buffer[] = [];
      while (cursor.at < message.length) {
        const target = Buffer.alloc(room);
        const n = framing.fillUnits!(message, cursor, target, 0, room);
        assert.ok(n > 0 && n <= room);
        parts.push(target.subarray(0, n));
      }
      assert.deepEqual(Buffer.concat(parts), expected, `size ${size}, room ${room}`);
    }
  }
});

/**
 * Packets forged byte by byte from docs/PROTOCOL.md (not with npipe's encoder), written
 * into a real FIFO, read by a real receiver: the drops the document promises, with
 * their reasons, sizes and counts.
 */
describe('docs/PROTOCOL.md reader rules, over a real FIFO', () => {
  const header = (flags: number, n: number, writer: number) => {
    const h = Buffer.alloc(8);
    h[0] = 0xfe;
    h[1] = flags;
    h.writeUInt16BE(n, 2);
    h.writeUInt32BE(writer, 4);
    return h;
  };
  const single = (writer: number, payload: string) => Buffer.concat([header(0x03, Buffer.byteLength(payload), writer), Buffer.from(payload)]);
  const first = (writer: number, total: number, pid: number, payload: string) => {
    const extra = Buffer.alloc(8);
    extra.writeUInt32BE(total, 0);
    extra.writeUInt32BE(pid, 4);
    return Buffer.concat([header(0x01, Buffer.byteLength(payload), writer), extra, Buffer.from(payload)]);
  };
  const middle = (writer: number, payload: string) => Buffer.concat([header(0x00, Buffer.byteLength(payload), writer), Buffer.from(payload)]);
  const last = (writer: number, payload: string) => Buffer.concat([header(0x02, Buffer.byteLength(payload), writer), Buffer.from(payload)]);

  /** Opens a receiver (until end of file) on a fresh FIFO, writes `packets` (one write each), closes. */
  async function readForged(t: TestContext, packets: Buffer[]) {
    const path = join(mkdtempSync(join(tmpdir(), 'npipe-test-')), 'p');
    t.after(() => rmSync(dirname(path), { recursive: true, force: true }));
    const drops: DropInfo[] = [];
    const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', keepOpen: false, onDrop: (d) => drops.push(d) });
    const fd = openSync(path, constants.O_WRONLY);
    for (const p of packets) writeSync(fd, p);
    closeSync(fd);
    const messages: string[] = [];
    let error: unknown;
    try {
      for await (const m of receiver) messages.push(m.toString());
    } catch (err) {
      error = err;
    }
    await receiver.close();
    return { messages, drops: drops.map((d) => [d.writerId, d.reason, d.bytes, d.pid]), dropped: receiver.dropped, error };
  }

  test('payloads past a message\'s total, a last packet short of it, or a first packet larger than its total: dropped as corrupt, the writer\'s next message delivered', async (t) => {
    const got = await readForged(t, [
      first(0x11, 10, 0, 'abcd'), last(0x11, '0123456789'), single(0x11, 'after-over'),
      first(0x22, 10, 0, 'abcd'), middle(0x22, 'ef'), last(0x22, 'g'), single(0x22, 'after-short'),
      first(0x33, 2, 0, 'abcd'), middle(0x33, 'skipped'), last(0x33, 'skipped'), single(0x33, 'after-first'),
      single(0x55, 'ok'),
    ]);
    assert.equal(got.error, undefined);
    assert.deepEqual(got.messages, ['after-over', 'after-short', 'after-first', 'ok']);
    assert.deepEqual(got.drops, [
      [0x11, 'corrupt', 4, 0],
      [0x22, 'corrupt', 6, 0],
      [0x33, 'corrupt', 2, 0],
    ]);
    assert.equal(got.dropped.messages, 3);
  });

  test('at end of file (every writer gone) every message in progress is dropped (writer-died) and counted', async (t) => {
    const got = await readForged(t, [first(0x44, 100, 0, 'four'), single(0x55, 'whole'), first(0x66, 50, 0, 'six'), middle(0x66, 'more')]);
    assert.equal(got.error, undefined);
    assert.deepEqual(got.messages, ['whole']);
    assert.deepEqual(got.drops.sort((a, b) => Number(a[0]) - Number(b[0])), [
      [0x44, 'writer-died', 4, 0],
      [0x66, 'writer-died', 7, 0],
    ]);
    assert.equal(got.dropped.messages, 2);
  });

  for (const [what, bad] of [
    ['a reserved flag bit (bit 2) set', Buffer.concat([header(0x07, 2, 0x77), Buffer.from('no')])],
    ['a reserved flag bit (bit 7) set', Buffer.concat([header(0x83, 2, 0x77), Buffer.from('no')])],
    ['a magic that is not 0xFE', Buffer.from('hello from echo\n')],
  ] as const) {
    test(`a packet with ${what} stops the reader with ERR_NPIPE_BAD_FRAME, after the messages before it`, async (t) => {
      const got = await readForged(t, [single(0x55, 'before'), bad, single(0x55, 'after')]);
      assert.deepEqual(got.messages, ['before']);
      assert.equal((got.error as { code?: string } | undefined)?.code, 'ERR_NPIPE_BAD_FRAME', String(got.error));
      assert.ok(got.error instanceof BadFrameError);
    });
  }
});

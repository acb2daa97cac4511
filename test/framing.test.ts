import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BadFrameError, FrameTooLargeError, createFraming, type FrameDecoder } from '../src/index.js';
import { allocAligned, phaseOf } from '../src/sys/aligned.js';
import { compact, view } from '../src/framing/index.js';

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): string[] {
  const out: string[] = [];
  const emit = (m: Buffer) => out.push(Buffer.from(m).toString('latin1'));
  for (const c of chunks) decoder.push(c, emit);
  decoder.end(emit);
  return out;
}

const samples: Record<string, string[]> = {
  lines: ['hello', '', 'Hello from pid [123456]', 'x'.repeat(300), 'é ü 中文'],
  length: ['hello', '', 'with\nnewline', 'y'.repeat(70_000), '\u0000\u00ff'],
  'fixed:7': ['abcdefg', '1234567', '\n\n\n\n\n\n\n'],
  frames: ['hello', '', 'z'.repeat(4088), 'w'.repeat(4089), 'v'.repeat(20_000), '\u0000\u00ff'],
};

describe('every decoder yields the same messages wherever the stream is cut', () => {
  for (const [format, messages] of Object.entries(samples)) {
    test(format, () => {
      const framing = createFraming(format);
      const stream = Buffer.concat(messages.flatMap((m) => [...framing.encode(Buffer.from(m, 'utf8'))]));
      const expected = messages.map((m) => Buffer.from(m, 'utf8').toString('latin1'));
      assert.deepEqual(decodeAll(framing.createDecoder(), [stream]), expected);
      // One cut at every point (every point for short streams; every point near each boundary for long ones).
      const cuts = stream.length <= 4096 ? [...Array(stream.length + 1).keys()] : boundaryCuts(framing, messages, stream.length);
      for (const cut of cuts) {
        assert.deepEqual(decodeAll(framing.createDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]), expected, `cut at ${cut}`);
      }
      // Byte by byte, and two cuts at every pair of points in the first 200 bytes.
      const bytes = [...stream].map((b) => Buffer.from([b]));
      assert.deepEqual(decodeAll(framing.createDecoder(), bytes), expected);
      for (let i = 0; i < Math.min(200, stream.length); i++) {
        for (let j = i; j < Math.min(200, stream.length); j += 7) {
          const parts = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
          assert.deepEqual(decodeAll(framing.createDecoder(), parts), expected, `cuts at ${i},${j}`);
        }
      }
    });
  }

  test('raw yields the same bytes wherever the stream is cut', () => {
    const framing = createFraming('raw');
    const stream = Buffer.from('raw bytes \u0000 with no boundaries\n at all');
    for (let cut = 0; cut <= stream.length; cut++) {
      const out: Buffer[] = [];
      const d = framing.createDecoder();
      d.push(stream.subarray(0, cut), (m) => out.push(m));
      d.push(stream.subarray(cut), (m) => out.push(m));
      d.end((m) => out.push(m));
      assert.deepEqual(Buffer.concat(out), stream);
      assert.ok(out.every((m) => m.length > 0), 'raw never emits empty chunks');
    }
  });
});

function enc(framing: ReturnType<typeof createFraming>, message: string | Buffer): Buffer {
  return Buffer.concat([...framing.encode(typeof message === 'string' ? Buffer.from(message, 'utf8') : message)]);
}

function boundaryCuts(framing: ReturnType<typeof createFraming>, messages: string[], total: number): number[] {
  const cuts = new Set<number>();
  let at = 0;
  for (const m of messages) {
    for (let d = -6; d <= 6; d++) cuts.add(at + d);
    at += enc(framing, m).length;
  }
  for (let i = 0; i <= total; i += 997) cuts.add(i);
  cuts.add(total);
  return [...cuts].filter((c) => c >= 0 && c <= total).sort((a, b) => a - b);
}

describe('length format', () => {
  test('matches multiprocessing.connection byte for byte', () => {
    const framing = createFraming('length');
    assert.equal(enc(framing, 'hello').toString('hex'), '0000000568656c6c6f');
    assert.equal(enc(framing, '').toString('hex'), '00000000');
  });

  test('an oversized length header is refused before any body byte arrives', () => {
    const decoder = createFraming('length', { maxMessageSize: 1024 }).createDecoder();
    const before = process.memoryUsage().arrayBuffers;
    // 0x7fffffff announces 2 GiB - 1: refused from the header alone, nothing allocated for it.
    assert.throws(() => decoder.push(Buffer.from('7fffffff', 'hex'), () => {}), FrameTooLargeError);
    assert.ok(process.memoryUsage().arrayBuffers - before < 1024 * 1024);
  });

  test('the 8-byte long form is understood, and checked against the limit', () => {
    const decoder = createFraming('length').createDecoder();
    const out: Buffer[] = [];
    decoder.push(Buffer.from('ffffffff' + '0000000000000003' + '616263', 'hex'), (m) => out.push(m));
    assert.deepEqual(out.map(String), ['abc']);
    const big = createFraming('length', { maxMessageSize: 10 }).createDecoder();
    assert.throws(() => big.push(Buffer.from('ffffffff' + '0000000100000000', 'hex'), () => {}), FrameTooLargeError);
  });

  test('a negative length other than -1 is a bad frame', () => {
    const decoder = createFraming('length').createDecoder();
    assert.throws(() => decoder.push(Buffer.from('fffffffe', 'hex'), () => {}), BadFrameError);
  });

  test('a stream that ends inside a message is a bad frame', () => {
    const decoder = createFraming('length').createDecoder();
    decoder.push(Buffer.from('00000005616263', 'hex'), () => assert.fail('no message yet'));
    assert.throws(() => decoder.end(() => {}), BadFrameError);
  });

  test('sending a message over the limit is refused', () => {
    assert.throws(() => enc(createFraming('length', { maxMessageSize: 4 }), Buffer.alloc(5)), FrameTooLargeError);
  });

  test('a reader that reads large messages straight into them (target/filled) gets the same messages wherever its reads end', () => {
    const framing = createFraming('length');
    const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
    const messages = [pattern(5, 1), pattern(70_000, 2), Buffer.alloc(0), pattern(200_000, 3), pattern(65_536, 4), pattern(65_535, 5), pattern(1, 6), pattern(100_000, 7), pattern(66_000, 8)];
    const parts = messages.map((m) => Buffer.concat([...framing.encode(m)]));
    // The same 100 000 bytes in the 8-byte long form, as a writer may send them.
    parts.push(Buffer.concat([Buffer.from('ffffffff00000000000186a0', 'hex'), messages[7]!]));
    messages.push(messages[7]!);
    const stream = Buffer.concat(parts);
    // Where headers start (and the long form's 8-byte length).
    const headerAt = new Set<number>();
    parts.reduce((at, part) => (headerAt.add(at), at + part.length), 0);
    headerAt.add(stream.length - parts.at(-1)!.length + 4);
    for (const readSize of [1 << 20, 65_536, 4093, 1000, 13, 3]) {
      const decoder = framing.createDecoder();
      const out: Buffer[] = [];
      const emit = (m: Buffer) => out.push(Buffer.from(m));
      let headersReadAlone = 0;
      let at = 0;
      while (at < stream.length) {
        const target = decoder.target?.();
        const n = Math.min(readSize, stream.length - at, target?.length ?? Infinity);
        if (target) {
          if (headerAt.has(at)) headersReadAlone++;
          stream.copy(target, 0, at, at + n);
          decoder.filled!(n, emit);
        } else decoder.push(stream.subarray(at, at + n), emit);
        at += n;
      }
      decoder.end(emit);
      assert.equal(out.length, messages.length, `reads of ${readSize}`);
      for (const [i, m] of messages.entries()) assert.ok(out[i]!.equals(m), `message ${i} (${m.length} bytes), reads of ${readSize}`);
      // Reads smaller than a large message: after each of the 5 large messages that do
      // not end the stream, the next header is read on its own; the long form's in two
      // reads (its first 4 bytes say -1, then its 8-byte length): 6 reads.
      if (readSize <= 65_536) assert.equal(headersReadAlone, 6, `headers read alone, reads of ${readSize}`);
      else assert.equal(headersReadAlone, 0, 'the whole stream in one read: nothing to read into');
    }
  });

  test('a large body read after its header alone starts on a 64-byte boundary; one begun inside a read keeps that read\'s alignment', () => {
    const framing = createFraming('length');
    const decoder = framing.createDecoder();
    const out: Buffer[] = [];
    const [header, body] = [...framing.encode(Buffer.alloc(100_000, 7))] as [Buffer, Buffer];
    // A read that holds the header and the start of the body: the body gets that read's alignment.
    const read = allocAligned(4096 + 64, 0);
    header.copy(read, 3);
    body.copy(read, 3 + header.length, 0, 1000);
    decoder.push(read.subarray(3, 3 + header.length + 1000), (m) => out.push(m));
    const first = decoder.target!()!;
    assert.equal(phaseOf(first), (3 + header.length + 1000) % 64, 'the rest of the body lines up with the read it began in');
    body.copy(first, 0, 1000);
    decoder.filled!(body.length - 1000, (m) => out.push(m));
    assert.equal(out.length, 1);
    assert.ok(out[0]!.equals(body));
    // The next header is read alone, then the body goes into a buffer of its own on a 64-byte boundary.
    const next = decoder.target!()!;
    assert.equal(next.length, 4);
    header.copy(next);
    decoder.filled!(4, (m) => out.push(m));
    const into = decoder.target!()!;
    assert.equal(into.length, 100_000);
    assert.equal(phaseOf(into), 0);
    body.copy(into);
    decoder.filled!(100_000, (m) => out.push(m));
    assert.equal(out.length, 2);
    assert.ok(out[1]!.equals(body));
    assert.equal(phaseOf(out[1]!), 0);
  });
});

describe('buffers', () => {
  test('allocAligned puts the first byte where it is asked to, modulo 64', () => {
    for (const size of [1, 100, 4096, 65_536, 1 << 20]) {
      for (let phase = 0; phase < 64; phase += 7) {
        const buffer = allocAligned(size, phase);
        assert.equal(buffer.length, size);
        assert.equal(phaseOf(buffer), phase, `${size} bytes at phase ${phase}`);
        assert.equal(phaseOf(buffer, 10), (phase + 10) % 64);
        buffer.fill(1);
        assert.equal(buffer[size - 1], 1);
      }
    }
  });

  test('messages are Buffers in every way a program can tell', () => {
    for (const format of ['lines', 'length', 'fixed:5', 'frames']) {
      const framing = createFraming(format);
      const stream = Buffer.concat([...framing.encode(Buffer.from('hello'))]);
      const out: Buffer[] = [];
      framing.createDecoder().push(stream, (m) => out.push(m));
      const [m] = out as [Buffer];
      assert.ok(Buffer.isBuffer(m) && m instanceof Buffer && m instanceof Uint8Array, format);
      assert.equal(m.constructor, Buffer, format);
      assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(m)), Buffer.prototype, format);
      assert.equal(m.toString(), 'hello');
      assert.equal(m.readUInt8(0), 0x68);
      assert.deepEqual(m.toJSON(), { type: 'Buffer', data: [...Buffer.from('hello')] });
      const sub = m.subarray(1, 3);
      assert.equal(Object.getPrototypeOf(sub), Buffer.prototype, `${format}: subarray() is a plain Buffer`);
      assert.equal(sub.toString(), 'el');
      assert.equal(Object.getPrototypeOf(m.slice(0, 2)), Buffer.prototype);
      assert.equal(Buffer.concat([m, Buffer.from('!')]).toString(), 'hello!');
      assert.ok(m.equals(Buffer.from('hello')));
    }
  });
});

describe('lines format', () => {
  test('a last line without a newline is still a message', () => {
    assert.deepEqual(decodeAll(createFraming('lines').createDecoder(), [Buffer.from('a\nb')]), ['a', 'b']);
  });
  test('a line longer than the limit is refused before it is complete', () => {
    const decoder = createFraming('lines', { maxMessageSize: 8 }).createDecoder();
    decoder.push(Buffer.from('12345'), () => {});
    assert.throws(() => decoder.push(Buffer.from('6789'), () => {}), FrameTooLargeError);
  });
  test('a message containing a newline cannot be sent as a line', () => {
    assert.throws(() => enc(createFraming('lines'), 'a\nb'), BadFrameError);
  });
});

describe('fixed format', () => {
  test('a stream cut inside a message is a bad frame', () => {
    const decoder = createFraming('fixed:4').createDecoder();
    decoder.push(Buffer.from('abcdef'), () => {});
    assert.throws(() => decoder.end(() => {}), BadFrameError);
  });
  test('a message of another size cannot be sent', () => {
    assert.throws(() => enc(createFraming('fixed:4'), 'abc'), BadFrameError);
  });
  test('a size over the limit is refused', () => {
    assert.throws(() => createFraming('fixed:100', { maxMessageSize: 10 }), FrameTooLargeError);
  });
});

test('unknown formats and bad limits are invalid arguments', () => {
  for (const bad of ['json', 'fixed:0', 'fixed:x', '']) {
    assert.throws(() => createFraming(bad), { code: 'ERR_NPIPE_INVALID_ARG' }, bad);
  }
  assert.throws(() => createFraming('lines', { maxMessageSize: 0 }), { code: 'ERR_NPIPE_INVALID_ARG' });
});

test('no decoder keeps a view of a chunk past push(): the caller reuses its read buffer', () => {
  for (const format of ['lines', 'length', 'fixed:5', 'frames']) {
    const framing = createFraming(format);
    const messages = ['abcde', 'fghij', 'klmno'];
    const stream = Buffer.concat(messages.flatMap((m) => [...framing.encode(Buffer.from(m))]));
    const decoder = framing.createDecoder();
    const out: string[] = [];
    const shared = Buffer.alloc(stream.length);
    // Feed 3 bytes at a time through one buffer, scribbling over it after each push.
    for (let i = 0; i < stream.length; i += 3) {
      const n = stream.copy(shared, 0, i, i + 3);
      decoder.push(shared.subarray(0, n), (m) => out.push(Buffer.from(m).toString()));
      shared.fill(0x21);
    }
    decoder.end((m) => out.push(Buffer.from(m).toString()));
    assert.deepEqual(out, messages, format);
  }
});

test('compact(): a small part of a large chunk is copied (keeping it keeps only its bytes); a pool slab or a large part is the same memory; always a plain Buffer', () => {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const small = compact(chunk.subarray(100, 101));
  assert.notEqual(small.buffer, chunk.buffer, 'copied out of the 64 KiB chunk');
  assert.ok(small.buffer.byteLength <= Buffer.poolSize, `${small.buffer.byteLength} bytes held`);
  assert.deepEqual([...small], [7]);
  const large = chunk.subarray(0, 40 * 1024);
  assert.equal(compact(large).buffer, chunk.buffer, 'most of its chunk: not copied');
  assert.equal(compact(large).byteOffset, large.byteOffset);
  assert.equal(compact(large).length, large.length);
  const pooled = Buffer.from('reply'); // a slice of Node's pool
  assert.ok(pooled.buffer.byteLength <= Buffer.poolSize);
  assert.equal(compact(pooled).buffer, pooled.buffer, 'a pool slab holds no more than a copy would');
  // Whatever it was given (a decoder's view among them), a plain Buffer: equal to one as assert.deepStrictEqual sees it.
  for (const bytes of [view(chunk, 100, 101), view(chunk, 0, 40 * 1024), view(pooled, 0, 5)]) {
    assert.equal(Object.getPrototypeOf(compact(bytes)), Buffer.prototype);
  }
  assert.deepEqual(compact(view(pooled, 0, 5)), Buffer.from('reply'));
});

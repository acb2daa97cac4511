import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BadFrameError, FrameTooLargeError, createFraming, type FrameDecoder } from '../src/index.js';

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

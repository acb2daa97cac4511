/**
 * The Buffers messages are delivered in, made the way Node makes its own: Node's
 * Buffer instances are a subclass of Uint8Array (FastBuffer) whose prototype is
 * Buffer.prototype and whose `constructor` is Buffer. This class is the same,
 * minus the argument checks Buffer.from(arrayBuffer, offset, length) runs: the
 * offsets here come from a decoder and are in range. It is made once per message
 * on the hot path, where it costs about 31 ns against Buffer.from's 62 ns and
 * subarray's 115 ns (Node 20). What a program receives passes Buffer.isBuffer
 * and `instanceof Buffer`, and its subarray() and slice() are plain Buffers.
 */
class MessageView extends Uint8Array {
  // An explicit constructor: V8 builds a derived typed array faster with one than with the default.
  constructor(buffer: ArrayBuffer, byteOffset: number, length: number) {
    super(buffer, byteOffset, length);
  }
}
Object.setPrototypeOf(MessageView.prototype, Buffer.prototype);
Object.defineProperty(MessageView.prototype, 'constructor', { value: Buffer, writable: true, configurable: true, enumerable: false });

/** A Buffer view of `chunk[start, end)`, sharing its memory, as chunk.subarray(start, end) returns. */
export function view(chunk: Buffer, start: number, end: number): Buffer {
  return viewOf(chunk.buffer as ArrayBuffer, chunk.byteOffset, start, end - start);
}

/**
 * The same, for a decoder's loop over one chunk: `memory` and `base` are the
 * chunk's `buffer` and `byteOffset`, read once per chunk instead of once per message.
 */
export function viewOf(memory: ArrayBuffer, base: number, start: number, length: number): Buffer {
  return new MessageView(memory, base + start, length) as unknown as Buffer;
}

/**
 * `bytes` as something a program may keep: copied when it is a small part (under
 * half) of a chunk larger than a slab of Node's buffer pool, so that keeping it
 * does not keep the rest of the chunk alive; otherwise the same memory (a slab is
 * what a copy of small bytes would hold anyway, and a large part is most of its
 * chunk). Either way a plain Buffer, as Buffer.from makes them: a request's payload
 * or a reply that a program compares with assert.deepStrictEqual must be one (a
 * view() differs from a Buffer in its prototype).
 */
export function compact(bytes: Buffer): Buffer {
  const chunk = bytes.buffer.byteLength;
  if (chunk > Buffer.poolSize && bytes.length < chunk >> 1) return Buffer.from(bytes);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

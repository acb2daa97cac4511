import { BadFrameError, FrameTooLargeError } from '../errors.js';
import { copySmall } from './frames.js';
import type { Emit, FrameDecoder, Framing } from './types.js';
import { allocMessage, phaseOf } from '../sys/aligned.js';
import { viewOf } from './view.js';

/** The decoder: messages up to this size are read into a buffer of their own, larger ones into an aligned one. */
const COPY_LIMIT = 64 * 1024;
/**
 * encode(): a unit up to this size (Linux's PIPE_BUF) is one buffer, the header
 * and the message copied behind it; a larger one is the header, then the message
 * itself, uncopied (the FIFO sender writes both under the writers' exclusive lock,
 * so nothing comes between). Copying larger ones cost more than the second write
 * saved (issue 18's size curve): a fresh ArrayBuffer per message (Buffer's pool
 * stops at 4 KiB), about 20 us at 4 KiB, and a 64 KiB + 4 B unit that never fits a
 * 64 KiB pipe. One sender into `cat`, us per message, before -> after: 4 KiB 42 ->
 * 26, 8 KiB 60 -> 27, 64 KiB 389 -> 46.
 */
const ENCODE_COPY_LIMIT = 4096;
/** Above this a length needs the 8-byte form (Python's `struct.pack("!i", -1)` escape). */
const MAX_SHORT_LENGTH = 0x7fffffff;

/**
 * `length`: a 4-byte big-endian signed length, then the payload. Byte for byte
 * what Python's `multiprocessing.connection.Connection.send_bytes` writes and
 * `recv_bytes` reads, including its escape for payloads over 2^31-1 bytes: the
 * 4 bytes FF FF FF FF (-1), then an 8-byte big-endian unsigned length.
 *
 *   00 00 00 05 68 65 6c 6c 6f   = "hello"
 *   00 00 00 00                  = "" (an empty message)
 */
export function lengthFraming(maxMessageSize: number): Framing {
  return {
    name: 'length',
    maxMessageSize,
    writersLock: true,
    byteStream: false,
    writerPackets: false,
    encode(message) {
      const size = this.unitSize(message);
      if (size <= ENCODE_COPY_LIMIT) {
        const out = Buffer.allocUnsafe(size);
        this.writeUnit(message, out, 0);
        return [out];
      }
      // A large message goes out as its header, then itself, uncopied: the sender
      // writes both under the FIFO's exclusive writer lock, so nothing comes between.
      const header = Buffer.allocUnsafe(size - message.length);
      if (header.length === 4) header.writeUInt32BE(message.length, 0);
      else {
        header.writeInt32BE(-1, 0);
        header.writeBigUInt64BE(BigInt(message.length), 4);
      }
      return [header, Buffer.from(message.buffer, message.byteOffset, message.length)];
    },
    unitSize(message) {
      const n = message.length;
      if (n > maxMessageSize) throw new FrameTooLargeError(n, maxMessageSize);
      return (n > MAX_SHORT_LENGTH ? 12 : 4) + n;
    },
    writeUnit(message, target, offset) {
      const n = message.length;
      if (n <= MAX_SHORT_LENGTH) {
        target[offset] = n >>> 24;
        target[offset + 1] = (n >>> 16) & 0xff;
        target[offset + 2] = (n >>> 8) & 0xff;
        target[offset + 3] = n & 0xff;
        copySmall(message, target, offset + 4);
      } else {
        target.writeInt32BE(-1, offset);
        target.writeBigUInt64BE(BigInt(n), offset + 4);
        target.set(message, offset + 12);
      }
    },
    createDecoder: (options) => new LengthDecoder(maxMessageSize, options?.borrow),
  };
}

class LengthDecoder implements FrameDecoder {
  #max: number;
  /** Header bytes gathered so far (4, or 12 with the long form). */
  #header = Buffer.alloc(12);
  #headerFilled = 0;
  #headerNeeded = 4;
  /** The body being filled, allocated only once its size passed the limit check. */
  #body: Buffer | undefined;
  #bodyFilled = 0;
  /** The last message was large: the next header is read on its own (see target()). */
  #afterLarge = false;
  readonly #borrow: ((size: number) => Buffer | undefined) | undefined;
  /** #body came from #borrow. */
  #borrowed = false;

  constructor(max: number, borrow?: (size: number) => Buffer | undefined) {
    this.#max = max;
    this.#borrow = borrow;
  }

  get pendingBytes(): number {
    return this.#headerFilled + this.#bodyFilled;
  }

  /**
   * Large messages are read straight into their own buffer, and so is the header
   * after one. Writers (npipe's, and Python's send_bytes) write a large message's
   * header and body separately, so in the pipe the body starts on a page of its
   * own: read that way, every copy out of the pipe starts on a page and lands on a
   * 64-byte boundary, and the message is not copied again (see allocMessage).
   */
  target(): Buffer | undefined {
    const body = this.#body;
    if (body) return body.length >= COPY_LIMIT ? body.subarray(this.#bodyFilled) : undefined;
    return this.#afterLarge ? this.#header.subarray(this.#headerFilled, this.#headerNeeded) : undefined;
  }

  filled(bytes: number, emit: Emit): void {
    if (this.#body) {
      this.#bodyFilled += bytes;
      if (this.#bodyFilled === this.#body.length) this.#emitBody(emit);
      return;
    }
    this.#headerFilled += bytes;
    if (this.#headerFilled === this.#headerNeeded) this.#headerDone(emit);
  }

  detach(): boolean {
    if (!this.#borrowed) return false;
    const body = this.#body!;
    const own = allocMessage(body.length, phaseOf(body));
    body.copy(own, 0, 0, this.#bodyFilled);
    this.#body = own;
    this.#borrowed = false;
    return true;
  }

  #emitBody(emit: Emit): void {
    const message = this.#body!;
    this.#body = undefined;
    this.#bodyFilled = 0;
    this.#borrowed = false;
    if (message.length >= COPY_LIMIT) this.#afterLarge = true;
    emit(message);
  }

  /**
   * The header is complete: starts the body. A large body that begins in `chunk`
   * at `at` is copied from there first and read into directly after: it gets the
   * alignment its bytes have in `chunk`, so that both kinds of copy run at full
   * speed. One that begins with the next read starts on a 64-byte boundary.
   */
  #headerDone(emit: Emit, chunk?: Buffer, at = 0): void {
    const size = this.#size();
    if (size === undefined) return; // the long form needs 8 more bytes
    this.#headerFilled = 0;
    this.#headerNeeded = 4;
    this.#afterLarge = false;
    if (size === 0) emit(Buffer.alloc(0));
    else {
      const borrowed = this.#borrow?.(size);
      this.#borrowed = borrowed !== undefined;
      this.#body =
        borrowed ??
        (size < COPY_LIMIT ? Buffer.allocUnsafe(size) : allocMessage(size, chunk && at < chunk.length ? phaseOf(chunk, at) : 0));
      this.#bodyFilled = 0;
    }
  }

  push(chunk: Buffer, emit: Emit): void {
    let at = 0;
    const memory = chunk.buffer as ArrayBuffer;
    const base = chunk.byteOffset;
    while (at < chunk.length) {
      if (this.#body) {
        const n = Math.min(this.#body.length - this.#bodyFilled, chunk.length - at);
        chunk.copy(this.#body, this.#bodyFilled, at, at + n);
        this.#bodyFilled += n;
        at += n;
        if (this.#bodyFilled === this.#body.length) this.#emitBody(emit);
        continue;
      }
      // Fast path: a whole header and body inside this chunk is a view, not a copy.
      if (this.#headerFilled === 0 && chunk.length - at >= 4) {
        const size = chunk.readInt32BE(at);
        if (size >= 0 && chunk.length - at - 4 >= size) {
          this.#check(size);
          if (size >= COPY_LIMIT) this.#afterLarge = true;
          emit(viewOf(memory, base, at + 4, size));
          at += 4 + size;
          continue;
        }
      }
      const n = Math.min(this.#headerNeeded - this.#headerFilled, chunk.length - at);
      chunk.copy(this.#header, this.#headerFilled, at, at + n);
      this.#headerFilled += n;
      at += n;
      if (this.#headerFilled < this.#headerNeeded) continue;
      this.#headerDone(emit, chunk, at);
    }
  }

  /** The size the complete header announces (checked), or undefined if the long form's 8 bytes are still to come. */
  #size(): number | undefined {
    if (this.#headerNeeded === 12) {
      const size = this.#header.readBigUInt64BE(4);
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameTooLargeError(Number(size), this.#max, 'length header announcing a message');
      return this.#check(Number(size));
    }
    const size = this.#header.readInt32BE(0);
    if (size === -1) {
      this.#headerNeeded = 12;
      return undefined;
    }
    if (size < 0) throw new BadFrameError(`bad length header ${this.#header.subarray(0, 4).toString('hex')}: a negative length other than -1`);
    return this.#check(size);
  }

  #check(size: number): number {
    if (size > this.#max) throw new FrameTooLargeError(size, this.#max, 'length header announcing a message', textHeaderHint(this.#header));
    return size;
  }

  end(): void {
    if (this.#headerFilled > 0 || this.#body) {
      const what = this.#body
        ? `${this.#bodyFilled} of ${this.#body.length} body bytes`
        : `${this.#headerFilled} of ${this.#headerNeeded} header bytes`;
      throw new BadFrameError(`the stream ended inside a message, after ${what}`);
    }
  }
}

/** Four header bytes that are printable text mean a text writer, not a length (issue 15 #18). */
function textHeaderHint(header: Buffer): string | undefined {
  for (let i = 0; i < 4; i++) {
    const b = header[i]!;
    if ((b < 0x20 || b > 0x7e) && b !== 0x09 && b !== 0x0a && b !== 0x0d) return undefined;
  }
  return `the header looks like text (${JSON.stringify(header.subarray(0, 4).toString('latin1'))}): the two ends' formats may differ; is the writer using --format lines?`;
}

import { BadFrameError, FrameTooLargeError, InvalidArgumentError } from '../errors.js';
import type { Emit, FrameDecoder, Framing } from './types.js';
import { view } from './view.js';

/**
 * `fixed:N`: every message is exactly N bytes, with nothing between them (the
 * textbook's framing, which read 22 bytes). A stream that ends inside a message
 * is an error, not a short message.
 */
export function fixedFraming(size: number, maxMessageSize: number): Framing {
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new InvalidArgumentError(`fixed:N needs a whole number of bytes N >= 1, got ${String(size)}`);
  }
  if (size > maxMessageSize) throw new FrameTooLargeError(size, maxMessageSize, 'fixed message size');
  return {
    name: `fixed:${size}`,
    maxMessageSize,
    writersLock: true,
    byteStream: false,
    writerPackets: false,
    encode(message) {
      this.unitSize(message);
      return [Buffer.from(message.buffer, message.byteOffset, message.length)];
    },
    unitSize(message) {
      if (message.length !== size) {
        throw new BadFrameError(`the fixed:${size} format carries messages of exactly ${size} bytes; this one has ${message.length}`);
      }
      return size;
    },
    writeUnit(message, target, offset) {
      target.set(message, offset);
    },
    createDecoder: () => new FixedDecoder(size),
  };
}

class FixedDecoder implements FrameDecoder {
  #size: number;
  #partial: Buffer | undefined;
  #filled = 0;

  constructor(size: number) {
    this.#size = size;
  }

  get pendingBytes(): number {
    return this.#filled;
  }

  push(chunk: Buffer, emit: Emit): void {
    const size = this.#size;
    let at = 0;
    if (this.#partial) {
      const n = Math.min(size - this.#filled, chunk.length);
      chunk.copy(this.#partial, this.#filled, 0, n);
      this.#filled += n;
      at = n;
      if (this.#filled < size) return;
      const message = this.#partial;
      this.#partial = undefined;
      this.#filled = 0;
      emit(message);
    }
    while (chunk.length - at >= size) {
      emit(view(chunk, at, at + size));
      at += size;
    }
    if (at < chunk.length) {
      this.#partial = Buffer.allocUnsafe(size);
      this.#filled = chunk.copy(this.#partial, 0, at);
    }
  }

  end(): void {
    if (this.#filled > 0) {
      throw new BadFrameError(`the stream ended ${this.#filled} bytes into a fixed:${this.#size} message`);
    }
  }
}

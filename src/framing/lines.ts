import { BadFrameError, FrameTooLargeError } from '../errors.js';
import { copySmall } from './frames.js';
import type { Emit, FrameDecoder, Framing } from './types.js';
import { view } from './view.js';

const LF = 0x0a;
const NEWLINE = Buffer.from([LF]);

/**
 * `lines`: one message per line, each followed by "\n" (what `echo msg > pipe`
 * writes). Messages are bytes (UTF-8 for text); "\r" is kept as it is. A last line
 * without "\n" at the end of the stream is still a message.
 */
export function linesFraming(maxMessageSize: number): Framing {
  return {
    name: 'lines',
    maxMessageSize,
    writersLock: true,
    byteStream: false,
    writerPackets: false,
    encode(message) {
      const size = this.unitSize(message);
      if (message.length > 64 * 1024) return [Buffer.from(message.buffer, message.byteOffset, message.length), NEWLINE];
      const out = Buffer.allocUnsafe(size);
      this.writeUnit(message, out, 0);
      return [out];
    },
    unitSize(message) {
      if (message.length > maxMessageSize) throw new FrameTooLargeError(message.length, maxMessageSize);
      if (message.includes(LF)) {
        throw new BadFrameError('a message in the lines format cannot contain "\\n"; use the length format for such messages');
      }
      return message.length + 1;
    },
    writeUnit(message, target, offset) {
      copySmall(message, target, offset);
      target[offset + message.length] = LF;
    },
    createDecoder: () => new LinesDecoder(maxMessageSize),
  };
}

class LinesDecoder implements FrameDecoder {
  #max: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  push(chunk: Buffer, emit: Emit): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) {
        const rest = chunk.length - start;
        if (rest === 0) return;
        this.#check(this.#pendingBytes + rest);
        // A copy: the caller may reuse `chunk` once push() returns.
        this.#pending.push(Buffer.from(chunk.subarray(start)));
        this.#pendingBytes += rest;
        return;
      }
      const line = view(chunk, start, nl);
      start = nl + 1;
      if (this.#pendingBytes === 0) {
        this.#check(line.length);
        emit(line);
      } else {
        this.#check(this.#pendingBytes + line.length);
        this.#pending.push(line);
        this.#pendingBytes += line.length;
        emit(this.#take());
      }
    }
  }

  end(emit: Emit): void {
    if (this.#pendingBytes > 0) emit(this.#take());
  }

  #check(size: number): void {
    if (size > this.#max) throw new FrameTooLargeError(size, this.#max, 'line');
  }

  #take(): Buffer {
    const message = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    return message;
  }
}

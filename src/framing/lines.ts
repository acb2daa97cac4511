import { BadFrameError, FrameTooLargeError } from '../errors.js';
import { copySmall } from './frames.js';
import type { Emit, FrameDecoder, Framing } from './types.js';
import { LineSplitter } from './split-lines.js';

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

/** The lines decoder: the stream's lines, one message each (the cutting is split-lines.ts's). */
class LinesDecoder implements FrameDecoder {
  // copyTail: the receiver reads every chunk into the same buffer.
  readonly #lines: LineSplitter;

  constructor(max: number) {
    this.#lines = new LineSplitter(max, { what: 'line', copyTail: true });
  }

  get pendingBytes(): number {
    return this.#lines.pendingBytes;
  }

  push(chunk: Buffer, emit: Emit): void {
    this.#lines.pushLines(chunk, emit);
  }

  end(emit: Emit): void {
    const last = this.#lines.end();
    if (last) emit(last);
  }
}

import type { Emit, FrameDecoder, Framing } from './types.js';

/** `raw`: bytes as they arrive, no boundaries. Each chunk read is one "message". */
export function rawFraming(maxMessageSize: number): Framing {
  return {
    name: 'raw',
    maxMessageSize,
    writersLock: false,
    byteStream: true,
    writerPackets: false,
    encode: (message) => [Buffer.from(message.buffer, message.byteOffset, message.length)],
    unitSize: (message) => message.length,
    writeUnit: (message, target, offset) => target.set(message, offset),
    createDecoder: () => rawDecoder,
  };
}

const rawDecoder: FrameDecoder = {
  pendingBytes: 0,
  push(chunk: Buffer, emit: Emit) {
    if (chunk.length > 0) emit(chunk);
  },
  end() {},
};

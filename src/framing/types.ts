/**
 * Framing turns a byte stream into whole messages and back. A decoder is
 * incremental: it takes the stream in chunks cut at any point and emits the same
 * messages whatever the cuts. Sizes are checked against the limit before any
 * buffer for a message is allocated.
 */
export type Emit = (message: Buffer) => void;

export interface FrameDecoder {
  /**
   * Feeds the next bytes of the stream; calls `emit` once per whole message, in order.
   * Emitted messages may be views into `chunk`: copy them to keep them past the
   * lifetime of `chunk` if the caller reuses it.
   * @throws ERR_NPIPE_BAD_FRAME, ERR_NPIPE_FRAME_TOO_LARGE; the decoder is unusable afterwards.
   */
  push(chunk: Buffer, emit: Emit): void;
  /**
   * The stream ended. Emits a last message where the format allows an unterminated
   * one (`lines`); throws ERR_NPIPE_BAD_FRAME for a message cut short.
   */
  end(emit: Emit): void;
  /** Bytes held for a message not yet complete. */
  readonly pendingBytes: number;
}

export interface Framing {
  /** The format's name as the CLI spells it: `lines`, `length`, `fixed:22`, `raw`. */
  readonly name: string;
  readonly maxMessageSize: number;
  /**
   * The bytes that carry `message`, header and body in one buffer, so that they go
   * out in one write (atomic on a FIFO up to PIPE_BUF bytes).
   * @throws ERR_NPIPE_FRAME_TOO_LARGE, ERR_NPIPE_BAD_FRAME (cannot be carried by this format).
   */
  encode(message: Uint8Array): Buffer;
  createDecoder(): FrameDecoder;
}

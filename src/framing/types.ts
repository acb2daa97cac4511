/**
 * Framing turns a byte stream into whole messages and back. A decoder is
 * incremental: it takes the stream in chunks cut at any point and emits the same
 * messages whatever the cuts. Sizes are checked against the limit before any
 * buffer for a message is allocated.
 */
export type Emit = (message: Buffer) => void;

/** What a reader dropped rather than deliver torn (frames format). */
export interface DropInfo {
  /** The writer's id from its packets. */
  writerId: number;
  /**
   * - `writer-died`: the writer exited (or was killed) in the middle of the message;
   * - `abandoned`: the writer started a new message before finishing this one (it
   *   resends a message cut by a reader's departure);
   * - `orphan`: the rest of a message whose start this reader never saw (read by an
   *   earlier reader);
   * - `too-large`: over maxMessageSize; `memory`: over the reader's bound for partial
   *   messages; `corrupt`: packet sizes that do not add up;
   * - `stalled`: no packet of the message came for `partialTimeout` while the
   *   reader was reading (a writer stopped mid-message, or a forged first packet);
   * - `slow-consumer`: core NATS only: the receiver already held `maxQueuedBytes`
   *   of messages nobody had taken (NATS has no flow control to slow the sender);
   * - `refused`: Windows pipes only: a connection that did not send the pipe's key
   *   (drivers/winpipe/pipe-key.ts: a client on another machine, another user's
   *   without allowShared, or not an npipe writer) was dropped before any message.
   */
  reason: 'writer-died' | 'abandoned' | 'orphan' | 'too-large' | 'memory' | 'corrupt' | 'stalled' | 'slow-consumer' | 'refused';
  /** Bytes of the message received and dropped (for too-large/memory: the announced size). */
  bytes: number;
  /** The writer's pid when known, else 0. */
  pid: number;
}

export interface DecoderOptions {
  onDrop?: (info: DropInfo) => void;
  /**
   * `length`: asked for the buffer of each message that is not a view into a
   * chunk, once its size is known: exactly `size` bytes to fill (the caller's
   * receiveInto() buffer), or undefined for the decoder's own. Give it back with
   * `detach()` before the message is whole.
   */
  borrow?: (size: number) => Buffer | undefined;
  /**
   * frames: a message in progress with no new packet for this many milliseconds of
   * reading (see `sweep`) is dropped as `stalled`. Default: never.
   */
  partialTimeout?: number;
  /**
   * frames: the most bytes this decoder keeps for incomplete messages, instead of
   * the framing's `maxPartialBytes` (a Windows pipe connection carries one writer:
   * one message in progress, at most maxMessageSize).
   */
  maxPartialBytes?: number;
}

export interface FrameDecoder {
  /**
   * Feeds the next bytes of the stream; calls `emit` once per whole message, in order.
   * Emitted messages may be views into `chunk`: copy them to keep them past the
   * lifetime of `chunk` if the caller reuses it. The decoder itself keeps no
   * reference to `chunk` after push() returns (the receiver reads every chunk
   * into the same buffer).
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
  /**
   * Frames format: drops the partial messages of writers that are gone, once the
   * rest of what they wrote has been read: `backlog()` is how many bytes are still
   * in the pipe (a writer that wrote its last packets and exited is not cut short).
   * `elapsed`: milliseconds the reader spent reading since the last sweep (not
   * counting time it was paused because nobody took its messages): a message that
   * got no packet for `partialTimeout` of that time is dropped as `stalled`.
   */
  sweep?(isAlive: (pid: number) => boolean, backlog?: () => number, elapsed?: number): void;
  /**
   * The unfilled rest of a large message in progress, for the reader to read the
   * pipe straight into (one copy fewer, and a read that ends where the message ends);
   * undefined while no such message is in progress. Bytes read into it are handed
   * back with `filled`, never with `push`.
   */
  target?(): Buffer | undefined;
  /** `bytes` bytes were read into the start of what `target()` returned; emits the message once it is whole. */
  filled?(bytes: number, emit: Emit): void;
  /**
   * The buffer `borrow` gave may no longer be used: what the message in progress
   * holds is copied into a buffer of the decoder's own, where it goes on. Returns
   * false when no borrowed buffer was in use; else true, and target() has changed.
   */
  detach?(): boolean;
  /** Frames format: writers with a message in progress. */
  partialWriters?(): Array<{ writerId: number; pid: number; bytes: number }>;
}

export interface Framing {
  /** The format's name as the CLI spells it: `lines`, `length`, `fixed:22`, `raw`. */
  readonly name: string;
  readonly maxMessageSize: number;
  /**
   * True when messages of several npipe writers must be kept apart by the FIFO's
   * writer lock: formats without writer ids (lines, length, fixed:N), where a
   * message over PIPE_BUF goes out in several writes. Writes of whole small units
   * take the lock shared, a unit over PIPE_BUF exclusive. False for `frames` (every
   * unit fits in PIPE_BUF and names its writer) and `raw` (no messages to keep whole).
   */
  readonly writersLock: boolean;
  /**
   * The format is a byte stream with no message boundaries (`raw`): a "message" is
   * whatever one read returned. A receiveInto() given fewer bytes than are waiting
   * fills its buffer and keeps the rest for the next call, where any other format
   * refuses a message longer than the buffer (ERR_NPIPE_BUFFER_TOO_SMALL), since a
   * message is never cut.
   */
  readonly byteStream: boolean;
  /**
   * Messages travel as packets of at most PIPE_BUF bytes, each naming its writer
   * (`frames`): the reader reassembles each writer's message apart from the others,
   * so messages of any size from several writers interleave safely without the
   * writers' lock. Two consequences for a FIFO. A receiver reads as much as the
   * pipe holds at once: a read then ends where a write ended, and a reader that
   * stops never leaves half a packet to the next one. And a sender refuses
   * sendUnits(): units made elsewhere would not carry this sender's writer id.
   */
  readonly writerPackets: boolean;
  /**
   * The write units that carry `message`, in order: header and body in one unit
   * (VS Code's ipc rule) for the formats without packets. Made lazily, so that a large
   * message is not copied whole before it is written.
   * @throws ERR_NPIPE_FRAME_TOO_LARGE, ERR_NPIPE_BAD_FRAME (cannot be carried by this format).
   */
  encode(message: Uint8Array): Iterable<Buffer>;
  /**
   * The fast path for a message that is one unit: its encoded size, or -1 when it
   * takes several units (use `encode`). Validates as `encode` does.
   */
  unitSize(message: Uint8Array): number;
  /** Writes the one unit of `message` (sized by `unitSize`) into `target` at `offset`. */
  writeUnit(message: Uint8Array, target: Buffer, offset: number): void;
  /**
   * frames: writes as many whole units (packets) of a multi-unit message as fit in
   * `room` bytes of `target` at `offset`, from `cursor.at` (payload bytes already
   * written) on, advancing it; returns the bytes written (0 if not even one fits).
   * The message is done when `cursor.at === message.length`. Same bytes as `encode`.
   */
  fillUnits?(message: Uint8Array, cursor: { at: number }, target: Buffer, offset: number, room: number): number;
  createDecoder(options?: DecoderOptions): FrameDecoder;
}

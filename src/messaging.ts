/**
 * Sender and Receiver: whole messages over any driver's FrameSender and
 * FrameReceiver. Payload codecs live here; the transport below only moves frames.
 */
import { ClosedError } from './errors.js';
import type { Codec, Sendable } from './codec.js';
import type { CallOptions, FrameReceiver, FrameSender } from './transport/types.js';
import { checkTimeout, deadline } from './util/abort.js';

/** A sender's transport (set by Sender's static block, which can read its private field). */
let framesOf: (sender: Sender<unknown>) => FrameSender;

/**
 * For `npipe send`, and not exported from the package: where `sender`'s transport
 * can take bytes already in the format (whole lines, at most PIPE_BUF at a time;
 * FIFO), the function that sends them; else undefined.
 */
export function unitsSender(sender: Sender<unknown>): ((units: Uint8Array) => Promise<void>) | undefined {
  const frames = framesOf(sender);
  return frames.sendUnits ? (units) => frames.sendUnits!(units) : undefined;
}

/**
 * Sends whole messages to an address: into a FIFO, or as NATS messages to a subject.
 * `T` is what `send` accepts (openSender infers it from the codec).
 *
 * Concurrency: `send` may be called again before earlier sends settle; messages go
 * out in call order, each in one piece.
 */
export class Sender<T = Sendable> {
  readonly #frames: FrameSender;
  readonly #codec: Codec<unknown, T>;

  /** @internal */
  constructor(frames: FrameSender, codec: Codec<unknown, T>) {
    this.#frames = frames;
    this.#codec = codec;
  }

  /**
   * Resolves when the message is handed over: its bytes are in the pipe (FIFO),
   * published on the client's connection (core NATS; with 1 MiB or more not yet
   * flushed, a send waits for the server), or stored by the server (JetStream).
   * A Buffer or Uint8Array given may be read until then (larger messages are not
   * copied): do not change its bytes before the send resolves, as with a stream's
   * write().
   * @throws ERR_NPIPE_NO_READER when the FIFO's reader went away; ERR_NPIPE_CLOSED after close();
   *   ERR_NPIPE_FRAME_TOO_LARGE / ERR_NPIPE_BAD_FRAME when the format cannot carry the message;
   *   `signal.reason` on abort (a message aborted mid-write still arrives whole, never cut).
   */
  send(message: T, options: CallOptions = {}): Promise<void> {
    if (this.#frames.closed) return Promise.reject(new ClosedError('this sender is closed'));
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(message);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#frames.send(bytes, options);
  }

  static {
    framesOf = (sender) => sender.#frames;
  }

  /**
   * Sends what is still queued, then closes this process's end: its FIFO
   * descriptor, or its NATS connection, drained first (the FIFO or the subject
   * stays). Idempotent. With `signal` aborted: messages not started are dropped
   * (their sends reject with ERR_NPIPE_CLOSED); a `lines`/`length`/`fixed:N` message
   * already partly written is finished first, bounded by `timeout` (cut, it would
   * put the reader out of step); `frames` (whose reader drops the cut message)
   * and `raw` stop at once (issue 15 #4).
   */
  close(options: CallOptions = {}): Promise<void> {
    return this.#frames.close(options);
  }

  get closed(): boolean {
    return this.#frames.closed;
  }
}

/**
 * Receives whole messages from an address (a FIFO, or a NATS subject), as an async
 * iterator or with `receive()`. `T` is what a message is once decoded (openReceiver
 * infers it from the codec and format).
 *
 * Concurrency: one `receive()` (or one iterator step) at a time; an overlapping
 * call rejects with ERR_NPIPE_BUSY.
 */
export class Receiver<T = string> implements AsyncIterable<T> {
  readonly #frames: FrameReceiver;
  readonly #codec: Codec<T, never>;
  readonly #timeout: number | undefined;
  readonly #what: string;

  /** @internal */
  constructor(frames: FrameReceiver, codec: Codec<T, never>, timeout?: number, address = 'this receiver') {
    this.#frames = frames;
    this.#codec = codec;
    this.#timeout = checkTimeout(timeout);
    this.#what = `no message arrived on ${address}; check that a writer is sending, or wait longer (timeout)`;
  }

  /**
   * The receiver's `timeout` (no message for that long: ERR_NPIPE_TIMEOUT, issue 15
   * #14) joined with the call's signal, around one wait.
   */
  #bounded<R>(options: CallOptions, wait: (options: CallOptions) => Promise<R>): Promise<R> {
    let bound;
    try {
      bound = deadline({ timeout: this.#timeout, ...(options.signal ? { signal: options.signal } : {}) }, this.#what);
    } catch (err) {
      return Promise.reject(err);
    }
    const { signal, dispose } = bound;
    return wait({ ...options, ...(signal ? { signal } : {}) }).finally(dispose);
  }

  /**
   * A message that has already arrived, or undefined; never waits. For draining
   * what is here in a loop before awaiting `receive()` (the CLI batches its output so).
   */
  tryReceive(): T | undefined {
    const frame = this.#frames.tryReceive?.();
    return frame === undefined ? undefined : this.#codec.decode(frame);
  }

  /**
   * The next message, or undefined when the stream ended (at end of file for a
   * reader opened with `keepOpen: false`, or after `close()`). With the receiver's
   * `timeout`: ERR_NPIPE_TIMEOUT when no message came for that long (each call;
   * the receiver stays usable, but an iterator ends with the error).
   * @throws ERR_NPIPE_TIMEOUT, ERR_NPIPE_BAD_FRAME / ERR_NPIPE_FRAME_TOO_LARGE (then the stream ends),
   *   ERR_NPIPE_BAD_PAYLOAD (the codec could not decode one message; later ones still come),
   *   ERR_NPIPE_BUSY, `signal.reason`.
   */
  receive(options: CallOptions = {}): Promise<T | undefined> {
    const frame = this.#timeout === undefined ? this.#frames.receive(options) : this.#bounded(options, (o) => this.#frames.receive(o));
    return frame.then((frame) => (frame === undefined ? undefined : this.#codec.decode(frame)));
  }

  /**
   * The next message's bytes, put into `target` (the codec is not used): resolves
   * with the message's length, or undefined when the stream ended. Python's
   * `recv_bytes_into`. For bulk: over a FIFO, a large `length` message is read from
   * the pipe straight into `target`, so one reused buffer takes message after
   * message with no allocation and one copy, as read() into a buffer does in C. A
   * buffer from allocAligned() makes that copy run at full speed (see TUNING.md).
   *
   * `target` belongs to the receiver until the promise settles: do not touch it
   * before. Aborting (`signal`) gives it back at once; the message in progress is
   * kept for the next call.
   * @throws ERR_NPIPE_BUFFER_TOO_SMALL: the message is longer than `target`; it is
   *   the error's `payload`, and the next call gets the message after it. `raw`
   *   (a byte stream) instead fills `target` and keeps the rest for the next call,
   *   over a FIFO and over NATS alike.
   *   ERR_NPIPE_INVALID_ARG (`target` is not a Uint8Array), and as `receive()`
   *   except ERR_NPIPE_BAD_PAYLOAD.
   */
  receiveInto(target: Uint8Array, options: CallOptions = {}): Promise<number | undefined> {
    if (this.#timeout === undefined) return this.#frames.receiveInto(target, options);
    return this.#bounded(options, (o) => this.#frames.receiveInto(target, o));
  }

  /**
   * Messages until the stream ends. Leaving the loop early (break, throw) closes
   * the receiver. A message already here is handed over without waiting: one
   * resolved promise per message, which for-await needs anyway.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const frames = this.#frames;
    const codec = this.#codec;
    const done = { value: undefined, done: true } as const;
    const iterator: AsyncIterableIterator<T> = {
      next: () => {
        const frame = frames.tryReceive?.();
        if (frame !== undefined) {
          try {
            return Promise.resolve({ value: codec.decode(frame), done: false });
          } catch (err) {
            // The loop ends with this error: for-await does not call return() then, so close here.
            return this.close().then(() => Promise.reject(err));
          }
        }
        return this.receive().then(
          (value): IteratorResult<T> => (value === undefined ? done : { value, done: false }),
          async (err: unknown) => {
            await this.close();
            throw err;
          },
        );
      },
      return: async () => {
        await this.close();
        return done;
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Says that the message received last was not handled. Over JetStream it is
   * delivered again at once (instead of being acknowledged when the next one is
   * asked for); over FIFOs and core NATS there is no one to tell: no effect.
   */
  giveBack(): void {
    this.#frames.giveBack?.();
  }

  /**
   * Stops reading and closes this process's end: its FIFO descriptor (the FIFO
   * stays on disk), or its NATS subscription and connection. Messages already read
   * are still returned before the end. Idempotent.
   * JetStream: the message received last is acknowledged (handled), the ones held
   * and not handed out are given back.
   */
  close(): Promise<void> {
    return this.#frames.close();
  }

  get closed(): boolean {
    return this.#frames.closed;
  }

  /**
   * Messages this receiver dropped rather than deliver torn, and their bytes (frames
   * format: a writer died mid-message, a cut message sent again, the tail of a
   * message an earlier reader took). Each drop is also reported to `onDrop`.
   */
  get dropped(): { readonly messages: number; readonly bytes: number } {
    return { ...this.#frames.dropped };
  }

  /**
   * Bytes this receiver holds: messages read and not yet taken (it stops reading
   * the pipe above 1 MiB), and messages still incomplete (frames; bounded by
   * maxPartialBytes).
   */
  get bufferedBytes(): number {
    return this.#frames.bufferedBytes ?? 0;
  }
}

/**
 * The public messaging API: a Sender and a Receiver of whole messages, over a
 * transport. Payload codecs live here; the transport below only moves frames.
 */
import { ClosedError } from './errors.js';
import { resolveCodec, type Codec, type CodecName } from './codec.js';
import { createFraming, type FormatName } from './framing/index.js';
import { openFifoFrameReceiver, openFifoFrameSender, type FifoReceiverOptions, type FifoSenderOptions } from './drivers/fifo/fifo-frames.js';
import type { CallOptions, FrameReceiver, FrameSender } from './transport/types.js';
import { isNatsUrl, parseNatsUrl, type Delivery, type NatsAddress } from './drivers/nats/url.js';
import { checkTimeout, deadline } from './util/abort.js';

/**
 * The library's default format: `frames` carries any bytes, and whole messages of
 * any size from any number of writers sharing the FIFO.
 */
export const DEFAULT_FORMAT: FormatName = 'frames';

interface MessageOptions<T> {
  /** Wire format (default `frames`; the CLI's default is `lines`). */
  format?: FormatName | string;
  /** Payload codec (default `text`, or `bytes` for the `raw` format). */
  codec?: CodecName | Codec<T>;
  /** Largest message accepted or sent, in bytes (default 64 MiB; over NATS, at most the server's max_payload). */
  maxMessageSize?: number;
  /**
   * For a `nats://` address: `core` (at most once, the default) or `jetstream`
   * (stored, acknowledged, at least once). Overrides the URL's `?delivery=`.
   */
  delivery?: Delivery;
}

export interface SenderOptions<T = string> extends FifoSenderOptions, MessageOptions<T> {}
export interface ReceiverOptions<T = string> extends FifoReceiverOptions, MessageOptions<T> {
  /**
   * Core NATS only: bytes of messages received and not yet taken before new ones
   * are dropped (counted in `dropped`, reported to `onDrop` as `slow-consumer`):
   * core NATS cannot slow a sender down (default 64 MiB, at most 524288 messages).
   */
  maxQueuedBytes?: number;
}

function framingFor(options: MessageOptions<unknown> & { maxPartialBytes?: number }) {
  const format = options.format ?? DEFAULT_FORMAT;
  return {
    framing: createFraming(format, {
      ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
      ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
    }),
    defaultCodec: (format === 'raw' ? 'bytes' : 'text') as CodecName,
  };
}

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
 * Sends whole messages into a FIFO.
 *
 * Concurrency: `send` may be called again before earlier sends settle; messages go
 * out in call order, each in one piece.
 */
export class Sender<T = string> {
  readonly #frames: FrameSender;
  readonly #codec: Codec<T>;

  /** @internal */
  constructor(frames: FrameSender, codec: Codec<T>) {
    this.#frames = frames;
    this.#codec = codec;
  }

  /**
   * Resolves when the message's bytes are in the pipe.
   * @throws ERR_NPIPE_NO_READER when the reader went away; ERR_NPIPE_CLOSED after close();
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
   * Sends what is still queued, then closes this process's end of the FIFO.
   * Idempotent. With `signal` aborted: messages not started are dropped (their
   * sends reject with ERR_NPIPE_CLOSED); a `lines`/`length`/`fixed:N` message
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
 * Receives whole messages from a FIFO, as an async iterator or with `receive()`.
 *
 * Concurrency: one `receive()` (or one iterator step) at a time; an overlapping
 * call rejects with ERR_NPIPE_BUSY.
 */
export class Receiver<T = string> implements AsyncIterable<T> {
  readonly #frames: FrameReceiver;
  readonly #codec: Codec<T>;
  readonly #timeout: number | undefined;
  readonly #what: string;

  /** @internal */
  constructor(frames: FrameReceiver, codec: Codec<T>, timeout?: number, address = 'this receiver') {
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
   * Stops reading and closes this process's end of the FIFO (the FIFO stays on
   * disk). Messages already read are still returned before the end. Idempotent.
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

/**
 * Opens `path` for sending, creating the FIFO if it is missing (unless
 * `create: false`), and waits for a reader (up to `timeout`, or until `signal`).
 * `timeout` means no progress for that long, for the sender's whole life: no
 * reader came, or the pipe took no byte of a message being written (a reader
 * that stopped reading): ERR_NPIPE_TIMEOUT. 0: fail at once when there is no
 * reader (writes are then not bounded). Values past 2^31-1 ms are honoured.
 *
 * @throws ERR_NPIPE_TIMEOUT, ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND,
 *   ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG.
 * @example
 * const sender = await openSender('/tmp/jobs', { format: 'lines', timeout: 5000 });
 * await sender.send('hello');
 * await sender.close();
 */
export async function openSender<T = string>(path: string, options: SenderOptions<T> = {}): Promise<Sender<T>> {
  const { framing, defaultCodec } = framingFor(options);
  const codec = resolveCodec<T>(options.codec, defaultCodec);
  const frames = isNatsUrl(path)
    ? await (await natsFrames()).openNatsFrameSender(natsAddress(path, options), natsOptions(options as SenderOptions<unknown>, options.waitForReader === true))
    : await openFifoFrameSender(path, framing, options);
  return new Sender(frames, codec);
}

/**
 * The NATS transport, loaded on first use: a process that only uses FIFOs never
 * loads the NATS client (about 12 MiB of RSS and 30 ms of start-up).
 */
function natsFrames() {
  return import('./drivers/nats/nats-frames.js');
}

function natsAddress(url: string, options: { delivery?: Delivery }): NatsAddress {
  const address = parseNatsUrl(url);
  return options.delivery === undefined ? address : { ...address, delivery: options.delivery };
}

/** A FIFO's waits map onto NATS's: `timeout`/`signal` bound connecting; waiting for a reader means waiting for the server. */
function natsOptions(options: SenderOptions<unknown> | ReceiverOptions<unknown>, wait: boolean) {
  return {
    wait,
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
    ...('onDrop' in options && options.onDrop ? { onDrop: options.onDrop } : {}),
    ...('maxQueuedBytes' in options && options.maxQueuedBytes !== undefined ? { maxQueuedBytes: options.maxQueuedBytes } : {}),
  };
}

/**
 * Opens `path` for receiving, creating the FIFO if it is missing (unless
 * `create: false`). Never waits for a writer. By default it keeps listening while
 * writers come and go; `keepOpen: false` ends it at the first end of file.
 * `timeout`: each `receive()`/`receiveInto()` (and iterator step) that gets no
 * message for that long rejects with ERR_NPIPE_TIMEOUT.
 *
 * @throws ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND, ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG.
 * @example
 * const receiver = await openReceiver('/tmp/jobs', { format: 'lines' });
 * for await (const message of receiver) console.log(message);
 */
export async function openReceiver<T = string>(path: string, options: ReceiverOptions<T> = {}): Promise<Receiver<T>> {
  const { framing, defaultCodec } = framingFor(options);
  const codec = resolveCodec<T>(options.codec, defaultCodec);
  checkTimeout(options.timeout); // before anything is opened: a bad value leaves no fd behind
  if (options.signal?.aborted) throw options.signal.reason;
  const frames = isNatsUrl(path)
    ? await (await natsFrames()).openNatsFrameReceiver(natsAddress(path, options), { ...natsOptions(options as ReceiverOptions<unknown>, false), splitInto: options.format === 'raw' })
    : await openFifoFrameReceiver(path, framing, options);
  return new Receiver(frames, codec, options.timeout, path);
}

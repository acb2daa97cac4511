/**
 * The FIFO receiver: whole messages decoded from the non-blocking read end of
 * ../../fifo, queued up to RECEIVE_HIGH_WATER_BYTES, handed out by receive(),
 * receiveInto() and tryReceive(). Where reads land is read-strategy.ts; the sweep
 * of dead writers' partial messages, liveness.ts.
 */
import type { Socket } from 'node:net';
import { BusyError } from '../../errors.js';
import { fromSystemError } from '../../sys/errno.js';
import type { FifoEnd } from '../../fifo/index.js';
import type { FrameDecoder, Framing } from '../../framing/index.js';
import type { CallOptions, FrameReceiver } from '../../transport/types.js';
import { checkTimeout } from '../../util/abort.js';
import { badTarget, copyInto } from '../../transport/into.js';
import { openReaderEnd } from './ends.js';
import { startSweeper } from './liveness.js';
import { DEFAULT_PARTIAL_TIMEOUT_MS, type FifoReceiverOptions } from './options.js';
import { ReadStrategy } from './read-strategy.js';
import { userBufferSetter } from './socket-handle.js';

/** The receiver stops reading from the pipe while it holds this many bytes of messages not yet received. */
export const RECEIVE_HIGH_WATER_BYTES = 1024 * 1024;

export async function openFifoFrameReceiver(
  path: string,
  framing: Framing,
  options: FifoReceiverOptions = {},
): Promise<FifoFrameReceiver> {
  checkTimeout(options.partialTimeout, 'partialTimeout'); // before the FIFO is opened
  return new FifoFrameReceiver(await openReaderEnd(path, options), framing, options);
}

/** receive(), receiveInto() or ready() while one of them waits. */
const busy = (): Promise<never> =>
  Promise.reject(new BusyError('another receive() is already waiting on this receiver; only one may be pending'));

/** A waiter's cleanup when it has no signal to stop listening to. */
const nothing = (): void => {};

interface Waiter {
  /** A frame (receive), its length (receiveInto), or whether one is here (ready); undefined at the end. */
  resolve(value: Buffer | number | boolean | undefined): void;
  reject(err: unknown): void;
  cleanup(): void;
  /** receiveInto's buffer. */
  into: Uint8Array | undefined;
  /** ready(): resolves with true (a frame is here) or false (ended), taking nothing. */
  ready?: boolean;
}

export class FifoFrameReceiver implements FrameReceiver {
  readonly end: FifoEnd;
  readonly framing: Framing;
  #socket: Socket;
  #decoder: FrameDecoder;
  #queue: Buffer[] = [];
  #head = 0;
  #queuedBytes = 0;
  /** No more frames will come from the pipe (end of file, error, or close). */
  #ended = false;
  #error: unknown;
  #waiter: Waiter | undefined;
  /** Reading stopped for backpressure (our own flag: cheaper per message than socket.isPaused()). */
  #paused = false;
  #closed = false;
  #sweeper: NodeJS.Timeout | undefined;
  /** Messages dropped rather than delivered torn (frames format), and their bytes. */
  readonly dropped = { messages: 0, bytes: 0 };
  #emit: (frame: Buffer) => void;
  /** Points the socket's next read away from a receiveInto() buffer; undefined where that cannot be done, and then none is read into. */
  #retarget: (() => void) | undefined;

  constructor(end: FifoEnd, framing: Framing, options: FifoReceiverOptions = {}) {
    this.end = end;
    this.framing = framing;
    const onDrop = options.onDrop;
    const partialTimeout = checkTimeout(options.partialTimeout, 'partialTimeout') ?? DEFAULT_PARTIAL_TIMEOUT_MS;
    this.#decoder = framing.createDecoder({
      partialTimeout,
      onDrop: (info) => {
        this.dropped.messages++;
        this.dropped.bytes += info.bytes;
        onDrop?.(info);
      },
      // A message bound for a waiting receiveInto() (the next one: nothing is
      // queued) is assembled in that call's buffer, and read into it if large.
      borrow: (size) => {
        const into = this.#waiter?.into;
        if (!into || !this.#retarget || this.#head < this.#queue.length || size > into.length) return undefined;
        return Buffer.from(into.buffer, into.byteOffset, size);
      },
    });
    this.#sweeper = startSweeper(this.#decoder, end, {
      partialTimeout,
      keepOpen: options.keepOpen,
      paused: () => this.#paused,
    });
    const reads = new ReadStrategy(end, this.#decoder, framing.writerPackets, (chunk, filled) => this.#decode(chunk, filled));
    this.#emit = (frame: Buffer) => {
      const owned = reads.keep(frame);
      this.#queue.push(owned);
      this.#queuedBytes += owned.length;
    };
    this.#socket = end.socket({
      onread: {
        // Called after each read for the buffer of the next one.
        buffer: () => reads.next(),
        callback: (bytes) => {
          reads.take(bytes);
          // A waiting receive() takes its message first: a large one then never stops reading.
          this.#wake();
          // Stop reading until receive() makes room (see #shift). pause() rather than
          // returning false: only pause() is undone by resume() (net.Socket with onread).
          if (this.#queuedBytes >= RECEIVE_HIGH_WATER_BYTES && !this.#ended) {
            this.#paused = true;
            this.#socket.pause();
          }
          return true;
        },
      },
    });
    // The next read's buffer is set after each read (onread.buffer above), and
    // otherwise only through the handle. Without that, no receiveInto() buffer is lent.
    this.#retarget = userBufferSetter(this.#socket, () => reads.next());
    this.#socket.on('end', () => {
      this.#finish();
      this.#wake();
    });
    this.#socket.on('error', (err) => {
      this.#error ??= fromSystemError(err, end.path, 'reading from');
      this.#finish();
      this.#wake();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes decoded but not yet received, and bytes of a message still incomplete. */
  get bufferedBytes(): number {
    return this.#queuedBytes + this.#decoder.pendingBytes;
  }

  /** Decodes `chunk`, or (no chunk) the `filled` bytes read into the decoder's own target(). */
  #decode(chunk: Buffer | undefined, filled = 0): void {
    if (this.#ended) return;
    try {
      if (chunk) this.#decoder.push(chunk, this.#emit);
      else this.#decoder.filled!(filled, this.#emit);
    } catch (err) {
      // The stream no longer follows the format: stop, deliver what came before, then the error.
      this.#error ??= err;
      this.#finish();
    }
  }

  #finish(): void {
    if (this.#ended) return;
    if (!this.#error) {
      try {
        this.#decoder.end(this.#emit);
      } catch (err) {
        this.#error = err;
      }
    }
    this.#ended = true;
    clearInterval(this.#sweeper);
    this.end.close();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    if (this.#head < this.#queue.length) {
      this.#waiter = undefined;
      waiter.cleanup();
      if (waiter.ready) waiter.resolve(true);
      else if (waiter.into) this.#settleInto(waiter, waiter.into);
      else waiter.resolve(this.#shift());
    } else if (this.#ended) {
      this.#waiter = undefined;
      waiter.cleanup();
      if (waiter.ready) waiter.resolve(false);
      else this.#settleEnd(waiter);
    }
  }

  #settleEnd(waiter: Pick<Waiter, 'resolve' | 'reject'>): void {
    if (this.#error) {
      const err = this.#error;
      this.#error = undefined; // reported once; then the stream has ended
      waiter.reject(err);
    } else waiter.resolve(undefined);
  }

  #shift(): Buffer {
    const frame = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as Buffer;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#queuedBytes -= frame.length;
    if (this.#paused && this.#queuedBytes < RECEIVE_HIGH_WATER_BYTES / 2 && !this.#ended) {
      this.#paused = false;
      this.#socket.resume();
    }
    return frame;
  }

  /**
   * Settles a receiveInto() with the queue's first frame. A byte stream (`raw`) has
   * no messages to keep whole: what does not fit stays first in the queue.
   */
  #settleInto(waiter: Pick<Waiter, 'resolve' | 'reject'>, into: Uint8Array): void {
    const frame = this.#queue[this.#head]!;
    if (frame.length > into.length && this.framing.byteStream) {
      into.set(frame.subarray(0, into.length));
      this.#queue[this.#head] = frame.subarray(into.length);
      this.#queuedBytes -= into.length;
      waiter.resolve(into.length);
      return;
    }
    this.#shift();
    try {
      waiter.resolve(copyInto(frame, into));
    } catch (err) {
      waiter.reject(err);
    }
  }

  /**
   * A receiveInto() ended before its message was whole: its buffer is the caller's
   * again. The message goes on in the decoder's own memory, and the socket's next
   * read, if it was bound for that buffer, goes there too.
   */
  #release(): void {
    if (this.#decoder.detach?.()) this.#retarget!();
  }

  /** The next frame if one is already here, else undefined (never waits; see receive()). */
  tryReceive(): Buffer | undefined {
    return this.#head < this.#queue.length ? this.#shift() : undefined;
  }

  ready(): Promise<boolean> {
    if (this.#waiter) return busy();
    if (this.#head < this.#queue.length) return Promise.resolve(true);
    if (this.#ended) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      this.#waiter = { resolve: resolve as Waiter['resolve'], reject, cleanup: nothing, into: undefined, ready: true };
    });
  }

  receive(options: CallOptions = {}): Promise<Buffer | undefined> {
    return this.#wait(options.signal, undefined) as Promise<Buffer | undefined>;
  }

  receiveInto(target: Uint8Array, options: CallOptions = {}): Promise<number | undefined> {
    const bad = badTarget(target);
    if (bad) return Promise.reject(bad);
    return this.#wait(options.signal, target) as Promise<number | undefined>;
  }

  #wait(signal: AbortSignal | undefined, into: Uint8Array | undefined): Promise<Buffer | number | boolean | undefined> {
    if (this.#waiter) return busy();
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#head < this.#queue.length) {
      if (!into) return Promise.resolve(this.#shift());
      return new Promise((resolve, reject) => this.#settleInto({ resolve, reject }, into));
    }
    if (this.#ended) {
      return new Promise((resolve, reject) => this.#settleEnd({ resolve, reject }));
    }
    if (!signal) {
      return new Promise<Buffer | number | boolean | undefined>((resolve, reject) => {
        this.#waiter = { resolve, reject, cleanup: nothing, into };
      });
    }
    return new Promise<Buffer | number | boolean | undefined>((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = undefined;
        if (into) this.#release();
        reject(signal!.reason);
      };
      this.#waiter = {
        resolve,
        reject,
        cleanup: () => signal.removeEventListener('abort', onAbort),
        into,
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Stops reading and closes this process's descriptors of the FIFO. What was
   * already read from the pipe is still handed out by `receive`; bytes still in
   * the pipe stay there for the next reader.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#ended) {
      // Reads are handed to the decoder as they happen (onread): nothing read is left behind in the socket.
      this.#ended = true;
      clearInterval(this.#sweeper);
      this.end.close();
    }
    this.#wake();
  }
}

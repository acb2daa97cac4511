/**
 * The FIFO transport: framing over the non-blocking FIFO ends of ../fifo.
 */
import type { Socket } from 'node:net';
import { BusyError, ClosedError, NoReaderError, NpipeError, fromSystemError, isErrno } from '../errors.js';
import { FifoEnd, openFifoReader, openFifoWriter, type OpenFifoOptions, type OpenReaderOptions } from '../fifo/index.js';
import type { FrameDecoder, Framing } from '../framing/index.js';
import type { CallOptions, FrameReceiver, FrameSender } from './types.js';

/** The receiver stops reading from the pipe while it holds this many bytes of messages not yet received. */
export const RECEIVE_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/**
 * PIPE_BUF: the kernel keeps a write of at most this many bytes whole, even among
 * several writers (4096 on Linux, 512 on macOS).
 */
export const PIPE_BUF = process.platform === 'linux' ? 4096 : 512;

/**
 * The sender joins queued frames into one write of at most PIPE_BUF bytes. A larger
 * non-blocking write can be cut anywhere by a full pipe, letting another writer's
 * bytes in between: a batch must never cut a frame that would have gone out whole.
 */
export const SEND_BATCH_BYTES = PIPE_BUF;

export interface FifoSenderOptions extends OpenFifoOptions {
  /** Pipe capacity to ask for once open (Linux, F_SETPIPE_SZ). */
  pipeSize?: number;
}

export interface FifoReceiverOptions extends OpenReaderOptions {
  pipeSize?: number;
}

interface Pending {
  frame: Uint8Array;
  resolve(): void;
  reject(err: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

export async function openFifoFrameSender(path: string, framing: Framing, options: FifoSenderOptions = {}): Promise<FifoFrameSender> {
  const end = await openFifoWriter(path, options);
  try {
    if (options.pipeSize !== undefined) end.setPipeSize(options.pipeSize);
  } catch (err) {
    end.close();
    throw err;
  }
  return new FifoFrameSender(end, framing);
}

export class FifoFrameSender implements FrameSender {
  readonly end: FifoEnd;
  readonly framing: Framing;
  #socket: Socket;
  #queue: Pending[] = [];
  #inflight: Pending[] | undefined;
  #error: NpipeError | undefined;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  constructor(end: FifoEnd, framing: Framing) {
    this.end = end;
    this.framing = framing;
    this.#socket = end.socket();
    this.#socket.on('error', (err) => this.#fail(err));
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  send(frame: Uint8Array, options: CallOptions = {}): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError(`the sender for ${this.end.path} is closed`));
    if (this.#error) return Promise.reject(this.#error);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const entry: Pending = { frame, resolve, reject, signal, onAbort: undefined, settled: false };
      if (signal) {
        entry.onAbort = () => {
          const queued = this.#queue.indexOf(entry);
          if (queued !== -1) this.#queue.splice(queued, 1);
          this.#settle(entry, signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#queue.push(entry);
      this.#pump();
    });
  }

  #settle(entry: Pending, err?: unknown): void {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
    if (err === undefined) entry.resolve();
    else entry.reject(err);
  }

  #pump(): void {
    if (this.#inflight || this.#error) return;
    if (this.#queue.length === 0) {
      this.#drained?.();
      return;
    }
    // Join small frames into one atomic write; a frame over PIPE_BUF goes alone.
    let bytes = 0;
    let count = 0;
    while (count < this.#queue.length && (count === 0 || bytes + this.#queue[count]!.frame.length <= SEND_BATCH_BYTES)) {
      bytes += this.#queue[count]!.frame.length;
      count++;
    }
    const batch = this.#queue.splice(0, count);
    this.#inflight = batch;
    const data = count === 1 ? batch[0]!.frame : Buffer.concat(batch.map((e) => e.frame), bytes);
    this.#socket.write(data, (err) => {
      if (err) {
        this.#fail(err); // settles this batch (still in flight) and the queue
        return;
      }
      this.#inflight = undefined;
      for (const entry of batch) this.#settle(entry);
      this.#pump();
    });
  }

  #fail(err: unknown): void {
    if (this.#error) return;
    this.#error = isErrno(err, 'EPIPE')
      ? new NoReaderError(
          `the reader of ${this.end.path} went away (EPIPE); start a reader and open a new sender`,
          { cause: err },
        )
      : fromSystemError(err, this.end.path, 'writing to');
    for (const entry of this.#inflight ?? []) this.#settle(entry, this.#error);
    for (const entry of this.#queue) this.#settle(entry, this.#error);
    this.#inflight = undefined;
    this.#queue = [];
    this.#drained?.();
  }

  /**
   * Waits for every queued frame to be written, then closes the FIFO end (this
   * process's descriptor only; the FIFO stays on disk). With `signal` aborted, the
   * queued frames are dropped (their sends reject) and the end closes at once.
   */
  close(options: CallOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.signal);
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    if (this.#inflight || this.#queue.length > 0) {
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          this.#fail(new ClosedError(`the sender for ${this.end.path} was closed before this message was sent`));
        };
        this.#drained = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.end.close();
  }
}

export async function openFifoFrameReceiver(
  path: string,
  framing: Framing,
  options: FifoReceiverOptions = {},
): Promise<FifoFrameReceiver> {
  const end = await openFifoReader(path, options);
  try {
    if (options.pipeSize !== undefined) end.setPipeSize(options.pipeSize);
  } catch (err) {
    end.close();
    throw err;
  }
  return new FifoFrameReceiver(end, framing);
}

interface Waiter {
  resolve(frame: Buffer | undefined): void;
  reject(err: unknown): void;
  cleanup(): void;
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
  #closed = false;
  #emit = (frame: Buffer) => {
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
  };

  constructor(end: FifoEnd, framing: Framing) {
    this.end = end;
    this.framing = framing;
    this.#decoder = framing.createDecoder();
    this.#socket = end.socket();
    this.#socket.on('data', (chunk: Buffer) => {
      this.#decode(chunk);
      if (this.#queuedBytes >= RECEIVE_HIGH_WATER_BYTES) this.#socket.pause();
      this.#wake();
    });
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

  #decode(chunk: Buffer): void {
    if (this.#ended) return;
    try {
      this.#decoder.push(chunk, this.#emit);
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
    this.end.close();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    if (this.#head < this.#queue.length) {
      this.#waiter = undefined;
      waiter.cleanup();
      waiter.resolve(this.#shift());
    } else if (this.#ended) {
      this.#waiter = undefined;
      waiter.cleanup();
      this.#settleEnd(waiter);
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
    if (!this.#ended && this.#socket.isPaused() && this.#queuedBytes < RECEIVE_HIGH_WATER_BYTES / 2) {
      this.#socket.resume();
    }
    return frame;
  }

  receive(options: CallOptions = {}): Promise<Buffer | undefined> {
    if (this.#waiter) {
      return Promise.reject(new BusyError('another receive() is already waiting on this receiver; only one may be pending'));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#head < this.#queue.length) return Promise.resolve(this.#shift());
    if (this.#ended) {
      return new Promise((resolve, reject) => this.#settleEnd({ resolve, reject }));
    }
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = undefined;
        reject(signal!.reason);
      };
      this.#waiter = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
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
      this.#socket.pause();
      // Take what the socket already read out of the pipe, so none of it is lost.
      for (let chunk: Buffer | null; (chunk = this.#socket.read() as Buffer | null) !== null; ) this.#decode(chunk);
      this.#ended = true;
      this.end.close();
    }
    this.#wake();
  }
}

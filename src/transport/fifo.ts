/**
 * The FIFO transport: framing over the non-blocking FIFO ends of ../fifo.
 */
import type { Socket } from 'node:net';
import { readdirSync, statSync } from 'node:fs';
import { BusyError, ClosedError, NoReaderError, NpipeError, fromSystemError, isErrno } from '../errors.js';
import {
  FifoEnd,
  lock,
  openFifoReader,
  openFifoWriter,
  tryLock,
  unlock,
  type LockMode,
  type OpenFifoOptions,
  type OpenReaderOptions,
} from '../fifo/index.js';
import { PIPE_BUF, type DropInfo, type FrameDecoder, type Framing } from '../framing/index.js';
import type { CallOptions, FrameReceiver, FrameSender } from './types.js';

/** The receiver stops reading from the pipe while it holds this many bytes of messages not yet received. */
export const RECEIVE_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** Size of the receiver's one read buffer. */
export const READ_BUFFER_BYTES = 64 * 1024;
/** How often a frames receiver checks whether writers with a message in progress are still alive. */
export const SWEEP_INTERVAL_MS = 500;

export interface FifoSenderOptions extends OpenFifoOptions {
  /** Pipe capacity to ask for once open (Linux, F_SETPIPE_SZ). */
  pipeSize?: number;
  /**
   * What to do when the reader goes away. false (default): pending and later sends
   * fail with ERR_NPIPE_NO_READER. true: wait for the next reader (each wait up to
   * `timeout`, then ERR_NPIPE_TIMEOUT) and carry on; a message the departure cut is
   * sent again whole (the reader drops the cut copy; frames format).
   */
  waitForReader?: boolean;
}

export interface FifoReceiverOptions extends OpenReaderOptions {
  pipeSize?: number;
  /** frames: the most bytes kept for incomplete messages, all writers together. */
  maxPartialBytes?: number;
  /** frames: called for each message dropped rather than delivered torn. */
  onDrop?: (info: DropInfo) => void;
}

interface Pending {
  message: Uint8Array;
  units: Iterator<Buffer>;
  /** The next unit to write; undefined once all are written. */
  next: Buffer | undefined;
  started: boolean;
  resolve(): void;
  reject(err: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

export async function openFifoFrameSender(path: string, framing: Framing, options: FifoSenderOptions = {}): Promise<FifoFrameSender> {
  const end = await openWriterEnd(path, options);
  return new FifoFrameSender(end, framing, options);
}

async function openWriterEnd(path: string, options: FifoSenderOptions): Promise<FifoEnd> {
  return withPipeSize(await openFifoWriter(path, options), options.pipeSize);
}

/** Applies the capacity asked for, closing the end if the kernel refuses. */
function withPipeSize(end: FifoEnd, pipeSize: number | undefined): FifoEnd {
  if (pipeSize === undefined) return end;
  try {
    end.setPipeSize(pipeSize);
  } catch (err) {
    end.close();
    throw err;
  }
  return end;
}

/**
 * Writes frames in call order. Every write() is either at most PIPE_BUF bytes of
 * whole units (atomic, so several writers never tear each other), or one unit over
 * PIPE_BUF written alone under the FIFO's exclusive writer lock (formats without
 * packets). One write is in flight at a time, so `send()` never runs ahead of the
 * pipe by more than the messages the caller has not awaited.
 */
export class FifoFrameSender implements FrameSender {
  readonly framing: Framing;
  #end: FifoEnd;
  #socket!: Socket;
  #options: FifoSenderOptions;
  #queue: Pending[] = [];
  #writing = false;
  #locked = false;
  #reconnecting = false;
  #error: NpipeError | undefined;
  #closing: Promise<void> | undefined;
  #closeController = new AbortController();
  #drained: (() => void) | undefined;
  /** Times the sender waited for a new reader and carried on. */
  reconnects = 0;

  constructor(end: FifoEnd, framing: Framing, options: FifoSenderOptions = {}) {
    this.#end = end;
    this.framing = framing;
    this.#options = options;
    this.#attach(end);
  }

  get end(): FifoEnd {
    return this.#end;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  #attach(end: FifoEnd): void {
    this.#end = end;
    this.#socket = end.socket();
    // Errors also come through each write's callback, where they are handled.
    this.#socket.on('error', () => {});
  }

  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError(`the sender for ${this.#end.path} is closed`));
    if (this.#error) return Promise.reject(this.#error);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let units: Iterator<Buffer>;
    let next: Buffer | undefined;
    try {
      units = this.framing.encode(message)[Symbol.iterator]();
      next = units.next().value as Buffer | undefined;
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Pending = { message, units, next, started: false, resolve, reject, signal, onAbort: undefined, settled: false };
      if (signal) {
        entry.onAbort = () => {
          // Not yet started: it is never sent. Started: it still goes out whole (never cut).
          const at = this.#queue.indexOf(entry);
          if (!entry.started && at !== -1) this.#queue.splice(at, 1);
          this.#settle(entry, signal.reason);
          this.#pump();
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

  #take(entry: Pending): Buffer {
    const unit = entry.next!;
    entry.started = true;
    entry.next = entry.units.next().value as Buffer | undefined;
    return unit;
  }

  #pump(): void {
    if (this.#writing || this.#error || this.#reconnecting) return;
    const head = this.#queue[0];
    if (!head) {
      this.#drained?.();
      return;
    }
    if (head.next !== undefined && head.next.length > PIPE_BUF) {
      this.#writeLarge(head);
      return;
    }
    // Whole units, as many as fit in PIPE_BUF: one atomic write.
    const parts: Buffer[] = [];
    let bytes = 0;
    let completed = 0;
    for (const entry of this.#queue) {
      while (entry.next !== undefined && entry.next.length <= PIPE_BUF && bytes + entry.next.length <= PIPE_BUF) {
        bytes += entry.next.length;
        parts.push(this.#take(entry));
      }
      if (entry.next !== undefined) break;
      completed++;
    }
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
    this.#write(data, this.framing.atomicUnits ? undefined : 'shared', completed);
  }

  /** A unit over PIPE_BUF (formats without packets): alone, under the exclusive lock. */
  #writeLarge(head: Pending): void {
    this.#write(this.#take(head), 'exclusive', head.next === undefined ? 1 : 0);
  }

  #write(data: Buffer, lockMode: LockMode | undefined, completed: number): void {
    this.#writing = true;
    if (lockMode && !this.#locked) {
      if (!tryLock(this.#end.fd, lockMode)) {
        // Another npipe writer is in the middle of a large message: wait for it.
        lock(this.#end.fd, lockMode, this.#closeController.signal).then(
          () => {
            this.#locked = true;
            this.#write(data, lockMode, completed);
          },
          (err) => this.#fail(err),
        );
        return;
      }
      this.#locked = true;
    }
    this.#socket.write(data, (err) => {
      if (this.#locked) {
        this.#locked = false;
        try {
          unlock(this.#end.fd);
        } catch {
          // The fd is still ours; an unlock error leaves the lock to close().
        }
      }
      this.#writing = false;
      if (err) {
        this.#writeFailed(err);
        return;
      }
      for (const entry of this.#queue.splice(0, completed)) this.#settle(entry);
      this.#pump();
    });
  }

  #writeFailed(err: unknown): void {
    if (!isErrno(err, 'EPIPE') || !this.#options.waitForReader || this.#closeController.signal.aborted) {
      this.#fail(err);
      return;
    }
    // The reader went away. Messages cut by its departure start again from their
    // first unit: the next reader drops the cut copy (frames) and gets them whole.
    for (const entry of this.#queue) {
      if (!entry.started) break;
      entry.started = false;
      entry.units = this.framing.encode(entry.message)[Symbol.iterator]();
      entry.next = entry.units.next().value as Buffer | undefined;
    }
    this.#queue = this.#queue.filter((entry) => !entry.settled);
    this.#reconnecting = true;
    const old = this.#end;
    openWriterEnd(old.path, {
      ...this.#options,
      signal: this.#closeController.signal,
    }).then(
      (end) => {
        // The new end is open before the old one closes, so the pipe keeps any unread bytes.
        this.#attach(end);
        old.close();
        this.reconnects++;
        this.#reconnecting = false;
        this.#pump();
      },
      (cause) => {
        this.#reconnecting = false;
        this.#fail(cause);
      },
    );
  }

  #fail(err: unknown): void {
    if (this.#error) return;
    this.#error = isErrno(err, 'EPIPE')
      ? new NoReaderError(
          `the reader of ${this.#end.path} went away (EPIPE); start a reader and open a new sender, ` +
            'or pass waitForReader (--wait) to wait for the next one',
          { cause: err },
        )
      : err instanceof NpipeError
        ? err
        : fromSystemError(err, this.#end.path, 'writing to');
    for (const entry of this.#queue) this.#settle(entry, this.#error);
    this.#queue = [];
    this.#drained?.();
  }

  /**
   * Waits for every queued frame to be written, then closes the FIFO end (this
   * process's descriptors only; the FIFO stays on disk). With `signal` aborted, the
   * queued frames are dropped (their sends reject) and the end closes at once.
   */
  close(options: CallOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.signal);
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    if (this.#queue.length > 0 && !this.#error) {
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          this.#closeController.abort();
          this.#fail(new ClosedError(`the sender for ${this.#end.path} was closed before this message was sent`));
        };
        this.#drained = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.#closeController.abort();
    this.#end.close();
  }
}

export async function openFifoFrameReceiver(
  path: string,
  framing: Framing,
  options: FifoReceiverOptions = {},
): Promise<FifoFrameReceiver> {
  const end = withPipeSize(await openFifoReader(path, options), options.pipeSize);
  return new FifoFrameReceiver(end, framing, options);
}

/**
 * Whether process `pid` is alive and still has the FIFO `end` open. A pid can be
 * reused by an unrelated process; on Linux /proc tells whether it holds our FIFO.
 * Where that cannot be seen (another user's process), it counts as alive.
 */
function writerAlive(pid: number, end: FifoEnd): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (isErrno(err, 'ESRCH')) return false;
  }
  if (process.platform !== 'linux') return true;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    return !isErrno(err, 'ENOENT');
  }
  for (const fd of fds) {
    const st = statSync(`/proc/${pid}/fd/${fd}`, { throwIfNoEntry: false });
    if (st && st.ino === end.ino && st.dev === end.dev) return true;
  }
  return false;
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
  #sweeper: NodeJS.Timeout | undefined;
  /** Messages dropped rather than delivered torn (frames format), and their bytes. */
  readonly dropped = { messages: 0, bytes: 0 };
  #emit: (frame: Buffer) => void;

  constructor(end: FifoEnd, framing: Framing, options: FifoReceiverOptions = {}) {
    this.end = end;
    this.framing = framing;
    const onDrop = options.onDrop;
    this.#decoder = framing.createDecoder({
      onDrop: (info) => {
        this.dropped.messages++;
        this.dropped.bytes += info.bytes;
        onDrop?.(info);
      },
    });
    if (this.#decoder.sweep) {
      const decoder = this.#decoder;
      this.#sweeper = setInterval(() => decoder.sweep!((pid) => writerAlive(pid, end)), SWEEP_INTERVAL_MS);
      this.#sweeper.unref();
    }
    // Every read lands in this one buffer: no allocation per read, so reading a
    // gigabyte leaves no garbage behind but the messages themselves.
    const readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    this.#emit = (frame: Buffer) => {
      // Decoders may hand out views into the read buffer: those must be copied, it is reused.
      const owned = frame.buffer === readBuffer.buffer ? Buffer.from(frame) : frame;
      this.#queue.push(owned);
      this.#queuedBytes += owned.length;
    };
    this.#socket = end.socket({
      onread: {
        buffer: readBuffer,
        callback: (bytes) => {
          this.#decode(readBuffer.subarray(0, bytes));
          // Stop reading until receive() makes room (see #shift). pause() rather than
          // returning false: only pause() is undone by resume() (net.Socket with onread).
          if (this.#queuedBytes >= RECEIVE_HIGH_WATER_BYTES && !this.#ended) this.#socket.pause();
          this.#wake();
          return true;
        },
      },
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
    clearInterval(this.#sweeper);
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
      // Reads are handed to the decoder as they happen (onread): nothing read is left behind in the socket.
      this.#ended = true;
      clearInterval(this.#sweeper);
      this.end.close();
    }
    this.#wake();
  }
}

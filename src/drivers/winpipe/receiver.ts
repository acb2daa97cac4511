/**
 * The Windows named pipe receiver: a pipe server (net.createServer listening on
 * `\\.\pipe\<name>`) that takes any number of writer connections. Unlike a FIFO,
 * each writer has its own connection, so each gets its own decoder: messages of
 * several writers never interleave in any format, and a writer that leaves
 * mid-message cuts only its own message (counted in `dropped`). Whole messages of
 * all connections go into one queue, handed out one receive() at a time.
 *
 * What Node's pipe server does on Windows (libuv, src/win/pipe.c):
 * - verified under Wine (wine64 + Windows Node 20.20.2): listen/connect across
 *   processes; many writers at once; a writer killed mid-message is seen as the
 *   end of its connection; a second listen() on the same name SUCCEEDS (Wine does
 *   not enforce FILE_FLAG_FIRST_PIPE_INSTANCE), so two receivers can share a
 *   name there and writers are spread between them.
 * - to verify on Windows: that a second listen() fails with EADDRINUSE (libuv asks
 *   for FILE_FLAG_FIRST_PIPE_INSTANCE); that `readableAll/writableAll: false`
 *   (what we pass) leaves the default DACL, open to the creator, SYSTEM and
 *   administrators only; that remote clients are refused (libuv creates the
 *   instances without PIPE_REJECT_REMOTE_CLIENTS, so a pipe server is reachable
 *   over SMB by users the DACL admits; the default DACL admits no remote
 *   anonymous user, but this has not been checked on a real network).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { BusyError, NpipeError } from '../../errors.js';
import type { DropInfo, Framing, FrameDecoder } from '../../framing/index.js';
import { badTarget, copyInto } from '../../transport/into.js';
import type { CallOptions, FrameReceiver } from '../../transport/types.js';
import { pipeError } from './failures.js';

/** The receiver stops reading every connection while it holds this many bytes not yet received (as a FIFO receiver does). */
export const RECEIVE_HIGH_WATER_BYTES = 1024 * 1024;

export interface WinPipeReceiverOptions {
  /** false: the stream ends once the last writer disconnects (after at least one came). Default true: wait for writers for ever. */
  keepOpen?: boolean;
  onDrop?: (info: DropInfo) => void;
  signal?: AbortSignal;
}

/**
 * Listens on `name` (already normalised, `\\.\pipe\<name>`).
 * @throws `signal.reason` when aborted; ERR_NPIPE_PERMISSION or ERR_NPIPE_SYSTEM (another receiver on the name, on Windows) when listening fails.
 */
export async function openWinPipeFrameReceiver(name: string, framing: Framing, options: WinPipeReceiverOptions = {}): Promise<WinPipeFrameReceiver> {
  const { signal } = options;
  if (signal?.aborted) throw signal.reason;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      server.close();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    server.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(pipeError(err, name, 'listening on'));
    });
    server.listen({ path: name, readableAll: false, writableAll: false }, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  });
  return new WinPipeFrameReceiver(server, name, framing, options);
}

interface Waiter {
  resolve(value: Buffer | number | undefined): void;
  reject(err: unknown): void;
  cleanup(): void;
  into: Uint8Array | undefined;
}

export class WinPipeFrameReceiver implements FrameReceiver {
  readonly name: string;
  readonly framing: Framing;
  readonly dropped = { messages: 0, bytes: 0 };
  #server: Server;
  #connections = new Set<Socket>();
  #hadWriter = false;
  #keepOpen: boolean;
  #onDrop: ((info: DropInfo) => void) | undefined;
  #queue: Buffer[] = [];
  #head = 0;
  #queuedBytes = 0;
  #paused = false;
  #ended = false;
  #closed = false;
  #waiter: Waiter | undefined;

  constructor(server: Server, name: string, framing: Framing, options: WinPipeReceiverOptions) {
    this.#server = server;
    this.name = name;
    this.framing = framing;
    this.#keepOpen = options.keepOpen !== false;
    this.#onDrop = options.onDrop;
    server.on('connection', (socket) => this.#accept(socket));
    // After listening, a server error is not one a receive() can act on: the queue still drains, then ends.
    server.on('error', () => this.#finish());
  }

  get closed(): boolean {
    return this.#closed;
  }

  get bufferedBytes(): number {
    let pending = 0;
    for (const socket of this.#connections) pending += decoders.get(socket)?.pendingBytes ?? 0;
    return this.#queuedBytes + pending;
  }

  #drop(info: DropInfo): void {
    this.dropped.messages++;
    this.dropped.bytes += info.bytes;
    this.#onDrop?.(info);
  }

  #accept(socket: Socket): void {
    if (this.#ended) {
      socket.destroy();
      return;
    }
    this.#hadWriter = true;
    this.#connections.add(socket);
    const decoder = this.framing.createDecoder({ onDrop: (info) => this.#drop(info) });
    decoders.set(socket, decoder);
    if (this.#paused) socket.pause();
    const emit = (view: Buffer) => {
      // The decoder may hand out views into the chunk (a new Buffer per 'data', never reused). A small
      // message is copied out, so that a queue of them does not hold whole chunks (up to 64 KiB each).
      const frame = view.length * 4 < view.buffer.byteLength ? Buffer.from(view) : view;
      this.#queue.push(frame);
      this.#queuedBytes += frame.length;
    };
    let done = false;
    // The writer is gone (end, error, or killed): what its decoder holds of a message is cut.
    const finishWriter = (cut: boolean) => {
      if (done) return;
      done = true;
      const pending = decoder.pendingBytes;
      try {
        decoder.end(emit); // frames reports its own cut messages through onDrop; lines emits an unterminated last line
      } catch {
        if (cut || pending > 0) this.#drop({ writerId: 0, reason: 'writer-died', bytes: pending, pid: 0 });
      }
      this.#wake();
    };
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      try {
        decoder.push(chunk, emit);
      } catch (err) {
        // This writer broke the format (or sent a message over the limit): drop it, keep the others.
        done = true;
        const tooLarge = err instanceof NpipeError && err.code === 'ERR_NPIPE_FRAME_TOO_LARGE';
        this.#drop({ writerId: 0, reason: tooLarge ? 'too-large' : 'corrupt', bytes: decoder.pendingBytes, pid: 0 });
        socket.destroy();
      }
      this.#wake();
      if (this.#queuedBytes >= RECEIVE_HIGH_WATER_BYTES && !this.#paused) {
        this.#paused = true;
        for (const s of this.#connections) s.pause();
      }
    });
    socket.on('end', () => finishWriter(false));
    socket.on('error', () => finishWriter(true));
    socket.on('close', () => {
      finishWriter(true);
      this.#connections.delete(socket);
      if (!this.#keepOpen && this.#hadWriter && this.#connections.size === 0) {
        this.#finish();
        this.#wake();
      }
    });
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#server.close();
    for (const socket of this.#connections) socket.destroy();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    if (this.#head < this.#queue.length) {
      this.#waiter = undefined;
      waiter.cleanup();
      if (waiter.into) this.#settleInto(waiter, waiter.into);
      else waiter.resolve(this.#shift());
    } else if (this.#ended) {
      this.#waiter = undefined;
      waiter.cleanup();
      waiter.resolve(undefined);
    }
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
    this.#resumeIfRoom();
    return frame;
  }

  #resumeIfRoom(): void {
    if (this.#paused && this.#queuedBytes < RECEIVE_HIGH_WATER_BYTES / 2 && !this.#ended) {
      this.#paused = false;
      for (const socket of this.#connections) socket.resume();
    }
  }

  /** A byte stream (`raw`) has no messages to keep whole: what does not fit stays first in the queue. */
  #settleInto(waiter: Pick<Waiter, 'resolve' | 'reject'>, into: Uint8Array): void {
    const frame = this.#queue[this.#head]!;
    if (frame.length > into.length && this.framing.byteStream) {
      into.set(frame.subarray(0, into.length));
      this.#queue[this.#head] = frame.subarray(into.length);
      this.#queuedBytes -= into.length;
      this.#resumeIfRoom();
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

  tryReceive(): Buffer | undefined {
    return this.#head < this.#queue.length ? this.#shift() : undefined;
  }

  receive(options: CallOptions = {}): Promise<Buffer | undefined> {
    return this.#wait(options.signal, undefined) as Promise<Buffer | undefined>;
  }

  receiveInto(target: Uint8Array, options: CallOptions = {}): Promise<number | undefined> {
    const bad = badTarget(target);
    if (bad) return Promise.reject(bad);
    return this.#wait(options.signal, target) as Promise<number | undefined>;
  }

  #wait(signal: AbortSignal | undefined, into: Uint8Array | undefined): Promise<Buffer | number | undefined> {
    if (this.#waiter) {
      return Promise.reject(new BusyError('another receive() is already waiting on this receiver; only one may be pending'));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#head < this.#queue.length) {
      if (!into) return Promise.resolve(this.#shift());
      return new Promise((resolve, reject) => this.#settleInto({ resolve, reject }, into));
    }
    if (this.#ended) return Promise.resolve(undefined);
    return new Promise<Buffer | number | undefined>((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = undefined;
        reject(signal!.reason);
      };
      this.#waiter = { resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort), into };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Stops listening and disconnects every writer (their sends then fail with
   * ERR_NPIPE_NO_READER, or wait for the next receiver). Messages already decoded
   * are still handed out by receive(); a pending receive() with none ends with
   * undefined. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#finish();
    this.#wake();
  }
}

/** Each connection's decoder (kept off the Socket object, which is Node's). */
const decoders = new WeakMap<Socket, FrameDecoder>();

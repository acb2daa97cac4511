/**
 * The Windows named pipe sender: one connection to the receiver's pipe server,
 * messages framed with the format (the format is on the wire, as on a FIFO) and
 * written in call order. A send resolves when the socket has handed its bytes to
 * the OS (the write callback). Sends not yet written wait here, where an aborted
 * signal can still take them back; the socket's own buffer is kept small by
 * waiting for 'drain'.
 *
 * The receiver going away (its connection ends or breaks): sends written but not
 * confirmed, pending and later ones reject with ERR_NPIPE_NO_READER; with
 * `waitForReader` the sender connects to the next receiver and writes them again,
 * whole (the departed receiver dropped its cut copy: its decoder is per connection).
 */
import type { Socket } from 'node:net';
import { ClosedError, NoReaderError } from '../../errors.js';
import type { Framing } from '../../framing/index.js';
import type { CallOptions, FrameSender } from '../../transport/types.js';
import { connectPipe } from './connect.js';

export interface WinPipeSenderOptions {
  /** Each wait for a receiver (the first, and with `waitForReader` each next one): ms; 0 = do not wait. */
  timeout?: number;
  signal?: AbortSignal;
  /** Carry on with the next receiver when this one goes away, instead of failing. */
  waitForReader?: boolean;
  /** Send the pipe's key on each connection and wait for its ACK (pipe-key.ts; the driver always does). */
  pipeKey?: boolean;
  /** With pipeKey: also talk to a receiver shared by another user (allowShared). */
  allowShared?: boolean;
  /** Bytes written first on each connection, before any message (request/reply's hello: rpc-transport.ts). */
  greeting?: Uint8Array;
  /** Each new connection, once attached (request/reply reads its replies from it). */
  onConnect?: (socket: Socket) => void;
  /** The receiver went away; called before the sender fails its sends or looks for the next receiver. */
  onLost?: () => void;
}

/**
 * A sender over a connection someone else owns and reads (a server's reply
 * direction on a client's connection, rpc-transport.ts): it never resumes the
 * socket (its owner may have paused reading it) and close() stops using the
 * socket without ending it.
 */
export function borrowWinPipeSocket(socket: Socket, name: string, framing: Framing): WinPipeFrameSender {
  return new WinPipeFrameSender(socket, name, framing, {}, true);
}

/**
 * Connects to the receiver on `name` (normalised), waiting for one (see connectPipe).
 * @throws ERR_NPIPE_NO_READER, ERR_NPIPE_TIMEOUT, `signal.reason`.
 */
export async function openWinPipeFrameSender(name: string, framing: Framing, options: WinPipeSenderOptions = {}): Promise<WinPipeFrameSender> {
  const socket = await connectPipe(name, options);
  return new WinPipeFrameSender(socket, name, framing, options);
}

interface Entry {
  units: Buffer[];
  settled: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

export class WinPipeFrameSender implements FrameSender {
  readonly name: string;
  readonly framing: Framing;
  #options: WinPipeSenderOptions;
  #socket: Socket | undefined;
  /** Not written yet, in call order. */
  #waiting: Entry[] = [];
  /** Written, waiting for the write callback, in order. */
  #inflight: Entry[] = [];
  /** The receiver went away (without waitForReader), or a reconnect failed: every later send rejects with this. */
  #failure: unknown;
  #reconnecting = false;
  /** Stops the wait for the next receiver when close() is done: a closed sender connects to nothing. */
  readonly #stopReconnect = new AbortController();
  #blocked = false;
  #closed = false;
  /** close() ended the connection: its 'close' is not the receiver going away. */
  #closedByUs = false;
  #idle: Array<() => void> = [];
  /** The socket is someone else's: not resumed, not ended (borrowWinPipeSocket). */
  readonly #borrowed: boolean;
  /** Takes this sender's listeners off the current socket. */
  #detach: () => void = () => {};

  constructor(socket: Socket, name: string, framing: Framing, options: WinPipeSenderOptions, borrowed = false) {
    this.name = name;
    this.framing = framing;
    this.#options = options;
    this.#borrowed = borrowed;
    this.#attach(socket);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #attach(socket: Socket): void {
    this.#socket = socket;
    this.#blocked = socket.writableNeedDrain;
    const onDrain = () => {
      this.#blocked = false;
      this.#pump();
    };
    const onError = () => {};
    const onClose = () => {
      if (this.#socket === socket) this.#lost();
    };
    socket.on('drain', onDrain);
    // 'end' (the receiver closed) is followed by 'close'; so is 'error' (EPIPE, ECONNRESET).
    socket.on('error', onError);
    socket.on('close', onClose);
    this.#detach = () => {
      socket.off('drain', onDrain);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    if (this.#borrowed) return;
    if (this.#options.greeting) socket.write(this.#options.greeting);
    this.#options.onConnect?.(socket);
    // Reading lets us see the receiver's end (a message receiver never writes to us).
    socket.resume();
  }

  /** The receiver went away. */
  #lost(): void {
    this.#socket = undefined;
    this.#detach();
    this.#options.onLost?.();
    const unconfirmed = this.#inflight;
    this.#inflight = [];
    if (this.#options.waitForReader === true && !this.#closedByUs) {
      this.#waiting.unshift(...unconfirmed.filter((e) => !e.settled));
      this.#reconnect();
      return;
    }
    this.#failure ??= new NoReaderError(
      this.#borrowed
        ? `the client behind ${this.name} is gone`
        : `the receiver on ${this.name} went away; start it again, or pass { waitForReader: true } (npipe send --wait)`,
    );
    for (const entry of [...unconfirmed, ...this.#waiting]) this.#settle(entry, this.#failure);
    this.#waiting = [];
    this.#checkIdle();
  }

  #reconnect(): void {
    if (this.#reconnecting) return;
    this.#reconnecting = true;
    const { timeout, pipeKey, allowShared } = this.#options;
    const stop = this.#stopReconnect.signal;
    const parent = this.#options.signal;
    const onParentAbort = () => this.#stopReconnect.abort(parent!.reason);
    if (parent?.aborted) onParentAbort();
    else parent?.addEventListener('abort', onParentAbort, { once: true });
    connectPipe(this.name, { ...(timeout === undefined ? {} : { timeout }), signal: stop, ...(pipeKey ? { pipeKey } : {}), ...(allowShared ? { allowShared } : {}) }).then(
      (socket) => {
        parent?.removeEventListener('abort', onParentAbort);
        this.#reconnecting = false;
        if (this.#closedByUs) {
          // close() finished while the connection was being made (after its key was taken): not ours to keep.
          socket.destroy();
          return;
        }
        this.#attach(socket);
        this.#pump();
      },
      (err) => {
        parent?.removeEventListener('abort', onParentAbort);
        this.#reconnecting = false;
        this.#failure ??= err;
        for (const entry of this.#waiting) this.#settle(entry, err);
        this.#waiting = [];
        this.#checkIdle();
      },
    );
  }

  #settle(entry: Entry, err?: unknown): void {
    if (entry.settled) return;
    entry.settled = true;
    if (err === undefined) entry.resolve();
    else entry.reject(err);
  }

  #checkIdle(): void {
    if (this.#waiting.length > 0 || this.#inflight.length > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const f of idle) f();
  }

  #pump(): void {
    const socket = this.#socket;
    while (socket && !this.#blocked && this.#waiting.length > 0) {
      const entry = this.#waiting.shift()!;
      if (entry.settled) continue; // aborted while waiting
      this.#inflight.push(entry);
      const last = entry.units.length - 1;
      let room = true;
      for (let i = 0; i < last; i++) room = socket.write(entry.units[i]!);
      room = socket.write(entry.units[last]!, (err) => {
        if (err || this.#socket !== socket) return; // the 'close' handler decides
        const at = this.#inflight.indexOf(entry);
        if (at >= 0) this.#inflight.splice(at, 1);
        this.#settle(entry);
        this.#checkIdle();
      }) && room;
      if (!room) this.#blocked = true;
    }
    this.#checkIdle();
  }

  #units(message: Uint8Array): Buffer[] {
    const size = this.framing.unitSize(message);
    if (size < 0) return [...this.framing.encode(message)];
    const unit = Buffer.allocUnsafe(size);
    this.framing.writeUnit(message, unit, 0);
    return [unit];
  }

  /**
   * Frames `message` and writes it after the sends before it.
   * @throws ERR_NPIPE_CLOSED after close(); ERR_NPIPE_NO_READER once the receiver went
   * away (without waitForReader); ERR_NPIPE_FRAME_TOO_LARGE, ERR_NPIPE_BAD_FRAME when
   * the format cannot carry it; `signal.reason` if aborted before it was written.
   */
  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError(`the sender on ${this.name} is closed`));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let units: Buffer[];
    try {
      units = this.#units(message);
    } catch (err) {
      return Promise.reject(err);
    }
    if (units.length === 0) units = [Buffer.alloc(0)]; // raw: an empty message is no bytes, still in order
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        // Not written yet: taken back. Being written: it still goes out whole, but the caller stops waiting.
        const at = this.#waiting.indexOf(entry);
        if (at >= 0) this.#waiting.splice(at, 1);
        this.#settle(entry, signal!.reason);
        this.#checkIdle();
      };
      const entry: Entry = {
        units,
        settled: false,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(entry);
      this.#pump();
    });
  }

  /**
   * Writes what is queued, then ends the connection (the receiver sees this writer
   * leave). Idempotent. With `signal` aborted (now or while flushing): sends not yet
   * written reject with ERR_NPIPE_CLOSED; one being written still goes out whole.
   */
  async close(options: CallOptions = {}): Promise<void> {
    const first = !this.#closed;
    this.#closed = true;
    const { signal } = options;
    const dropUnstarted = () => {
      const dropped = this.#waiting;
      this.#waiting = [];
      for (const entry of dropped) this.#settle(entry, new ClosedError(`the sender on ${this.name} was closed before this message was sent`));
      this.#checkIdle();
    };
    if (signal?.aborted) dropUnstarted();
    else signal?.addEventListener('abort', dropUnstarted, { once: true });
    try {
      await new Promise<void>((resolve) => {
        this.#idle.push(resolve);
        this.#checkIdle();
      });
    } finally {
      signal?.removeEventListener('abort', dropUnstarted);
    }
    if (!first) return;
    this.#closedByUs = true;
    this.#stopReconnect.abort(new ClosedError(`the sender on ${this.name} is closed`));
    const socket = this.#socket;
    if (this.#borrowed) {
      this.#socket = undefined;
      this.#detach();
      return;
    }
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
    });
  }
}

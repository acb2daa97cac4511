/**
 * The FIFO sender: messages in the framing's write units, batched into atomic
 * writes of at most PIPE_BUF bytes, over the non-blocking write end of ../../fifo.
 */
import type { Socket } from 'node:net';
import { ClosedError, InvalidArgumentError, NoReaderError, NpipeError, TimeoutError } from '../../errors.js';
import { fromSystemError, isErrno } from '../../sys/errno.js';
import { lock, tryLock, unlock, writeNow, type FifoEnd, type LockMode } from '../../fifo/index.js';
import { PIPE_BUF, type Framing } from '../../framing/index.js';
import type { CallOptions, FrameSender } from '../../transport/types.js';
import { checkTimeout } from '../../util/abort.js';
import { openWriterEnd } from './ends.js';
import type { FifoSenderOptions } from './options.js';
import { writeQueueSize } from './socket-handle.js';

/**
 * Largest write (a unit over PIPE_BUF goes out in pieces of this size). A read or
 * a write holds the pipe's lock while it copies, so 1 MiB writes against 1 MiB
 * reads make reader and writer take turns over the whole pipe, the slowest
 * pattern: in C with epoll, 1.3-1.8 GB/s against 1.6-2.5 with either side in
 * 256 KiB pieces (docs/TUNING.md; the receiver's reads: read-strategy.ts).
 */
const PIECE_WRITE_BYTES = 256 * 1024;

/** Messages that settle together: those queued while a write was in flight, or one message with its own signal. */
interface Group {
  promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  /** Messages not yet written. */
  remaining: number;
  settled: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Pending {
  /** The message, or (sendUnits) bytes already in the format, copied into the batch as they are. */
  message: Uint8Array;
  encoded: boolean;
  /**
   * Size of its one unit, or -1 for a message of several packets (frames). Up to
   * PIPE_BUF: copied straight into the batch buffer. Over PIPE_BUF (formats without
   * packets): its units come from `units`, written under the exclusive lock.
   */
  size: number;
  units: Iterator<Buffer> | undefined;
  /** The next unit of a large message; undefined once all are written. */
  next: Buffer | undefined;
  /** frames, several packets: payload bytes already put in packets. */
  cursor: { at: number } | undefined;
  started: boolean;
  group: Group;
  /** Messages it carries: 1, or (staged) a run of small messages already encoded into `message`. */
  count: number;
  /** `message` is a PIPE_BUF buffer that later small messages of the same group are encoded into (see send()). */
  staged: boolean;
}

interface PendingWrite {
  data: Buffer;
  written: number;
  lock: LockMode | undefined;
  /** Keep the lock after this write: more units of the same large message follow. */
  holdLock: boolean;
  /** Queue entries this write finishes. */
  completed: number;
}

/**
 * Units up to this size are encoded into a shared staging buffer when sent (see
 * FifoFrameSender.send). Larger ones gain little from it (a few per PIPE_BUF) and
 * would pay for a staging buffer every few messages.
 */
const STAGED_UNIT_BYTES = PIPE_BUF / 8;

/**
 * Staging buffers a sender keeps for reuse once their bytes are in the pipe: 1 MiB.
 * A producer runs ahead of the pipe by as much as it queues (a hundred or more
 * buffers in the bench), and each buffer allocated afresh costs about 1 µs plus
 * its collection. Keeping only 4 made most of them fresh: with 256, sender CPU per
 * 64 B message fell by 13-18% into a C reader (alternating runs).
 */
const SPARE_STAGING_BUFFERS = 256;

/** The most a sender writes in one turn of the event loop before letting other work run. */
export const PUMP_BUDGET_BYTES = 1024 * 1024;

function newGroup(signal?: AbortSignal): Group {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A caller that does not await a send must not see an unhandled rejection: the
  // error also reaches every later send and close().
  promise.catch(() => {});
  return { promise, resolve, reject, remaining: 0, settled: false, signal, onAbort: undefined };
}

export async function openFifoFrameSender(path: string, framing: Framing, options: FifoSenderOptions = {}): Promise<FifoFrameSender> {
  const end = await openWriterEnd(path, options);
  return new FifoFrameSender(end, framing, options);
}

/**
 * Writes frames in call order. Every write() is either at most PIPE_BUF bytes of
 * whole units (atomic, so several writers never tear each other), or (a piece of)
 * one unit over PIPE_BUF written alone under the FIFO's exclusive writer lock
 * (formats without packets). One write is in flight at a time, so `send()` never
 * runs ahead of the pipe by more than the messages the caller has not awaited.
 */
export class FifoFrameSender implements FrameSender {
  readonly framing: Framing;
  #end: FifoEnd;
  /** The end's socket, made the first time a write must wait for room (a one-shot send never needs it). */
  #socket: Socket | undefined;
  #options: FifoSenderOptions;
  /** Messages in order: [#head, length) are waiting or being written. */
  #queue: Pending[] = [];
  #head = 0;
  /** The group new messages without a signal join, until a write starts. */
  #open: Group | undefined;
  /** Staging buffers (see send()) whose bytes are in the pipe, for reuse. */
  #spare: Buffer[] = [];
  /** Whole small units are copied here and written together; reused once a write completes. */
  #batch = Buffer.allocUnsafeSlow(PIPE_BUF);
  /** A write prepared and not yet fully in the pipe. */
  #pending: PendingWrite | undefined;
  #writing = false;
  #scheduled = false;
  /**
   * The writers' lock this sender holds, if any. Shared: kept from one small batch
   * to the next for the rest of a pump turn (one flock pair per turn, not per 4 KiB
   * write); exclusive: for the units of one large message only.
   */
  #lockHeld: LockMode | undefined;
  #reconnecting = false;
  #error: NpipeError | undefined;
  #closing: Promise<void> | undefined;
  #closeController = new AbortController();
  #drained: (() => void) | undefined;
  /** Times the sender waited for a new reader and carried on. */
  reconnects = 0;
  /** `timeout`: a write that makes no progress for this long fails (undefined or 0: never). */
  #writeTimeout: number | undefined;
  /** The no-progress check while a write waits (see #watchWrites). */
  #watch: NodeJS.Timeout | undefined;
  #progressed = false;
  #lastProgress = 0;
  /** libuv's count of bytes waiting to be written at the last check: it falls as the pipe takes them. */
  #lastQueued = -1;

  constructor(end: FifoEnd, framing: Framing, options: FifoSenderOptions = {}) {
    this.#end = end;
    this.framing = framing;
    this.#options = options;
    const timeout = checkTimeout(options.timeout);
    this.#writeTimeout = timeout === 0 ? undefined : timeout;
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
    this.#socket = undefined;
  }

  /** The socket through which a write waits for room in the pipe (libuv writes it when epoll says so). */
  #waitingSocket(): Socket {
    if (!this.#socket) {
      this.#socket = this.#end.socket();
      // Errors also come through each write's callback, where they are handled.
      this.#socket.on('error', () => {});
    }
    return this.#socket;
  }

  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    const refused = this.#refusal();
    if (refused) return refused;
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let size: number;
    let units: Iterator<Buffer> | undefined;
    let next: Buffer | undefined;
    let cursor: { at: number } | undefined;
    try {
      size = this.framing.unitSize(message);
      if (size < 0 && this.framing.fillUnits) cursor = { at: 0 };
      else if (size < 0 || size > PIPE_BUF) {
        units = this.framing.encode(message)[Symbol.iterator]();
        next = units.next().value as Buffer | undefined;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    // A message of several writes is likely to wait for room part-way: its socket is
    // made now, so that no wait starts mid-message by loading koffi for dup()
    // (15-150 ms under load: a reader's partialTimeout could take it for a stall).
    if (units || cursor) this.#waitingSocket();
    const group = signal ? newGroup(signal) : (this.#open ??= newGroup());
    group.remaining++;
    if (!signal && !units && !cursor && size <= STAGED_UNIT_BYTES) {
      // A small message: encoded at once behind the others of its group not yet
      // written, so a loop of sends costs one entry per PIPE_BUF, not one per message.
      let tail = this.#queue.length > this.#head ? this.#queue[this.#queue.length - 1]! : undefined;
      if (!(tail?.staged && !tail.started && tail.group === group && tail.size + size <= PIPE_BUF)) {
        const staging = this.#spare.pop() ?? Buffer.allocUnsafeSlow(PIPE_BUF);
        tail = { message: staging, encoded: true, size: 0, units: undefined, next: undefined, cursor: undefined, started: false, group, count: 0, staged: true };
        this.#enqueue(tail);
      }
      this.framing.writeUnit(message, tail.message as Buffer, tail.size);
      tail.size += size;
      tail.count++;
      return group.promise;
    }
    const entry: Pending = { message, encoded: false, size, units, next, cursor, started: false, group, count: 1, staged: false };
    if (signal) {
      group.onAbort = () => {
        // Not yet started: it is never sent. Started: it still goes out whole (never cut).
        if (!entry.started) {
          const at = this.#queue.indexOf(entry, this.#head);
          if (at !== -1) this.#queue.splice(at, 1);
        }
        this.#settle(group, signal.reason);
        this.#pump();
      };
      signal.addEventListener('abort', group.onAbort, { once: true });
    }
    this.#enqueue(entry);
    return group.promise;
  }

  sendUnits(units: Uint8Array): Promise<void> {
    const refused = this.#refusal();
    if (refused) return refused;
    // Units made elsewhere would not carry this sender's writer id (see Framing.writerPackets).
    if (this.framing.writerPackets || units.length === 0 || units.length > PIPE_BUF) {
      return Promise.reject(new InvalidArgumentError(`sendUnits takes 1 to ${PIPE_BUF} bytes of whole units, and not for the ${this.framing.name} format`));
    }
    const group = (this.#open ??= newGroup());
    group.remaining++;
    this.#enqueue({ message: units, encoded: true, size: units.length, units: undefined, next: undefined, cursor: undefined, started: false, group, count: 1, staged: false });
    return group.promise;
  }

  /** Why a send cannot be taken now (closed, or failed for good), as its rejected promise. */
  #refusal(): Promise<void> | undefined {
    if (this.#closing) return Promise.reject(new ClosedError(`the sender for ${this.#end.path} is closed`));
    if (this.#error) return Promise.reject(this.#error);
    return undefined;
  }

  #enqueue(entry: Pending): void {
    this.#queue.push(entry);
    // Let a loop of send() calls queue up before the first write, so it is batched too.
    if (!this.#writing && !this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#pump();
      });
    }
  }

  #settle(group: Group, err?: unknown): void {
    if (group.settled) return;
    group.settled = true;
    if (group.onAbort) group.signal!.removeEventListener('abort', group.onAbort);
    if (err === undefined) group.resolve();
    else group.reject(err);
  }

  #take(entry: Pending): Buffer {
    const unit = entry.next!;
    entry.started = true;
    // A large unit goes out in pieces, all under the exclusive lock it holds (see PIECE_WRITE_BYTES).
    if (unit.length > PIECE_WRITE_BYTES) {
      entry.next = unit.subarray(PIECE_WRITE_BYTES);
      return unit.subarray(0, PIECE_WRITE_BYTES);
    }
    entry.next = entry.units!.next().value as Buffer | undefined;
    return unit;
  }

  /**
   * Writes what is queued. Each write() is whole units of at most PIPE_BUF bytes
   * (all or nothing on a pipe, so several writers never tear each other), or one
   * unit over PIPE_BUF, in pieces of PIECE_WRITE_BYTES, alone under the exclusive
   * writer lock. Writes are made directly (non-blocking, so they never wait) while
   * the pipe has room; when it is full, libuv finishes the write when epoll
   * reports room, and the pump goes on from its callback. At most
   * PUMP_BUDGET_BYTES per turn of the event loop.
   */
  #pump(): void {
    if (this.#writing || this.#error || this.#reconnecting) return;
    let budget = PUMP_BUDGET_BYTES;
    for (;;) {
      let w = this.#pending;
      if (!w) {
        if (this.#head === this.#queue.length) {
          this.#unlock();
          this.#drained?.();
          return;
        }
        if (budget <= 0) {
          this.#unlock(); // a writer waiting for the exclusive lock gets its turn
          this.#writing = true;
          setImmediate(() => {
            this.#writing = false;
            this.#pump();
          });
          return;
        }
        w = this.#pending = this.#prepare();
      }
      if (w.lock && this.#lockHeld !== w.lock) {
        // flock converts a lock in place by dropping it first: say so explicitly.
        this.#unlock();
        const mode = w.lock;
        if (!tryLock(this.#end.fd, mode)) {
          // Another npipe writer is in the middle of a large message: wait for it.
          this.#writing = true;
          this.#watchWrites();
          lock(this.#end.fd, mode, this.#closeController.signal).then(
            () => {
              if (this.#error) {
                // Failed (or closed) meanwhile: the lock is not ours to keep.
                this.#lockHeld = mode;
                this.#unlock();
                return;
              }
              this.#lockHeld = mode;
              this.#writing = false;
              this.#progressed = true;
              this.#pump();
            },
            (err) => {
              this.#writing = false;
              this.#fail(err);
            },
          );
          return;
        }
        this.#lockHeld = mode;
      }
      let n: number;
      try {
        n = writeNow(this.#end.fd, w.data, w.written);
      } catch (err) {
        this.#writeFailed(err);
        return;
      }
      if (n > 0) {
        w.written += n;
        this.#progressed = true;
      }
      budget -= n;
      if (w.written < w.data.length) {
        // The pipe is full: libuv writes the rest once epoll says there is room.
        const rest = w.written === 0 ? w.data : w.data.subarray(w.written);
        const current = w;
        this.#writing = true;
        this.#waitingSocket().write(rest, (err) => {
          // Failed or stopped meanwhile (close with an aborted signal, timeout): the
          // queue this write belonged to is gone (issue 15 #4: a TypeError here).
          if (this.#pending !== current) return;
          this.#writing = false;
          if (err) {
            this.#writeFailed(err);
            return;
          }
          this.#progressed = true;
          this.#finish(current);
          this.#pump();
        });
        this.#watchWrites();
        return;
      }
      this.#finish(w);
    }
  }

  /**
   * The next write: whole small units (and packets) batched into PIPE_BUF bytes,
   * or the next unit of a large message, which holds the exclusive lock until its
   * last unit is out.
   */
  #prepare(): PendingWrite {
    this.#open = undefined; // messages sent from now on settle with a later write
    const head = this.#queue[this.#head]!;
    if (head.units) {
      const data = this.#take(head);
      const done = head.next === undefined;
      const lock = this.framing.writersLock ? 'exclusive' : undefined;
      return { data, written: 0, lock, holdLock: !done, completed: done ? 1 : 0 };
    }
    const batch = this.#batch;
    let bytes = 0;
    let completed = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if (entry.cursor) {
        const n = this.framing.fillUnits!(entry.message, entry.cursor, batch, bytes, PIPE_BUF - bytes);
        if (n > 0) entry.started = true;
        bytes += n;
        if (entry.cursor.at < entry.message.length) break;
        completed++;
        continue;
      }
      if (entry.units || bytes + entry.size > PIPE_BUF) break;
      if (entry.encoded) batch.set(entry.staged ? entry.message.subarray(0, entry.size) : entry.message, bytes);
      else this.framing.writeUnit(entry.message, batch, bytes);
      bytes += entry.size;
      entry.started = true;
      completed++;
    }
    return { data: batch.subarray(0, bytes), written: 0, lock: this.framing.writersLock ? 'shared' : undefined, holdLock: false, completed };
  }

  #finish(w: PendingWrite): void {
    this.#pending = undefined;
    // A large message's last unit is out: let other writers in. A shared lock stays for the next batch.
    if (!w.holdLock && w.lock === 'exclusive') this.#unlock();
    this.#complete(w.completed);
  }

  #unlock(): void {
    if (this.#lockHeld === undefined) return;
    this.#lockHeld = undefined;
    try {
      unlock(this.#end.fd);
    } catch {
      // The fd is still ours; closing it releases the lock anyway.
    }
  }

  /** The first `count` entries are in the pipe: settle the groups they finish. */
  #complete(count: number): void {
    const end = this.#head + count;
    for (let i = this.#head; i < end; i++) {
      const entry = this.#queue[i]!;
      const group = entry.group;
      if ((group.remaining -= entry.count) === 0) this.#settle(group);
      // Its bytes are in the pipe: the buffer takes the next run of small messages.
      if (entry.staged && this.#spare.length < SPARE_STAGING_BUFFERS) this.#spare.push(entry.message as Buffer);
    }
    this.#head = end;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * While a write waits (for room in the pipe, for the writers' lock), checks that
   * it makes progress: with `timeout`, no byte taken by the pipe for that long
   * fails the sender with ERR_NPIPE_TIMEOUT (issue 15 #14: a reader that opened the
   * FIFO and never read held a sender for ever).
   */
  #watchWrites(): void {
    const timeout = this.#writeTimeout;
    if (timeout === undefined || this.#watch) return;
    this.#progressed = false;
    this.#lastProgress = Date.now();
    this.#lastQueued = -1;
    const every = Math.max(5, Math.min(1000, timeout / 4));
    const tick = () => {
      this.#watch = undefined;
      if (this.#error || !this.#writing) return; // nothing waits now; the next wait starts a new watch
      const queued = this.#socket ? writeQueueSize(this.#socket) : -1;
      const now = Date.now();
      if (this.#progressed || queued !== this.#lastQueued || this.#reconnecting) {
        this.#progressed = false;
        this.#lastQueued = queued;
        this.#lastProgress = now;
      } else if (now - this.#lastProgress >= timeout) {
        this.#fail(
          new TimeoutError(
            `${this.#end.path} took no byte for ${timeout} ms: its reader is not reading (or another writer holds the ` +
              'writers\' lock); check the reader, or wait longer (timeout)',
          ),
        );
        return;
      }
      this.#watch = setTimeout(tick, every);
      this.#watch.unref();
    };
    this.#watch = setTimeout(tick, every);
    this.#watch.unref();
  }

  #writeFailed(err: unknown): void {
    this.#pending = undefined;
    this.#unlock();
    if (!isErrno(err, 'EPIPE') || !this.#options.waitForReader || this.#closeController.signal.aborted) {
      this.#fail(err);
      return;
    }
    // The reader went away. The failed write put nothing in the pipe (at most
    // PIPE_BUF bytes: all or nothing); messages it cut start again from their first
    // unit: the next reader drops the cut copy (frames) and gets them whole.
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if (!entry.started) break;
      entry.started = false;
      if (entry.cursor) entry.cursor.at = 0;
      if (entry.units) {
        entry.units = this.framing.encode(entry.message)[Symbol.iterator]();
        entry.next = entry.units.next().value as Buffer | undefined;
      }
    }
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
    for (let i = this.#head; i < this.#queue.length; i++) this.#settle(this.#queue[i]!.group, this.#error);
    this.#queue = [];
    this.#head = 0;
    this.#open = undefined;
    this.#pending = undefined;
    clearTimeout(this.#watch);
    this.#watch = undefined;
    // Failed for good: a wait for the writers' lock or for a new reader ends too.
    this.#closeController.abort();
    this.#drained?.();
  }

  /**
   * close() with its signal aborted while messages are queued: those not started
   * are dropped (their sends reject with ERR_NPIPE_CLOSED). A message of `lines`,
   * `length` or `fixed:N` already partly in the pipe is finished first: cut, it
   * would put every reader of the FIFO out of step (issue 15 #4). A `frames`
   * message is abandoned (its reader drops the partial message) and `raw` is a
   * byte stream: both stop at once. Finishing is bounded by `timeout` (no
   * progress) and by the reader leaving (EPIPE).
   */
  #stop(): void {
    const closed = new ClosedError(`the sender for ${this.#end.path} was closed before this message was sent`);
    const head = this.#queue[this.#head];
    const finish = this.framing.writersLock && head?.started === true && head.units !== undefined && !this.#error;
    if (!finish) {
      this.#closeController.abort();
      this.#fail(closed);
      return;
    }
    // Every group with a message dropped here rejects now, the head's too (its
    // message still goes out whole): a group left waiting would never settle.
    for (let i = this.#head + 1; i < this.#queue.length; i++) this.#settle(this.#queue[i]!.group, closed);
    this.#queue.length = this.#head + 1;
    this.#open = undefined;
  }

  /**
   * Waits for every queued frame to be written, then closes the FIFO end (this
   * process's descriptors only; the FIFO stays on disk). With `signal` aborted, the
   * queued frames not yet started are dropped (their sends reject with
   * ERR_NPIPE_CLOSED); a `lines`/`length`/`fixed:N` message already partly written
   * is finished first (never cut: that would put the reader out of step), bounded
   * by `timeout`; a `frames` or `raw` write stops at once (a frames reader drops
   * the partial message).
   */
  close(options: CallOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.signal);
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    if (this.#head < this.#queue.length && !this.#error) {
      await new Promise<void>((resolve) => {
        const onAbort = () => this.#stop();
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

/**
 * The receiving half of a medium whose messages arrive whole, on a callback,
 * whenever the peer sends them (a NATS subscription, a Windows pipe's connections);
 * the user takes them one receive() at a time. In between they wait here, in
 * order, with their byte count (for a bound on a receiver that is not keeping up)
 * and what was dropped. Each medium adds only what it does on arrival and on
 * hand-out (JetStream: acknowledging; a Windows pipe: pausing its writers). The
 * FIFO receiver has its own queue: it reads into the user's buffer (receiveInto)
 * and so must know a waiter's buffer before a message arrives.
 */
import { BusyError } from '../errors.js';
import type { DropInfo } from '../framing/index.js';
import { abortableWait } from '../util/abort.js';
import { badTarget, copyInto } from './into.js';
import type { CallOptions, FrameReceiver } from './types.js';

/** A queue of arrived messages and one waiter. */
export abstract class QueueReceiver implements FrameReceiver {
  protected readonly queue: Buffer[] = [];
  #head = 0;
  #waiter: { resolve(frame: Buffer | undefined): void; reject(err: unknown): void } | undefined;
  #closed = false;
  #ended = false;
  #failure: unknown;
  readonly #dropped = { messages: 0, bytes: 0 };
  #bytes = 0;
  protected readonly limit: number;
  readonly #onDrop: ((info: DropInfo) => void) | undefined;
  readonly #splitInto: boolean;
  /**
   * What receiveInto() left of a message longer than its buffer (splitInto): handed
   * out before the queue, and not taken() again (for JetStream, the message is
   * acknowledged when the one after it is taken).
   */
  #rest: Buffer | undefined;

  constructor(limit: number, onDrop: ((info: DropInfo) => void) | undefined, splitInto: boolean) {
    this.limit = limit;
    this.#onDrop = onDrop;
    this.#splitInto = splitInto;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get dropped() {
    return this.#dropped;
  }

  get bufferedBytes(): number {
    return this.#bytes;
  }

  /** Messages queued (a rest left by receiveInto() not counted). */
  protected get size(): number {
    return this.queue.length - this.#head;
  }

  protected drop(bytes: number, reason: DropInfo['reason'] = 'too-large'): void {
    this.report({ writerId: 0, reason, bytes, pid: 0 });
  }

  /** A message dropped rather than delivered torn: counted, and told to `onDrop`. */
  protected report(info: DropInfo): void {
    this.#dropped.messages++;
    this.#dropped.bytes += info.bytes;
    this.#onDrop?.(info);
  }

  /** A message arrived. */
  protected deliver(frame: Buffer): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      this.taken(frame);
      waiter.resolve(frame);
      return;
    }
    this.queue.push(frame);
    this.#bytes += frame.byteLength;
  }

  /** No more messages will come: after what is queued, receive() reports the end (or `failure`). */
  protected end(failure?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (!waiter) return;
    if (failure === undefined) waiter.resolve(undefined);
    else waiter.reject(failure);
  }

  /** Forgets the queued messages (they were given back to the server). */
  protected clearQueue(): void {
    this.queue.length = 0;
    this.#head = 0;
    this.#bytes = 0;
    this.#rest = undefined;
  }

  /** Hook: a message is handed to the user. */
  protected taken(_frame: Buffer): void {}

  /** Hook: called when the queue is empty and a receive() starts waiting. */
  protected wanted(): void {}

  /** The next queued message, handed to the user; undefined when none is queued. */
  protected take(): Buffer | undefined {
    const rest = this.#rest;
    if (rest !== undefined) {
      this.#rest = undefined;
      this.#bytes -= rest.byteLength;
      return rest;
    }
    if (this.size === 0) return undefined;
    const frame = this.queue[this.#head]!;
    this.queue[this.#head++] = undefined as unknown as Buffer;
    if (this.#head > 1024 && this.#head * 2 > this.queue.length) {
      this.queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#bytes -= frame.byteLength;
    this.taken(frame);
    return frame;
  }

  receive(options: CallOptions = {}): Promise<Buffer | undefined> {
    const frame = this.take();
    if (frame !== undefined) return Promise.resolve(frame);
    if (this.#ended) return this.#failure === undefined ? Promise.resolve(undefined) : Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new BusyError('another receive() is already waiting on this receiver'));
    return abortableWait<Buffer | undefined>(
      options.signal,
      () => (this.#waiter = undefined),
      (settle) => {
        this.#waiter = settle;
        this.wanted();
      },
    );
  }

  receiveInto(target: Uint8Array, options: CallOptions = {}): Promise<number | undefined> {
    const bad = badTarget(target);
    if (bad) return Promise.reject(bad);
    return this.receive(options).then((frame) => {
      if (frame === undefined) return undefined;
      if (this.#splitInto && frame.length > target.length) {
        target.set(frame.subarray(0, target.length));
        this.#rest = frame.subarray(target.length);
        this.#bytes += this.#rest.byteLength;
        return target.length;
      }
      return copyInto(frame, target);
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return this.shutdown().then(() => this.end());
  }

  protected abstract shutdown(): Promise<void>;
}

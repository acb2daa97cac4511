/**
 * FrameSender and FrameReceiver over NATS. A NATS message is already a whole
 * message, so there is no framing: one send is one NATS message on the subject.
 *
 * - core: publish / queue subscription. At most once: a message sent while no
 *   receiver is subscribed, or while the connection is down longer than the
 *   client's reconnect buffer holds, is gone.
 * - jetstream: the subject is captured by a stream (created if missing, work-queue
 *   retention: a message is deleted once acknowledged); a send resolves when the
 *   server has stored it; receivers share a durable pull consumer with explicit
 *   acks. A message is acknowledged when the receiver is asked for the next one
 *   (or closed): a receiver that dies while handling a message gets it again, from
 *   the server, after `ack-wait`. At least once.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  AckPolicy,
  jetstreamManager,
  jetstream,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import { BadFrameError, BusyError, ClosedError, FrameTooLargeError, InvalidArgumentError, NpipeError, UnreachableError } from '../../errors.js';
import type { DropInfo } from '../../framing/index.js';
import { sleep } from '../../util/abort.js';
import { badTarget, copyInto } from '../../transport/into.js';
import type { CallOptions, FrameReceiver, FrameSender } from '../../transport/types.js';
import { connectNats, maxPayload, type NatsConnectOptions } from './connection.js';
import { streamNameFor, type NatsAddress } from './url.js';

export interface NatsSenderOptions extends NatsConnectOptions {
  /** Largest message, bytes; never more than the server's max_payload (1 MiB unless configured). */
  maxMessageSize?: number;
}

export interface NatsReceiverOptions extends NatsConnectOptions {
  maxMessageSize?: number;
  onDrop?: (info: DropInfo) => void;
  /** Core NATS: bytes of messages held and not yet taken before new ones are dropped (default 64 MiB). */
  maxQueuedBytes?: number;
  /**
   * receiveInto() with a message longer than its buffer fills the buffer and keeps
   * the rest for the next call, instead of ERR_NPIPE_BUFFER_TOO_SMALL: the `raw`
   * format, a byte stream, as over a FIFO.
   */
  splitInto?: boolean;
}

/** Core NATS: what a receiver holds for a user who is not keeping up, like the Go client's pending limits. */
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const MAX_QUEUED_MESSAGES = 512 * 1024;

/** Core publishes buffered in the client before a send waits for the server (flush): memory bound. */
const FLUSH_EVERY_BYTES = 1 << 20;
/** JetStream publishes awaiting the server's acknowledgement at once. */
const JS_WINDOW = 256;
const JS_PUBLISH_TIMEOUT_MS = 5000;
/** JetStream's acknowledgements, sent to a message's reply subject. */
const ACK = Buffer.from('+ACK');
const NAK = Buffer.from('-NAK');
const TERM = Buffer.from('+TERM');
/** "Still in progress": restarts a message's ack-wait. */
const WPI = Buffer.from('+WPI');
/** Messages the server pushes to a consumer's receivers before it waits for acknowledgements. */
const MAX_ACK_PENDING = 256;

/** Where a durable consumer pushes its messages: one subject per stream and consumer. */
function deliverSubject(address: NatsAddress): string {
  return `_NPIPE.deliver.${address.stream}.${address.durable}`;
}

function tooLarge(size: number, limit: number, address: NatsAddress): FrameTooLargeError {
  return new FrameTooLargeError(size, limit, `a message for nats://${address.server}/${address.subject} (limit: maxMessageSize or the server's max_payload)`);
}

/** Why a sender cannot take `message` at all (closed, aborted, too large), as a rejected promise; else undefined. */
function refuseSend(closed: boolean, message: Uint8Array, options: CallOptions, limit: number, address: NatsAddress): Promise<never> | undefined {
  if (closed) return Promise.reject(new ClosedError('this sender is closed'));
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  if (message.byteLength > limit) return Promise.reject(tooLarge(message.byteLength, limit, address));
  return undefined;
}

function lost(address: NatsAddress, err: unknown): NpipeError {
  if (err instanceof NpipeError) return err;
  return new UnreachableError(`the connection to the NATS server at ${address.server} is closed (${(err as Error)?.message ?? String(err)})`, {
    cause: err,
  });
}

/** Room for the headers a JetStream publish adds (Nats-Msg-Id) within the server's max_payload. */
const JS_HEADER_ROOM = 128;

function limitFor(nc: NatsConnection, maxMessageSize: number | undefined, delivery: NatsAddress['delivery'] = 'core'): number {
  return Math.min(maxPayload(nc) - (delivery === 'jetstream' ? JS_HEADER_ROOM : 0), maxMessageSize ?? Infinity);
}

/**
 * Failures of a JetStream publish worth retrying: the server did not answer (a
 * timeout), JetStream did not answer (no responders: the server is restarting), or
 * the connection is being re-established. Anything else (the stream refused the
 * message) fails the send.
 */
function transient(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return name === 'TimeoutError' || name === 'JetStreamNotEnabled' || name === 'RequestError' || name === 'ConnectionError';
}

function refused(address: NatsAddress, err: unknown): NpipeError {
  return new BadFrameError(`the JetStream stream ${address.stream} refused the message: ${(err as Error)?.message ?? String(err)}`);
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export async function openNatsFrameSender(address: NatsAddress, options: NatsSenderOptions = {}): Promise<FrameSender> {
  const nc = await connectNats(address, options);
  try {
    if (address.delivery === 'jetstream') {
      const stream = await ensureStream(nc, address);
      return new JetStreamFrameSender(nc, { ...address, stream }, limitFor(nc, options.maxMessageSize, 'jetstream'));
    }
    return new CoreFrameSender(nc, address, limitFor(nc, options.maxMessageSize));
  } catch (err) {
    await nc.close().catch(() => {});
    throw lost(address, err); // an NpipeError as it is; anything else from NATS: the connection failed
  }
}

export async function openNatsFrameReceiver(address: NatsAddress, options: NatsReceiverOptions = {}): Promise<FrameReceiver> {
  const nc = await connectNats(address, options);
  try {
    const limit = limitFor(nc, options.maxMessageSize);
    let receiver: FrameReceiver;
    if (address.delivery === 'jetstream') {
      const resolved = { ...address, stream: await ensureStream(nc, address) };
      await ensureConsumer(nc, resolved);
      receiver = new JetStreamFrameReceiver(nc, resolved, limit, options.onDrop, options.splitInto ?? false);
    } else receiver = new CoreFrameReceiver(nc, address, limit, options.onDrop, options.splitInto ?? false, options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES);
    // The subscription is on the server when this returns: a message sent after it is ours.
    await nc.flush();
    return receiver;
  } catch (err) {
    await nc.close().catch(() => {});
    throw lost(address, err); // an NpipeError as it is; anything else from NATS: the connection failed
  }
}

class CoreFrameSender implements FrameSender {
  readonly #nc: NatsConnection;
  readonly #address: NatsAddress;
  readonly #limit: number;
  #unflushed = 0;
  #flushing: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(nc: NatsConnection, address: NatsAddress, limit: number) {
    this.#nc = nc;
    this.#address = address;
    this.#limit = limit;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    const refused = refuseSend(this.#closing !== undefined, message, options, this.#limit, this.#address);
    if (refused) return refused;
    try {
      this.#nc.publish(this.#address.subject, message);
    } catch (err) {
      return Promise.reject(lost(this.#address, err));
    }
    this.#unflushed += message.byteLength;
    if (this.#unflushed < FLUSH_EVERY_BYTES && !this.#flushing) return Promise.resolve();
    // Backpressure: wait until the server has what we wrote (a PING/PONG round trip).
    if (!this.#flushing) {
      this.#unflushed = 0;
      this.#flushing = this.#nc.flush().then(
        () => {
          this.#flushing = undefined;
        },
        (err: unknown) => {
          this.#flushing = undefined;
          throw lost(this.#address, err);
        },
      );
    }
    return this.#flushing;
  }

  close(): Promise<void> {
    // drain(): everything published reaches the server before the connection closes.
    return (this.#closing ??= this.#nc.isClosed() ? Promise.resolve() : this.#nc.drain().catch(() => this.#nc.close()));
  }
}

interface Publish {
  data: Uint8Array;
  seq: number;
  resolve(): void;
  reject(err: unknown): void;
  signal: AbortSignal | undefined;
}

/**
 * Publishes with up to JS_WINDOW acknowledgements outstanding. A failed publish
 * (server restarting, timeout) stops the window; failed ones are retried one by
 * one, in order, until stored, then the window opens again. Every message carries
 * a Nats-Msg-Id, so a retry of a message the server did store is discarded by the
 * stream's duplicate window instead of stored twice.
 */
class JetStreamFrameSender implements FrameSender {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #address: NatsAddress;
  readonly #limit: number;
  readonly #prefix = randomBytes(8).toString('hex');
  #seq = 0;
  readonly #queue: Publish[] = [];
  #inFlight = 0;
  /** Publishes that failed, to retry in order before anything else goes out. */
  readonly #retry: Publish[] = [];
  #retrying = false;
  #closing: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  constructor(nc: NatsConnection, address: NatsAddress, limit: number) {
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.#address = address;
    this.#limit = limit;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    const refused = refuseSend(this.#closing !== undefined, message, options, this.#limit, this.#address);
    if (refused) return refused;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ data: message, seq: ++this.#seq, resolve, reject, signal: options.signal });
      this.#pump();
    });
  }

  #pump(): void {
    while (!this.#retrying && this.#retry.length === 0 && this.#inFlight < JS_WINDOW && this.#queue.length > 0) {
      const item = this.#queue.shift()!;
      if (item.signal?.aborted) {
        item.reject(item.signal.reason);
        continue;
      }
      this.#inFlight++;
      this.#publish(item).then(
        () => {
          this.#inFlight--;
          item.resolve();
          this.#pump();
        },
        (err: unknown) => {
          this.#inFlight--;
          if (transient(err)) this.#retry.push(item);
          else item.reject(refused(this.#address, err));
          this.#pump();
        },
      );
    }
    if (!this.#retrying && this.#retry.length > 0 && this.#inFlight === 0) void this.#retryInOrder();
    if (this.#inFlight === 0 && this.#queue.length === 0 && this.#retry.length === 0 && !this.#retrying) this.#idle?.();
  }

  #publish(item: Publish): Promise<unknown> {
    return this.#js.publish(this.#address.subject, item.data, { msgID: `${this.#prefix}-${item.seq}`, timeout: JS_PUBLISH_TIMEOUT_MS });
  }

  async #retryInOrder(): Promise<void> {
    this.#retrying = true;
    // Publishes fail in order of sending, not necessarily settle in it.
    this.#retry.sort((a, b) => a.seq - b.seq);
    while (this.#retry.length > 0) {
      const item = this.#retry[0]!;
      for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
        if (this.#nc.isClosed()) {
          this.#failAll(lost(this.#address, new Error('connection closed')));
          this.#retrying = false;
          return;
        }
        try {
          await this.#publish(item);
          item.resolve();
          break;
        } catch (err) {
          if (!transient(err)) {
            item.reject(refused(this.#address, err));
            break;
          }
          const gone = await this.#streamGone();
          if (gone) {
            this.#failAll(new NpipeError('ERR_NPIPE_NOT_FOUND', gone));
            this.#retrying = false;
            return;
          }
          await sleep(delay);
        }
      }
      this.#retry.shift();
    }
    this.#retrying = false;
    this.#pump();
  }

  /**
   * A publish with no answer looks the same whether the server is restarting or
   * the stream was deleted, or changed so that it no longer captures the subject
   * (no one listens on the subject). JetStream itself tells them apart: it
   * answers, and has no such stream (10059) or one with other subjects. Says
   * why nothing sent is stored, or undefined (retry).
   */
  async #streamGone(): Promise<string | undefined> {
    const { stream, subject } = this.#address;
    try {
      const jsm = await jetstreamManager(this.#nc);
      const info = await jsm.streams.info(stream);
      if (info.config.subjects?.some((f) => subjectMatches(f, subject))) return undefined;
      return `the JetStream stream ${stream} no longer captures ${JSON.stringify(subject)} (its subjects were changed while this sender ran), so nothing sent there is stored; open a sender again`;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10059)) return undefined;
      return `the JetStream stream ${stream} no longer exists (it was deleted while this sender ran), so nothing sent to ${subject} is stored; open a sender again to create it`;
    }
  }

  #failAll(err: unknown): void {
    for (const item of this.#retry.splice(0)) item.reject(err);
    for (const item of this.#queue.splice(0)) item.reject(err);
  }

  close(options: CallOptions = {}): Promise<void> {
    return (this.#closing ??= (async () => {
      if (this.#inFlight > 0 || this.#queue.length > 0 || this.#retry.length > 0 || this.#retrying) {
        // Until everything is stored, or `signal` aborts (what is left then fails below).
        const { signal } = options;
        await new Promise<void>((resolve) => {
          if (signal?.aborted) return resolve();
          const onAbort = () => resolve();
          signal?.addEventListener('abort', onAbort, { once: true });
          this.#idle = () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          };
        });
      }
      this.#failAll(new ClosedError('the sender was closed before this message was stored'));
      if (!this.#nc.isClosed()) await this.#nc.drain().catch(() => this.#nc.close());
    })());
  }
}

/** The receiving half both deliveries share: a queue of arrived messages and one waiter. */
abstract class QueueReceiver implements FrameReceiver {
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
    this.#dropped.messages++;
    this.#dropped.bytes += bytes;
    this.#onDrop?.({ writerId: 0, reason, bytes, pid: 0 });
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
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = undefined;
        reject(signal!.reason);
      };
      this.#waiter = {
        resolve: (f) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(f);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wanted();
    });
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

/**
 * Core NATS: a queue subscription (receivers in the same group share messages).
 * There is no flow control in core NATS: a receiver that falls far behind is cut
 * off by the server as a slow consumer (its messages lost); JetStream has none of that.
 */
class CoreFrameReceiver extends QueueReceiver {
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  #shutdown: Promise<void> | undefined;

  constructor(nc: NatsConnection, address: NatsAddress, limit: number, onDrop: ((info: DropInfo) => void) | undefined, splitInto: boolean, maxQueuedBytes: number) {
    super(limit, onDrop, splitInto);
    this.#nc = nc;
    this.#sub = nc.subscribe(address.subject, {
      queue: address.group,
      callback: (err, msg) => {
        if (err) {
          this.end(lost(address, err));
          return;
        }
        const size = msg.data.byteLength;
        if (size > this.limit) this.drop(size);
        else if (this.size > 0 && (this.bufferedBytes + size > maxQueuedBytes || this.size >= MAX_QUEUED_MESSAGES)) this.drop(size, 'slow-consumer');
        else this.deliver(asBuffer(msg.data));
      },
    });
    void nc.closed().then((err) => this.end(err ? lost(address, err) : undefined));
  }

  tryReceive(): Buffer | undefined {
    return this.take();
  }

  protected shutdown(): Promise<void> {
    // drain(): messages the server already sent us are still queued, then the subscription ends.
    return (this.#shutdown ??= (async () => {
      if (this.#nc.isClosed()) return;
      await this.#sub.drain().catch(() => {});
      await this.#nc.close();
    })());
  }
}

/**
 * JetStream: a durable push consumer delivering to a subject that receivers share
 * as a queue group (so that any number of receivers share the messages, and one
 * coming back after a crash simply subscribes again). The server pushes at most
 * MAX_ACK_PENDING unacknowledged messages, which bounds what a receiver holds.
 *
 * The message handed out last is acknowledged when the next one is asked for, or
 * at close(); messages held and never handed out are given back (nak) at close().
 * No tryReceive(): callers that batch (npipe listen) then finish with a message
 * (write it out) before asking for the next, which is what acknowledges it.
 *
 * A push consumer rather than a pull one: a pull request outlives the receiver
 * that made it (nats-server 2.9 hands the next message to a closed receiver's
 * request, where it stays unacknowledged until ack-wait), while a push consumer
 * delivers only to subscribers that are there.
 */
class JetStreamFrameReceiver extends QueueReceiver {
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  /** The ack subject of each queued frame, in the same order. */
  readonly #pending: string[] = [];
  #pendingHead = 0;
  #unacked: string | undefined;
  #stopped = false;
  /** Arrived after close() began: given back with the queued ones. */
  readonly #held: string[] = [];
  #shutdown: Promise<void> | undefined;

  constructor(nc: NatsConnection, address: NatsAddress, limit: number, onDrop: ((info: DropInfo) => void) | undefined, splitInto: boolean) {
    super(limit, onDrop, splitInto);
    this.#nc = nc;
    this.#sub = nc.subscribe(deliverSubject(address), {
      queue: address.durable,
      callback: (err, msg) => {
        if (err) {
          this.end(lost(address, err));
          return;
        }
        // Not a stream message: a status (no reply subject), or something a peer published
        // on the deliver subject itself. JetStream's messages carry a $JS.ACK.<stream>.<consumer>...
        // reply; acknowledging to any other would publish where the peer chose (a forged
        // message with reply $JS.API.STREAM.DELETE.X), and its body is not a stored message.
        if (!msg.reply?.startsWith(`$JS.ACK.`)) return;
        if (this.#stopped) {
          this.#held.push(msg.reply);
          return;
        }
        if (msg.data.byteLength > this.limit) {
          nc.publish(msg.reply, TERM);
          this.drop(msg.data.byteLength);
          return;
        }
        this.#pending.push(msg.reply);
        this.deliver(asBuffer(msg.data));
      },
    });
    void nc.closed().then((err) => this.end(err ? lost(address, err) : undefined));
    void this.#afterReconnects(address);
    // ack-wait runs from when the server pushed a message, not from when the user took it:
    // messages still queued here (up to MAX_ACK_PENDING) are marked in progress before it
    // ends, or a user slower than ack-wait per batch would get each of them twice.
    this.#inProgress = setInterval(() => {
      for (let i = this.#pendingHead; i < this.#pending.length; i++) this.#ack(this.#pending[i], WPI);
    }, Math.max(address.ackWait / 2, 50)).unref();
  }

  #inProgress: NodeJS.Timeout;

  /** A server that came back without its store (or a consumer someone deleted): make the consumer again. */
  async #afterReconnects(address: NatsAddress): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type === 'reconnect' && !this.#stopped) await ensureConsumer(this.#nc, address).catch(() => {});
    }
  }

  #ack(reply: string | undefined, what: Uint8Array = ACK): void {
    if (reply === undefined || this.#nc.isClosed()) return;
    this.#nc.publish(reply, what);
  }

  protected override taken(): void {
    this.#ack(this.#unacked);
    this.#unacked = this.#pending[this.#pendingHead];
    this.#pending[this.#pendingHead++] = undefined as unknown as string;
    if (this.#pendingHead > 1024 && this.#pendingHead * 2 > this.#pending.length) {
      this.#pending.splice(0, this.#pendingHead);
      this.#pendingHead = 0;
    }
  }

  giveBack(): void {
    this.#ack(this.#unacked, NAK);
    this.#unacked = undefined;
  }

  protected override wanted(): void {
    // The user is back for more: done with the last message.
    this.#ack(this.#unacked);
    this.#unacked = undefined;
  }

  protected shutdown(): Promise<void> {
    return (this.#shutdown ??= (async () => {
      this.#stopped = true;
      clearInterval(this.#inProgress);
      this.#ack(this.#unacked);
      this.#unacked = undefined;
      if (this.#nc.isClosed()) return;
      // drain(): the server stops pushing to us, and what it pushed before that still
      // reaches the callback (held), so that it can be given back too.
      await this.#sub.drain().catch(() => {});
      for (let i = this.#pendingHead; i < this.#pending.length; i++) this.#ack(this.#pending[i], NAK);
      for (const reply of this.#held.splice(0)) this.#ack(reply, NAK);
      this.#pending.length = 0;
      this.#pendingHead = 0;
      this.clearQueue();
      await this.#nc.flush().catch(() => {});
      await this.#nc.close();
    })());
  }
}

/** Whether the NATS subject pattern `filter` (`*` one token, `>` one or more at the end) matches `subject`. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/**
 * A JetStream call that failed, as an npipe error: the server refusing what was
 * asked (a JetStream API error) is ERR_NPIPE_INVALID_ARG, with the server's
 * description and what to change; no answer (timeout, connection) is ERR_NPIPE_UNREACHABLE.
 */
function jetStreamFailure(address: NatsAddress, doing: string, err: unknown): NpipeError {
  if (err instanceof NpipeError) return err;
  if (err instanceof JetStreamApiError) {
    return new InvalidArgumentError(
      `the NATS server at ${address.server} refused to ${doing}: ${err.message} (JetStream error ${err.code}); check the stream= and durable= of nats://${address.server}/${address.subject}`,
    );
  }
  return new UnreachableError(`no answer from JetStream at ${address.server} when asked to ${doing} (${(err as Error)?.message ?? String(err)})`, { cause: err });
}

async function manager(nc: NatsConnection, address: NatsAddress): Promise<JetStreamManager> {
  return jetstreamManager(nc).catch((err: unknown) => {
    throw new UnreachableError(`JetStream is not enabled on the NATS server at ${address.server}; start it with nats-server -js`, { cause: err });
  });
}

function notCaptured(address: NatsAddress, stream: string, subjects: string[] | undefined): InvalidArgumentError {
  return new InvalidArgumentError(
    `the JetStream stream ${stream} does not capture the subject ${JSON.stringify(address.subject)} (its subjects: ${JSON.stringify(subjects ?? [])}), so nothing sent there would be stored; name a stream that captures it (?stream=), or leave stream= out for npipe's own`,
  );
}

/** What a stream is: undefined if it does not exist. */
async function streamInfo(jsm: JetStreamManager, address: NatsAddress, stream: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (apiCode(err) === 10059) return undefined;
    throw jetStreamFailure(address, `describe the stream ${stream}`, err);
  }
}

/**
 * Makes sure a stream captures the address's subject, and returns its name:
 * - the stream the URL names (stream=, or the default, streamNameFor()) if it
 *   exists and captures the subject; one that exists and does not is refused
 *   (ERR_NPIPE_INVALID_ARG), never used;
 * - missing: created with `subjects: [subject]`;
 * - with the default name only: if another stream already captures the subject
 *   (made by hand, or by an npipe from before stream names had a hash), that one.
 */
export async function ensureStream(nc: NatsConnection, address: NatsAddress): Promise<string> {
  const jsm = await manager(nc, address);
  const existing = await streamInfo(jsm, address, address.stream);
  if (existing) {
    if (!existing.config.subjects?.some((f) => subjectMatches(f, address.subject))) throw notCaptured(address, address.stream, existing.config.subjects);
    return address.stream;
  }
  try {
    await jsm.streams.add({
      name: address.stream,
      subjects: [address.subject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    return address.stream;
  } catch (err) {
    // Made meanwhile by another sender or receiver: the same checks.
    const made = await streamInfo(jsm, address, address.stream);
    if (made) {
      if (!made.config.subjects?.some((f) => subjectMatches(f, address.subject))) throw notCaptured(address, address.stream, made.config.subjects);
      return address.stream;
    }
    if (apiCode(err) === 10065) {
      // The subject belongs to another stream already.
      const other = await jsm.streams.find(address.subject).catch(() => undefined);
      if (other !== undefined && address.stream === streamNameFor(address.subject)) return other;
      throw new InvalidArgumentError(
        `the subject ${JSON.stringify(address.subject)} is already captured by the JetStream stream ${other ?? '(another stream)'}, so the stream ${address.stream} cannot be made for it; use stream=${other ?? '<that stream>'}`,
      );
    }
    throw jetStreamFailure(address, `create the stream ${address.stream} for ${JSON.stringify(address.subject)}`, err);
  }
}

/**
 * Makes sure the durable consumer exists and delivers exactly the address's
 * subject to npipe's receivers. One that exists with another filter subject,
 * deliver subject or group (another subject's receivers, a consumer made by hand,
 * a pull consumer) is refused with ERR_NPIPE_INVALID_ARG, never reused: its
 * messages are someone else's. Only ack-wait is changed to this address's.
 */
export async function ensureConsumer(nc: NatsConnection, address: NatsAddress): Promise<void> {
  const jsm = await manager(nc, address);
  const config = {
    durable_name: address.durable,
    deliver_subject: deliverSubject(address),
    deliver_group: address.durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: address.ackWait * 1_000_000,
    max_ack_pending: MAX_ACK_PENDING,
    filter_subject: address.subject,
  };
  const describe = async (): Promise<ConsumerInfo | undefined> => {
    try {
      return await jsm.consumers.info(address.stream, address.durable);
    } catch (err) {
      if (apiCode(err) === 10014) return undefined;
      throw jetStreamFailure(address, `describe the consumer ${address.durable} of the stream ${address.stream}`, err);
    }
  };
  let info = await describe();
  if (!info) {
    try {
      await jsm.consumers.add(address.stream, config);
      return;
    } catch (err) {
      // Made meanwhile by another receiver: checked below like any existing one.
      info = await describe();
      if (!info) throw jetStreamFailure(address, `create the consumer ${address.durable} on the stream ${address.stream} for ${JSON.stringify(address.subject)}`, err);
    }
  }
  const have = info.config;
  const filters = have.filter_subjects ?? (have.filter_subject ? [have.filter_subject] : []);
  const problem =
    filters.length !== 1 || filters[0] !== address.subject
      ? `delivers ${filters.length === 0 ? 'every subject of the stream' : JSON.stringify(filters)}, not ${JSON.stringify(address.subject)}`
      : have.deliver_subject !== config.deliver_subject || have.deliver_group !== config.deliver_group
        ? have.deliver_subject
          ? `delivers to ${have.deliver_subject} (group ${have.deliver_group ?? 'none'}), not to npipe's ${config.deliver_subject} (group ${config.deliver_group})`
          : 'is a pull consumer (npipe receivers use a push consumer)'
        : have.ack_policy !== AckPolicy.Explicit
          ? `has ack policy ${have.ack_policy}, not explicit`
          : undefined;
  if (problem) {
    throw new InvalidArgumentError(
      `the durable consumer ${address.durable} on the JetStream stream ${address.stream} ${problem}; it is not npipe's for this subject, so it is not used: name another (durable=), or delete it`,
    );
  }
  if (have.ack_wait !== config.ack_wait) {
    try {
      await jsm.consumers.update(address.stream, address.durable, { ack_wait: config.ack_wait });
    } catch (err) {
      throw jetStreamFailure(address, `change the ack-wait of the consumer ${address.durable} on the stream ${address.stream}`, err);
    }
  }
}

/**
 * JetStream: the subject is captured by a stream (jetstream-setup.ts; created if
 * missing, work-queue retention: a message is deleted once acknowledged). A send
 * resolves when the server has stored it. Receivers share a durable push consumer
 * (as a queue group) with explicit acks: a message is acknowledged when the
 * receiver is asked for the next one (or closed), so a receiver that dies while
 * handling a message gets it again, from the server, after `ack-wait`. At least once.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { jetstreamManager, jetstream, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import { BadFrameError, ClosedError, NpipeError } from '../../errors.js';
import type { DropInfo } from '../../framing/index.js';
import { sleep } from '../../util/abort.js';
import type { CallOptions, FrameSender } from '../../transport/types.js';
import { asBuffer } from './bytes.js';
import { lost, refuseSend } from './failures.js';
import { deliverSubject, ensureConsumer, subjectMatches } from './jetstream-setup.js';
import { QueueReceiver } from '../../transport/queue-receiver.js';
import type { NatsAddress } from './url.js';

/** JetStream publishes awaiting the server's acknowledgement at once. */
const JS_WINDOW = 256;
const JS_PUBLISH_TIMEOUT_MS = 5000;
/** JetStream's acknowledgements, sent to a message's reply subject. */
const ACK = Buffer.from('+ACK');
const NAK = Buffer.from('-NAK');
const TERM = Buffer.from('+TERM');
/** "Still in progress": restarts a message's ack-wait. */
const WPI = Buffer.from('+WPI');

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
export class JetStreamFrameSender implements FrameSender {
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
export class JetStreamFrameReceiver extends QueueReceiver {
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

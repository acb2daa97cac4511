/**
 * Core NATS: publish and queue subscription. At most once: a message sent while
 * no receiver is subscribed, or while the connection is down longer than the
 * client's reconnect buffer holds, is gone.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DropInfo } from '../../framing/index.js';
import type { CallOptions, FrameSender } from '../../transport/types.js';
import { asBuffer } from './bytes.js';
import { lost, refuseSend } from './failures.js';
import { QueueReceiver } from '../../transport/queue-receiver.js';
import type { NatsAddress } from './url.js';

/** Core NATS: what a receiver holds for a user who is not keeping up, like the Go client's pending limits. */
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const MAX_QUEUED_MESSAGES = 512 * 1024;

/** Core publishes buffered in the client before a send waits for the server (flush): memory bound. */
const FLUSH_EVERY_BYTES = 1 << 20;

/**
 * Publishes: a send resolves at once while the client holds less than
 * FLUSH_EVERY_BYTES not yet flushed, then waits until the server has it all.
 */
export class CoreFrameSender implements FrameSender {
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

/**
 * Core NATS: a queue subscription (receivers in the same group share messages).
 * There is no flow control in core NATS: a receiver that falls far behind is cut
 * off by the server as a slow consumer (its messages lost); JetStream has none of that.
 */
export class CoreFrameReceiver extends QueueReceiver {
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  #shutdown: Promise<void> | undefined;

  constructor(nc: NatsConnection, address: NatsAddress, limit: number, onDrop: ((info: DropInfo) => void) | undefined, splitInto: boolean, maxQueuedBytes: number) {
    super(limit, onDrop, splitInto);
    this.#nc = nc;
    this.#sub = nc.subscribe(address.subject, {
      ...(address.fanOut ? {} : { queue: address.group }),
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

/**
 * A publisher to a topic over FIFOs (issue 20): each message goes into the FIFO of
 * every subscriber present, in `frames`, so that several publishers' messages
 * reach each subscriber whole and in each publisher's order.
 *
 * Subscribers are found in the topic folder. The folder is read again when its
 * modification time changed, and before every message until it has been read
 * well after that time (a file system's clock may tick coarsely: a join in the
 * same tick as a reading, after it, leaves the time as it was), each publish()
 * after the previous one's reading: a subscriber whose subscribe() returned
 * before a publish() started gets that message. A subscriber that has gone (its FIFO has no reader: it closed, or was
 * killed) is let go at once and, if its process is gone, its FIFO removed: a
 * publisher never waits for a dead subscriber.
 *
 * A live subscriber that does not keep up meets its policy (SlowPolicy): `block`
 * makes publish() wait for its pipe; `drop` and `disconnect` never make publish()
 * wait: each has a queue of at most `maxQueuedBytes` in this process, and a message
 * that does not fit is skipped for it (`drop`: it counts the gap from the numbers)
 * or ends it (`disconnect`: its FIFO is removed, so every publisher lets it go,
 * and it is told when it reads up to there). Memory stays bounded either way.
 */
import { randomBytes } from 'node:crypto';
import { statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ClosedError, FrameTooLargeError, NpipeError } from '../../errors.js';
import { checkTopic, ensureTopic, listSubscribers, removeIfGone } from '../../fifo/topic.js';
import type { Framing } from '../../framing/index.js';
import type { CallOptions, FramePublisher, FrameSender, SlowPolicy } from '../../transport/types.js';
import { deadline } from '../../util/abort.js';
import { openFifoFrameSender } from './sender.js';
import { ENVELOPE_BYTES, KIND_DISCONNECT, KIND_LAST, KIND_MESSAGE, wrap } from './topic-envelope.js';
import { EnvelopePool } from './topic-pool.js';

/** How long (ms) after the folder's modification time it must have been read for it not to be read again before each message. */
const RECENT_MS = 50;
/** A `drop` or `disconnect` subscriber's queue in the publisher, by default. */
export const DEFAULT_TOPIC_QUEUE_BYTES = 8 * 1024 * 1024;
/** How long close() lets a `drop` or `disconnect` subscriber take what is queued for it. */
const CLOSE_GRACE_MS = 1000;

export interface FifoPublisherOptions {
  /** The policy for subscribers that name none (default `block`). */
  slow?: SlowPolicy;
  /** Bytes queued for one `drop` or `disconnect` subscriber before it is skipped or let go (default 8 MiB). */
  maxQueuedBytes?: number;
}

interface Subscriber {
  name: string;
  sender: FrameSender;
  policy: SlowPolicy;
  /** Bytes handed to its sender and not yet in its pipe. */
  queued: number;
}

export async function openFifoPublisher(topic: string, framing: Framing, options: FifoPublisherOptions = {}): Promise<FramePublisher> {
  ensureTopic(topic);
  const publisher = new FifoPublisher(topic, framing, options.slow ?? 'block', options.maxQueuedBytes ?? DEFAULT_TOPIC_QUEUE_BYTES);
  await publisher.refresh(true);
  return publisher;
}

class FifoPublisher implements FramePublisher {
  readonly #topic: string;
  readonly #framing: Framing;
  readonly #id = randomBytes(8);
  #seq = 0;
  readonly #subscribers = new Map<string, Subscriber>();
  /** Names found with no reader whose process is still there (another user's? one closing): not tried again. */
  readonly #refused = new Set<string>();
  #mtime = -1;
  /** Date.now() when the folder was last read. */
  #scannedAt = 0;
  /** The last publish's look at the folder, while it is not done (see #look). */
  #turn: Promise<void> | undefined;
  #refreshing: Promise<void> | undefined;
  #closed = false;
  readonly #buffers = new EnvelopePool(ENVELOPE_BYTES);
  readonly #slow: SlowPolicy;
  readonly #maxQueued: number;

  constructor(topic: string, framing: Framing, slow: SlowPolicy, maxQueued: number) {
    this.#topic = topic;
    this.#framing = framing;
    this.#slow = slow;
    this.#maxQueued = maxQueued;
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads the folder again if it changed (or `force`), opening new subscribers and
   * letting go of removed ones; undefined when nothing changed. A scan in progress
   * may have read the folder before a subscriber joined: a refresh then waits for it
   * and looks again. The folder is read again while its time is recent compared with
   * when it was last read: a change in the same clock tick as that reading (after
   * it) leaves the time as it was.
   */
  refresh(force = false): Promise<void> | undefined {
    if (this.#refreshing) return this.#refreshing.then(() => this.refresh(force));
    let mtime: number;
    try {
      mtime = statSync(this.#topic).mtimeMs;
    } catch {
      checkTopic(this.#topic); // says what is wrong with it (removed, replaced)
      throw new ClosedError(`the topic folder ${this.#topic} cannot be read`);
    }
    if (!force && mtime === this.#mtime && this.#scannedAt - mtime > RECENT_MS) return undefined;
    this.#mtime = mtime;
    this.#scannedAt = Date.now();
    this.#refreshing = this.#scan().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * This publish's look at the folder, taken after the previous publish's is done
   * (a subscriber whose subscribe() resolved before publish() was called is seen),
   * and in call order; undefined when nothing is to be waited for.
   */
  #look(): Promise<void> | undefined {
    const previous = this.#turn;
    const look = previous ? previous.then(() => this.refresh()) : this.refresh();
    if (!look) return undefined;
    const turn: Promise<void> = look
      .catch(() => {})
      .then(() => {
        if (this.#turn === turn) this.#turn = undefined;
      });
    this.#turn = turn;
    return look;
  }

  async #scan(): Promise<void> {
    const present = listSubscribers(this.#topic);
    const names = new Set(present.map((s) => s.name));
    for (const [name, subscriber] of this.#subscribers) {
      if (!names.has(name)) this.#letGo(subscriber);
    }
    for (const name of this.#refused) if (!names.has(name)) this.#refused.delete(name);
    await Promise.all(
      present
        .filter(({ name }) => !this.#subscribers.has(name) && !this.#refused.has(name))
        .map(async ({ name, policy }) => {
          try {
            // timeout 0: a FIFO with no reader is a subscriber gone, not one to wait for.
            const sender = await openFifoFrameSender(join(this.#topic, name), this.#framing, { create: false, timeout: 0 });
            if (this.#closed) await sender.close();
            else this.#subscribers.set(name, { name, sender, policy: policy ?? this.#slow, queued: 0 });
          } catch (err) {
            if (!(err instanceof NpipeError)) throw err;
            if (!removeIfGone(this.#topic, name)) this.#refused.add(name);
          }
        }),
    );
  }

  #letGo(subscriber: Subscriber): void {
    if (this.#subscribers.get(subscriber.name) !== subscriber) return;
    this.#subscribers.delete(subscriber.name);
    void subscriber.sender.close().catch(() => {});
  }

  #deliver(subscriber: Subscriber, envelope: Buffer, options?: CallOptions): Promise<void> {
    return subscriber.sender.send(envelope, options).catch((err: unknown) => {
      if (options?.signal?.aborted && err === options.signal.reason) throw err;
      // Its reader went away (EPIPE): it closed or was killed. Let it go; remove its FIFO if its process is gone.
      this.#letGo(subscriber);
      removeIfGone(this.#topic, subscriber.name);
    });
  }

  /** Lets a `disconnect` subscriber go: its FIFO removed (every publisher lets it go), and a last word queued for it. */
  #disconnect(subscriber: Subscriber): void {
    this.#subscribers.delete(subscriber.name);
    this.#refused.add(subscriber.name);
    try {
      unlinkSync(join(this.#topic, subscriber.name));
    } catch {
      // It left already.
    }
    const word = wrap(KIND_DISCONNECT, this.#id, this.#seq, new Uint8Array(0));
    void subscriber.sender.send(word).catch(() => {});
    void this.#closeWithin(subscriber.sender, CLOSE_GRACE_MS);
  }

  /** Closes `sender`, giving up what it has not written after `ms` (a subscriber that never reads again must not keep this process). */
  async #closeWithin(sender: FrameSender, ms: number, options?: CallOptions): Promise<void> {
    const bound = deadline({ timeout: ms, ...(options?.signal ? { signal: options.signal } : {}) }, 'a subscriber did not take what was queued for it');
    try {
      await sender.close(bound.signal ? { signal: bound.signal } : {});
    } catch {
      // What it did not take is dropped: its policy.
    } finally {
      bound.dispose();
    }
  }

  async publish(message: Uint8Array, options?: CallOptions): Promise<void> {
    if (this.#closed) throw new ClosedError('publish() after close()');
    options?.signal?.throwIfAborted();
    // Refused here, not by each subscriber's sender: that error was taken for a subscriber gone (let go), and publish() resolved.
    if (message.length > this.#framing.maxMessageSize) throw new FrameTooLargeError(message.length, this.#framing.maxMessageSize);
    const look = this.#look();
    if (look) await look;
    if (this.#closed) throw new ClosedError('publish() after close()');
    const { envelope, release, pooled } = this.#buffers.take(message.length);
    const view = wrap(KIND_MESSAGE, this.#id, ++this.#seq, message, envelope);
    const sends: Promise<void>[] = [];
    // The envelope goes back to the pool once every subscriber's sender is done with it.
    let holders = 1;
    const done = () => {
      if (--holders === 0) release();
    };
    for (const subscriber of this.#subscribers.values()) {
      if (subscriber.policy === 'block') {
        const sent = this.#deliver(subscriber, view, options);
        // Not pooled (small): nothing to give back, and no promise more per subscriber on the 64 B path.
        if (pooled) holders++;
        sends.push(pooled ? sent.finally(done) : sent);
        continue;
      }
      // drop and disconnect: queued here up to maxQueuedBytes, never waited for.
      if (subscriber.queued > 0 && subscriber.queued + view.length > this.#maxQueued) {
        if (subscriber.policy === 'disconnect') this.#disconnect(subscriber);
        continue; // drop: skipped; its next message's number tells it how many it missed
      }
      subscriber.queued += view.length;
      holders++;
      void this.#deliver(subscriber, view).finally(() => {
        subscriber.queued -= view.length;
        done();
      });
    }
    done();
    await Promise.all(sends);
  }

  async close(options?: CallOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#refreshing?.catch(() => {});
    const last = wrap(KIND_LAST, this.#id, this.#seq, new Uint8Array(0));
    await Promise.all(
      [...this.#subscribers.values()].map(async (subscriber) => {
        void subscriber.sender.send(last, options).catch(() => {});
        // A block subscriber gets everything; a drop or disconnect one what its pipe takes within CLOSE_GRACE_MS.
        if (subscriber.policy === 'block') await subscriber.sender.close(options).catch(() => {});
        else await this.#closeWithin(subscriber.sender, CLOSE_GRACE_MS, options);
      }),
    );
    this.#subscribers.clear();
  }
}

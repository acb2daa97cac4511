/**
 * A publisher to a topic over FIFOs (issue 20): each message goes into the FIFO of
 * every subscriber present, in `frames`, so that several publishers' messages
 * reach each subscriber whole and in each publisher's order.
 *
 * Subscribers are found in the topic folder. The folder is read again when its
 * modification time changed, and on every message while that time is recent (a
 * file system's clock may tick coarsely, so two joins in one tick look like one):
 * a subscriber whose subscribe() returned before a publish() started gets that
 * message. A subscriber that has gone (its FIFO has no reader: it closed, or was
 * killed) is let go at once and, if its process is gone, its FIFO removed: a
 * publisher never waits for a dead subscriber.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ClosedError, NpipeError } from '../../errors.js';
import { checkTopic, ensureTopic, listSubscribers, removeIfGone } from '../../fifo/topic.js';
import type { Framing } from '../../framing/index.js';
import type { CallOptions, FramePublisher, FrameSender } from '../../transport/types.js';
import { openFifoFrameSender } from './sender.js';
import { KIND_LAST, KIND_MESSAGE, wrap } from './topic-envelope.js';

/** How recent (ms) the folder's modification time must be for the folder to be read again on every message. */
const RECENT_MS = 50;

interface Subscriber {
  name: string;
  sender: FrameSender;
}

export async function openFifoPublisher(topic: string, framing: Framing): Promise<FramePublisher> {
  ensureTopic(topic);
  const publisher = new FifoPublisher(topic, framing);
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
  #refreshing: Promise<void> | undefined;
  #closed = false;

  constructor(topic: string, framing: Framing) {
    this.#topic = topic;
    this.#framing = framing;
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Reads the folder again if it changed (or `force`), opening new subscribers and letting go of removed ones. */
  refresh(force = false): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    let mtime: number;
    try {
      mtime = statSync(this.#topic).mtimeMs;
    } catch {
      checkTopic(this.#topic); // says what is wrong with it (removed, replaced)
      throw new ClosedError(`the topic folder ${this.#topic} cannot be read`);
    }
    if (!force && mtime === this.#mtime && Date.now() - mtime > RECENT_MS) return Promise.resolve();
    this.#mtime = mtime;
    this.#refreshing = this.#scan().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
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
        .map(async ({ name }) => {
          try {
            // timeout 0: a FIFO with no reader is a subscriber gone, not one to wait for.
            const sender = await openFifoFrameSender(join(this.#topic, name), this.#framing, { create: false, timeout: 0 });
            if (this.#closed) await sender.close();
            else this.#subscribers.set(name, { name, sender });
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

  async publish(message: Uint8Array, options?: CallOptions): Promise<void> {
    if (this.#closed) throw new ClosedError('publish() after close()');
    options?.signal?.throwIfAborted();
    await this.refresh();
    if (this.#closed) throw new ClosedError('publish() after close()');
    const envelope = wrap(KIND_MESSAGE, this.#id, ++this.#seq, message);
    const sends: Promise<void>[] = [];
    for (const subscriber of this.#subscribers.values()) sends.push(this.#deliver(subscriber, envelope, options));
    await Promise.all(sends);
  }

  async close(options?: CallOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#refreshing?.catch(() => {});
    const last = wrap(KIND_LAST, this.#id, this.#seq, new Uint8Array(0));
    await Promise.all(
      [...this.#subscribers.values()].map(async (subscriber) => {
        await subscriber.sender.send(last, options).catch(() => {});
        await subscriber.sender.close(options).catch(() => {});
      }),
    );
    this.#subscribers.clear();
  }
}

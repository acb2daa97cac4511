/**
 * A subscriber to a topic over FIFOs (issue 20): a FIFO of its own in the topic
 * folder, which every publisher writes each message into. It joins under a
 * joining name, opens its FIFO for reading, then takes its subscriber name, so
 * that a publisher that sees it can write to it; closing removes the name first
 * (publishers stop opening it), then the FIFO's read end (publishers that hold it
 * get EPIPE and let it go). A subscriber SIGKILLed leaves its FIFO behind, with no
 * reader: the next publisher to write to it, or the next subscriber to join,
 * removes it.
 */
import { existsSync, renameSync } from 'node:fs';
import { SlowConsumerError } from '../../errors.js';
import { join } from 'node:path';
import { mkfifoExactSync } from '../../fifo/index.js';
import { ensureTopic, removeGoneSubscribers, subscriberNames } from '../../fifo/topic.js';
import type { Framing } from '../../framing/index.js';
import type { CallOptions, FrameReceiver, SlowPolicy } from '../../transport/types.js';
import { copyInto } from '../../transport/into.js';
import { removeAtExit, removeQuietly } from '../../util/at-exit.js';
import { orElse } from './ends.js';
import type { FifoReceiverOptions } from './options.js';
import { openFifoFrameReceiver, type FifoFrameReceiver } from './receiver.js';
import { KIND_DISCONNECT, KIND_LAST, KIND_MESSAGE, unwrap } from './topic-envelope.js';

/** How often a waiting `disconnect` subscriber checks that its FIFO is still there. */
const GONE_CHECK_MS = 250;

export interface TopicSubscriberOptions extends Omit<FifoReceiverOptions, 'create' | 'keepOpen' | 'mode'> {
  /** What publishers do when this subscriber does not keep up (default: each publisher's own default, `block`). */
  slow?: SlowPolicy;
  /** Called when messages of a publisher were not delivered to this subscriber (it fell behind): how many. */
  onMissed?: (info: { publisher: string; messages: number }) => void;
}

export async function subscribeFifo(topic: string, framing: Framing, options: TopicSubscriberOptions = {}): Promise<TopicReceiver> {
  ensureTopic(topic);
  removeGoneSubscribers(topic);
  const { joining, name } = subscriberNames(options.slow);
  const joiningPath = join(topic, joining);
  mkfifoExactSync(joiningPath, 0o600);
  let inner: FrameReceiver;
  try {
    // keepOpen: the receiver holds a write end of its own, so publishers coming and going is never an end of file.
    inner = await openFifoFrameReceiver(joiningPath, framing, { ...options, create: false, keepOpen: true });
  } catch (err) {
    removeQuietly(joiningPath);
    throw err;
  }
  const path = join(topic, name);
  try {
    renameSync(joiningPath, path);
  } catch (err) {
    await inner.close();
    removeQuietly(joiningPath);
    throw err;
  }
  // A subscriber that names no policy takes each publisher's, which may be disconnect: it watches too.
  const watch = options.slow === undefined || options.slow === 'disconnect';
  const end = (inner as Partial<FifoFrameReceiver>).end;
  return new TopicReceiver(inner, path, options.onMissed, watch, () => end?.bytesInPipe() ?? 0);
}

/** The subscriber's frames with the publishers' envelopes taken off, reporting what it missed (onMissed). */
export class TopicReceiver implements FrameReceiver {
  readonly #inner: FrameReceiver;
  readonly #path: string;
  readonly #onMissed: TopicSubscriberOptions['onMissed'];
  /** Each publisher's last number seen. */
  readonly #last = new Map<string, number>();
  #malformed = { messages: 0, bytes: 0 };
  /** Its FIFO may be removed by a publisher (the `disconnect` policy): watched while waiting. */
  readonly #watch: boolean;
  /** Bytes in its pipe not yet read (FIONREAD). */
  readonly #inPipe: () => number;
  #watchTimer: NodeJS.Timeout | undefined;
  /** Receives waiting on the pipe now: the FIFO is checked only while one does. */
  #waiting = 0;
  #disconnected: SlowConsumerError | undefined;
  #closing = false;
  /**
   * Its FIFO is removed if the process exits before close() (process.exit: npipe
   * subscribe | head -1 exits on EPIPE), as closing would; this undoes that.
   */
  readonly #undoAtExit: () => void;

  constructor(inner: FrameReceiver, path: string, onMissed: TopicSubscriberOptions['onMissed'], watch = false, inPipe: () => number = () => 0) {
    this.#inner = inner;
    this.#path = path;
    this.#onMissed = onMissed;
    this.#watch = watch;
    this.#inPipe = inPipe;
    this.#undoAtExit = removeAtExit(path);
  }

  /** The message in `frame`, or undefined for a frame that carries none (a publisher's last number, or not an envelope). */
  #open(frame: Buffer): Buffer | undefined {
    const envelope = unwrap(frame);
    const last = envelope && this.#last.get(envelope.publisher);
    // The first message seen from a publisher starts its count: a subscriber gets what is published from its joining on.
    // A message comes after the last one's number, a publisher's last number (at close) at or after it.
    const skipped = !envelope || last === undefined ? 0 : envelope.seq - last - (envelope.kind === KIND_MESSAGE ? 1 : 0);
    // Not an envelope, or a number no publisher sends (past 2^53, or one that goes back): something else
    // wrote into this FIFO. Dropped and counted, never a gap of 10^19 or a count moved back.
    if (!envelope || !Number.isSafeInteger(envelope.seq) || skipped < 0) {
      this.#malformed = { messages: this.#malformed.messages + 1, bytes: this.#malformed.bytes + frame.length };
      return undefined;
    }
    if (skipped > 0) this.#onMissed?.({ publisher: envelope.publisher, messages: skipped });
    if (envelope.kind === KIND_LAST) {
      this.#last.delete(envelope.publisher);
      return undefined;
    }
    if (envelope.kind === KIND_DISCONNECT) {
      this.#disconnected = new SlowConsumerError(`publisher ${envelope.publisher} disconnected this subscriber of ${this.#path}: it fell too far behind (the disconnect policy); what it sent before is delivered`);
      throw this.#disconnected;
    }
    this.#last.set(envelope.publisher, envelope.seq);
    return envelope.body;
  }

  async receive(options?: CallOptions): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#disconnected) throw this.#disconnected;
      const frame = this.#inner.tryReceive?.() ?? (await this.#wait(options));
      if (frame === undefined) return undefined;
      const body = this.#open(frame);
      if (body !== undefined) return body;
    }
  }

  /**
   * The next frame from the pipe. A `disconnect` subscriber (or one that names no
   * policy, so takes each publisher's) also watches its FIFO: removed by a publisher
   * whose last word could not be written (the pipe stayed full), it ends with
   * ERR_NPIPE_SLOW_CONSUMER once what is in the pipe is read.
   */
  async #wait(options?: CallOptions): Promise<Buffer | undefined> {
    if (!this.#watch) return this.#inner.receive(options);
    // One timer for the subscriber's life (not one per wait: a subscriber that keeps up waits often).
    if (!this.#watchTimer) {
      this.#watchTimer = setInterval(() => this.#checkGone(), GONE_CHECK_MS);
      this.#watchTimer.unref();
    }
    this.#waiting++;
    try {
      const frame = await this.#inner.receive(options);
      if (frame === undefined && this.#disconnected) throw this.#disconnected;
      return frame;
    } catch (err) {
      throw this.#disconnected ?? err;
    } finally {
      this.#waiting--;
    }
  }

  /** While a receive waits: its FIFO removed and nothing left in its pipe, the subscriber was let go. */
  #checkGone(): void {
    if (this.#waiting === 0 || this.#closing || this.#disconnected || existsSync(this.#path)) return;
    // What is still in the pipe came before: it is read first. (After a SIGSTOP, the
    // overdue timer runs before the pipe is read: that prefix was lost.)
    if (orElse(this.#inPipe, 0) > 0) return;
    this.#disconnected = new SlowConsumerError(
      `the FIFO of this subscriber, ${this.#path}, was removed: a publisher disconnected it (it fell too far behind), or the topic was removed`,
    );
    clearInterval(this.#watchTimer);
    // Nothing more can come: the waiting receive ends, and says why.
    void this.#inner.close().catch(() => {});
  }

  tryReceive(): Buffer | undefined {
    for (;;) {
      if (this.#disconnected) throw this.#disconnected;
      const frame = this.#inner.tryReceive?.();
      if (frame === undefined) return undefined;
      const body = this.#open(frame);
      if (body !== undefined) return body;
    }
  }

  async receiveInto(target: Uint8Array, options?: CallOptions): Promise<number | undefined> {
    const body = await this.receive(options);
    return body === undefined ? undefined : copyInto(body, target);
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#watchTimer);
    // The name first: no publisher opens it from here on; then the read end, which those holding it notice (EPIPE).
    removeQuietly(this.#path);
    this.#undoAtExit();
    await this.#inner.close();
  }

  get closed(): boolean {
    return this.#inner.closed;
  }

  get dropped(): { messages: number; bytes: number } {
    const inner = this.#inner.dropped;
    return { messages: inner.messages + this.#malformed.messages, bytes: inner.bytes + this.#malformed.bytes };
  }
}

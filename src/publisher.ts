/**
 * Publisher: every message to every subscriber of a topic (issue 20), over any
 * driver's FramePublisher. Subscribers receive with a Receiver (messaging.ts).
 */
import { ClosedError } from './errors.js';
import type { Codec, Sendable } from './codec.js';
import type { CallOptions, FramePublisher } from './transport/types.js';

export class Publisher<T = Sendable> {
  readonly #frames: FramePublisher;
  readonly #codec: Codec<unknown, T>;

  /** @internal */
  constructor(frames: FramePublisher, codec: Codec<unknown, T>) {
    this.#frames = frames;
    this.#codec = codec;
  }

  /**
   * Resolves once the message is in the pipe of every subscriber present when it
   * was published (FIFO; a subscriber that went away meanwhile excepted).
   * Publishes may overlap; they go out in call order, each whole.
   * @throws ERR_NPIPE_CLOSED after close(); ERR_NPIPE_FRAME_TOO_LARGE; `signal.reason` on abort.
   */
  publish(message: T, options: CallOptions = {}): Promise<void> {
    if (this.#frames.closed) return Promise.reject(new ClosedError('this publisher is closed'));
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(message);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#frames.publish(bytes, options);
  }

  /** The subscribers it delivers to now (FIFO: as of the last message); undefined over NATS, whose server alone knows. */
  get subscribers(): number | undefined {
    return this.#frames.subscribers;
  }

  /** Delivers what is queued, then lets the subscribers go. Idempotent. */
  close(options: CallOptions = {}): Promise<void> {
    return this.#frames.close(options);
  }

  get closed(): boolean {
    return this.#frames.closed;
  }
}

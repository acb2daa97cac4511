/**
 * A transport moves whole frames (messages as bytes) between processes. It knows
 * nothing of payloads (JSON, text): that is the API layer above. Each driver
 * implements FrameSender and FrameReceiver for its medium (drivers/fifo/sender.ts
 * and receiver.ts, drivers/nats/core.ts and jetstream.ts); test/contract.test.ts
 * runs one suite over all of them.
 *
 * Concurrency: `send` may be called many times without waiting; frames go out in
 * call order. Only one `receive` may be pending at a time (a second one rejects
 * with ERR_NPIPE_BUSY).
 */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface FrameSender {
  /**
   * Frames `message` (the transport's own framing) and resolves once it is handed
   * to the medium (for a FIFO: all of it in the pipe).
   * Rejects with `signal.reason` if aborted while still queued (the frame is then
   * never sent); if aborted while being written, it rejects too, but the frame still
   * goes out whole: a frame is never cut.
   */
  send(message: Uint8Array, options?: CallOptions): Promise<void>;
  /**
   * Bytes that are already whole units of this sender's format (for lines: complete
   * lines, each ending in "\n"), at most PIPE_BUF in all, each within the format's
   * size limit: sent as they are, in one write with whatever else is batched, in
   * order with send(). For a caller holding a stream already in the format (`npipe
   * send` reading lines): no work per message. FIFO only, not for `frames`.
   */
  sendUnits?(units: Uint8Array): Promise<void>;
  /**
   * Sends what is queued, then releases the medium. Idempotent. With `signal`
   * aborted: what is not started is dropped (those sends reject); a FIFO sender of
   * lines/length/fixed:N finishes a message already partly written (never cut),
   * a frames or raw one stops at once.
   */
  close(options?: CallOptions): Promise<void>;
  readonly closed: boolean;
}

export interface FrameReceiver {
  /** The next frame, or undefined once the stream has ended (end of file, or closed). */
  receive(options?: CallOptions): Promise<Buffer | undefined>;
  /**
   * The next frame, copied into `target` (or, for a large message over a FIFO,
   * read from the pipe straight into it): resolves with its length, or undefined
   * once the stream has ended. A frame longer than `target` rejects with
   * ERR_NPIPE_BUFFER_TOO_SMALL, the frame being the error's payload. `raw` fills
   * at most `target.length` bytes and keeps the rest for the next call (and for
   * receive()). `target` is the transport's from the call until the promise settles.
   */
  receiveInto(target: Uint8Array, options?: CallOptions): Promise<number | undefined>;
  /** The next frame if one has already arrived, else undefined; never waits (a fast path for iterators). */
  tryReceive?(): Buffer | undefined;
  /**
   * Resolves once receive() would not wait: true when a frame has arrived (take it
   * with tryReceive()), false when the stream has ended (receive() then says how).
   * For loops that take frames one by one: a promise resolved with a Buffer costs a
   * lookup of `then` along the Buffer's prototype chain, one resolved with a boolean
   * does not (issue 18 #3: a round trip's cost). One waiting call at a time, shared
   * with receive(). Rejects only as receive() would (ERR_NPIPE_BUSY). Its callers
   * (the request/reply loops) wait inline: a helper that returned the frame would
   * resolve a promise with it again.
   */
  ready?(): Promise<boolean>;
  /**
   * Stops taking frames from the medium. Frames already taken are still returned by
   * `receive` before it reports the end: nothing read is dropped. Idempotent.
   */
  close(): Promise<void>;
  readonly closed: boolean;
  /** Messages dropped rather than delivered torn, and their bytes. */
  readonly dropped: { readonly messages: number; readonly bytes: number };
  /**
   * The frame received last was not handled: a medium with acknowledgements
   * (JetStream) delivers it again now; elsewhere nothing to do.
   */
  giveBack?(): void;
  /** Bytes held: messages received and not yet taken, and messages still incomplete. */
  readonly bufferedBytes?: number;
}

/**
 * What a publisher does with a subscriber that does not keep up: `block` waits for
 * it (the pipe's backpressure), `drop` skips it while it is more than a queue's
 * worth behind (it counts what it missed), `disconnect` lets it go and tells it
 * (ERR_NPIPE_SLOW_CONSUMER).
 */
export type SlowPolicy = 'block' | 'drop' | 'disconnect';

/** Every SlowPolicy, for checking one given at run time (an option, a flag). */
export const SLOW_POLICIES: readonly SlowPolicy[] = ['block', 'drop', 'disconnect'];

export function isSlowPolicy(value: unknown): value is SlowPolicy {
  return SLOW_POLICIES.includes(value as SlowPolicy);
}

/**
 * Publish/subscribe (issue 20): every message to every subscriber of a topic.
 * Subscribers receive through a FrameReceiver.
 */
export interface FramePublisher {
  /** Resolves once the message is handed to every subscriber present (those that went away meanwhile excepted). */
  publish(message: Uint8Array, options?: CallOptions): Promise<void>;
  /** The subscribers it delivers to now; undefined where the medium keeps that to itself (NATS). */
  readonly subscribers: number | undefined;
  /** Delivers what is queued, then lets the subscribers go. Idempotent. */
  close(options?: CallOptions): Promise<void>;
  readonly closed: boolean;
}

/** A private address only this process receives on (a client's replies). */
export interface ReplyEndpoint {
  /** What peers send replies to. */
  readonly address: string;
  readonly receiver: FrameReceiver;
  /** Stops receiving and removes the endpoint. Idempotent. */
  close(): Promise<void>;
}

export interface ListenOptions {
  /** Largest frame accepted (bigger ones are dropped and reported). */
  maxMessageSize?: number;
  onDrop?: (info: import('../framing/index.js').DropInfo) => void;
}

export interface ConnectOptions extends CallOptions {
  timeout?: number;
  /** Wait for a receiver to appear (and to come back after it left), instead of failing. */
  wait?: boolean;
}

/**
 * What request/reply over frames (rpc/frame-server.ts, rpc/frame-client.ts) needs
 * from a medium: well-known addresses to listen on and connect to, private reply
 * addresses, and a check that an address a peer named is one this transport may
 * write to. FifoTransport (drivers/fifo/reply-transport.ts) implements it; NATS
 * does not need it: its driver uses NATS's own request/reply (drivers/nats).
 */
export interface Transport {
  listen(address: string, options?: ListenOptions): Promise<FrameReceiver>;
  connect(address: string, options?: ConnectOptions): Promise<FrameSender>;
  createReplyEndpoint(): Promise<ReplyEndpoint>;
  /**
   * A sender to a reply address named by a peer. Refuses (ERR_NPIPE_UNSAFE) an
   * address that is not a reply endpoint this transport may write to; never waits
   * for a receiver (ERR_NPIPE_NO_READER at once when there is none).
   */
  openReply(address: string): Promise<FrameSender>;
  /**
   * Checks now, without waiting or opening anything, what openReply will check
   * (FIFO: the path, its folder, the FIFO's type and owner), so that a server
   * refuses a request before queueing it. Returns who owns the address (FIFO: a
   * uid), for sharing a server fairly. Same errors as openReply.
   */
  checkReplyAddress?(address: string): number;
  /**
   * Whether the server that took a client's requests on `address` is still there,
   * checked now without waiting: a client with requests in flight asks every
   * SERVER_CHECK_MS (rpc/limits.ts) and fails them with ERR_NPIPE_SERVER_GONE when
   * the answer is false. `serverPid` is the process id in the server's last reply
   * (0: no reply yet); a medium whose peers share this host may check it (FIFO: a
   * new server on the same path is not the one that took the requests). A
   * transport without this check is not polled: its own signals (a send that
   * fails, the request's timeout) fail the requests instead.
   */
  isServerAlive?(address: string, serverPid: number): boolean;
  /**
   * For a medium whose client holds a connection to its server (Windows pipes):
   * `listener` is called as soon as that connection is lost, before the client
   * connects again (waitForServer), so the requests it carried fail with
   * ERR_NPIPE_SERVER_GONE at once. Returns what removes the listener.
   */
  onServerGone?(listener: () => void): () => void;
  /**
   * The server's side of the same: `listener` is called with a client's reply
   * address as soon as that client's connection is gone, so the server stops its
   * handlers and forgets it at once (and the client may connect again under the
   * same address). Returns what removes the listener.
   */
  onClientGone?(listener: (address: string) => void): () => void;
}

/**
 * connect(): a request/reply client over any Transport. Requests carry an id and
 * the client's private reply address; replies are matched by id, so many requests
 * may be in flight at once.
 */
import {
  ClosedError,
  FrameTooLargeError,
  NpipeError,
  RemoteError,
  ServerGoneError,
  TimeoutError,
} from '../errors.js';
import { resolveCodec, type Codec } from '../codec.js';
import { compact } from '../framing/index.js';
import { DEFAULT_RPC_MAX_MESSAGE, SERVER_CHECK_MS } from './limits.js';
import type { FrameSender, ReplyEndpoint, Transport } from '../transport/types.js';
import { checkTimeout } from '../util/abort.js';
import { checkBusyPoll, keepPolling } from '../util/busy-poll.js';
import { Client, type ConnectOptions, type RequestOptions } from './types.js';
import { awaitReply, type Settle } from './pending.js';
import { CANCEL, ERROR, LIMITED_REQUEST, REPLY, SIZE, SIZE_THRESHOLD, decodeError, decodeRpc, encodeRequest } from './protocol.js';

/** A send without options, shared by every request that has no signal. */
const NO_OPTIONS = Object.freeze({});

interface Pending extends Settle<unknown> {
  /** In the server's pipe (not still waiting in our sender for a server to appear). */
  sent: boolean;
}

/**
 * A request/reply client over any frame Transport (request/reply protocol in
 * docs/RPC.md); connect() to a FIFO path makes one over FifoTransport.
 */
export class FrameClient<Req = string, Res = Req> extends Client<Req, Res> {
  readonly #path: string;
  readonly #transport: Transport;
  readonly #sender: FrameSender;
  readonly #endpoint: ReplyEndpoint;
  /** The reply address as every request carries it (UTF-8), encoded once. */
  readonly #address: Buffer;
  readonly #codec: Codec<Req & Res>;
  readonly #timeout: number | undefined;
  readonly #busyPoll: number;
  /** Largest request or reply frame, in bytes: the server is told it with each request. */
  readonly #limit: number;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** The process id in the server's last reply (0: none yet), for the transport's liveness check. */
  #serverPid = 0;
  #closed = false;
  /** The reply endpoint stopped without close(): every request fails with this. */
  #broken: Error | undefined;
  #monitor: NodeJS.Timeout | undefined;
  /** Stops listening for the transport's word that the server's connection is lost. */
  readonly #unwatch: (() => void) | undefined;

  /** @internal */
  constructor(path: string, transport: Transport, sender: FrameSender, endpoint: ReplyEndpoint, options: ConnectOptions<Req, Res>) {
    super();
    this.#path = path;
    this.#transport = transport;
    this.#sender = sender;
    this.#endpoint = endpoint;
    this.#address = Buffer.from(endpoint.address, 'utf8');
    this.#codec = resolveCodec(options.codec, 'text');
    this.#timeout = checkTimeout(options.timeout);
    this.#busyPoll = checkBusyPoll(options.busyPoll);
    this.#limit = options.maxMessageSize ?? DEFAULT_RPC_MAX_MESSAGE;
    this.#unwatch = transport.onServerGone?.(() => this.#failSent(new ServerGoneError(`the server on ${this.#path} went away before answering`)));
    void this.#readReplies();
  }

  /** The private address replies come to. */
  get replyAddress(): string {
    return this.#endpoint.address;
  }

  async #readReplies(): Promise<void> {
    let broken: unknown;
    for (;;) {
      let frame: Buffer | undefined;
      try {
        const receiver = this.#endpoint.receiver;
        // Waits without a frame in the promise where the transport can (see FrameReceiver.ready).
        if (receiver.ready && receiver.tryReceive && (await receiver.ready())) frame = receiver.tryReceive();
        frame ??= await receiver.receive();
      } catch (err) {
        // Bytes on our own reply endpoint that are not frames: its reader has stopped, and no reply can come.
        broken = err;
        frame = undefined;
      }
      if (frame === undefined) {
        if (!this.#closed) {
          // Not closed by us: fail what waits, and everything after, rather than let it wait for ever.
          const why = broken instanceof Error ? `: ${broken.message}` : '';
          this.#broken = new ClosedError(`this client can no longer read replies (its reply endpoint ${this.#endpoint.address} stopped${why}); connect again`);
          this.#failAll(this.#broken);
        }
        return;
      }
      let message;
      try {
        message = decodeRpc(frame);
      } catch {
        continue;
      }
      if (message.type !== REPLY && message.type !== ERROR) continue;
      this.#serverPid = message.serverPid;
      const pending = this.#pending.get(message.id);
      if (!pending) continue; // late reply to a request that timed out or was cancelled
      this.#pending.delete(message.id);
      keepPolling(this.#busyPoll); // the caller's next request is likely to follow at once
      if (message.type === REPLY) {
        let value: unknown;
        try {
          // The caller may keep the reply: its own bytes, not the read they came in (a copy only where that matters).
          value = this.#codec.decode(compact(message.payload));
        } catch (err) {
          pending.reject(err);
          continue;
        }
        pending.resolve(value);
      } else {
        const error = decodeError(message.payload);
        if (error.code === 'ERR_NPIPE_FRAME_TOO_LARGE' && error.size !== undefined && error.limit !== undefined) {
          // Our request over the server's limit, or its reply over ours: the same error as a local check gives.
          pending.reject(new FrameTooLargeError(error.size, error.limit, error.what));
        } else pending.reject(new RemoteError(error.code, error.message));
      }
    }
  }

  /**
   * While requests are in flight, fail them as soon as the transport says their
   * server is gone. A transport that cannot tell (no isServerAlive) is not polled:
   * its own signals (a send that fails, the request's timeout) do instead.
   */
  #watchServer(): void {
    if (this.#monitor || this.#closed || !this.#transport.isServerAlive) return;
    this.#monitor = setInterval(() => {
      if (this.#pending.size === 0) {
        clearInterval(this.#monitor);
        this.#monitor = undefined;
        return;
      }
      if (this.#transport.isServerAlive?.(this.#path, this.#serverPid) === false) {
        this.#failSent(new ServerGoneError(`the server on ${this.#path} went away before answering`));
      }
    }, SERVER_CHECK_MS);
    this.#monitor.unref();
  }

  /**
   * Fails the requests that reached the server's pipe. Those still waiting in the
   * sender for a server (waitForServer) stay: the next server gets them.
   */
  #failSent(err: Error): void {
    for (const [id, p] of this.#pending) {
      if (!p.sent) continue;
      this.#pending.delete(id);
      p.reject(err);
    }
  }

  #failAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }

  /**
   * Sends `payload` and resolves with the server's reply.
   * @throws RemoteError (ERR_NPIPE_REMOTE, with the handler's `remoteCode`), ERR_NPIPE_TIMEOUT,
   *   ERR_NPIPE_SERVER_GONE, ERR_NPIPE_CLOSED, ERR_NPIPE_FRAME_TOO_LARGE, `signal.reason`.
   *   A timeout or abort also cancels the request on the server (its handler's signal aborts).
   * @example
   * const client = await connect('/tmp/calc');
   * console.log(await client.request('6*7', { timeout: 1000 }));
   */
  request(payload: Req, options: RequestOptions = {}): Promise<Res> {
    // Not an async function: the promise returned is the one the reply settles, with
    // the reply already decoded (one microtask hop fewer per request, issue 18 #3).
    try {
      return this.#request(payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #request(payload: Req, options: RequestOptions): Promise<Res> {
    if (this.#closed) throw new ClosedError('this client is closed');
    if (this.#broken) throw this.#broken;
    const timeout = checkTimeout(options.timeout ?? this.#timeout);
    const { signal } = options;
    if (signal?.aborted) throw signal.reason;
    const id = this.#nextId;
    this.#nextId = this.#nextId === 0xffffffff ? 1 : this.#nextId + 1;
    const frame = encodeRequest(LIMITED_REQUEST, id, this.#address, this.#codec.encode(payload as Req & Res), this.#limit);
    if (frame.length > this.#limit) throw new FrameTooLargeError(frame.length, this.#limit, 'request');
    // A server whose limit this passes drops it unread; the SIZE before it gets us its ERR_NPIPE_FRAME_TOO_LARGE.
    const size = frame.length > SIZE_THRESHOLD ? encodeRequest(SIZE, id, this.#address, undefined, frame.length) : undefined;
    if (timeout === undefined && !signal) {
      // Nothing but the reply (or a failure) can settle it: no timer, listener or cancel to arrange
      // (issue 18 #3: what a round trip costs the client).
      return new Promise<Res>((resolve, reject) => this.#send(id, frame, size, undefined, { resolve, reject, sent: false }));
    }
    // Created here so that the stack points at the caller (nats.js does the same).
    const timeoutError = timeout === undefined ? undefined : new TimeoutError(`no reply from the server on ${this.#path} (timeout ${timeout} ms)`);
    return awaitReply<Res>({
      timeout,
      timeoutError,
      signal,
      forget: () => this.#pending.delete(id),
      cancel: () => void this.#sender.send(encodeRequest(CANCEL, id, this.#address)).catch(() => {}),
      start: (settle) => {
        const entry = settle as unknown as Pending;
        entry.sent = false;
        this.#send(id, frame, size, signal, entry);
      },
    });
  }

  /** Puts request `id` where its reply finds it, and sends it (after its SIZE, if it has one). */
  #send(id: number, frame: Buffer, size: Buffer | undefined, signal: AbortSignal | undefined, entry: Pending): void {
    this.#pending.set(id, entry);
    this.#watchServer();
    keepPolling(this.#busyPoll);
    if (size) void this.#sender.send(size).catch(() => {}); // its failure is the request's too, reported below
    this.#sender.send(frame, signal ? { signal } : NO_OPTIONS).then(
      () => {
        entry.sent = true;
      },
      (err: unknown) => {
        if (!this.#pending.delete(id)) return;
        entry.reject(
          err instanceof NpipeError && err.code === 'ERR_NPIPE_NO_READER'
            ? new ServerGoneError(`the server on ${this.#path} went away; start it again, or connect with waitForServer`, { cause: err })
            : err,
        );
      },
    );
  }

  /** Fails requests in flight (ERR_NPIPE_CLOSED), closes the connection and removes the reply endpoint. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#monitor);
    this.#unwatch?.();
    this.#failAll(new ClosedError('the client was closed'));
    await this.#sender.close({ signal: AbortSignal.abort() }).catch(() => {});
    await this.#endpoint.close();
  }
}

/**
 * Connects to the server on `path` over `transport`: creates this client's
 * private reply endpoint and opens the server's request endpoint. The arguments
 * are checked by the caller (api.ts connect()).
 */
export async function connectFrames<Req, Res>(transport: Transport, path: string, options: ConnectOptions<Req, Res>): Promise<Client<Req, Res>> {
  const endpoint = await transport.createReplyEndpoint();
  try {
    const sender = await transport.connect(path, {
      wait: options.waitForServer === true,
      ...(options.signal ? { signal: options.signal } : {}),
      // waitForServer: `timeout` bounds the wait for a server too (ERR_NPIPE_TIMEOUT), not only each request.
      ...(options.timeout === undefined ? {} : { timeout: checkTimeout(options.timeout) }),
    });
    return new FrameClient(path, transport, sender, endpoint, options);
  } catch (err) {
    await endpoint.close();
    throw err;
  }
}

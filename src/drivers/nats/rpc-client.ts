/**
 * The client half of request/reply over NATS: each request is published with a
 * reply subject under the client's own inbox, and the reply is the one message
 * that arrives there. An npipe client can call any NATS responder; an npipe server
 * also tells it which server took a request (rpc-headers.ts), so that it can
 * cancel the request there and notice the server going away.
 */
import { createInbox, Empty, headers, NoRespondersError, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { resolveCodec, type Codec } from '../../codec.js';
import { ClosedError, FrameTooLargeError, RemoteError, ServerGoneError, TimeoutError, UnreachableError } from '../../errors.js';
import { checkTimeout } from '../../util/abort.js';
import { checkBusyPoll, keepPolling } from '../../util/busy-poll.js';
import { Client, type RequestOptions } from '../../rpc/types.js';
import { awaitReply, type Settle } from '../../rpc/pending.js';
import { DEFAULT_RPC_MAX_MESSAGE, SERVER_CHECK_MS } from '../../rpc/limits.js';
import type { ConnectOptions } from '../../rpc/types.js';
import { asBuffer } from './bytes.js';
import { connectNats, maxPayload } from './connection.js';
import { lostAtStart } from './failures.js';
import { CONTROL_SUBJECT, H_CANCEL, H_CLIENT, H_ERROR_CODE, H_SERVER, H_SERVICE_ERROR, H_SERVICE_ERROR_CODE, H_STATUS } from './rpc-headers.js';
import { withServer } from './servers.js';
import { parseRequestReplyUrl, type NatsAddress } from './url.js';
import type { MediumOptions } from '../types.js';

interface Pending extends Settle<Msg> {
  /** The server's subject once it acknowledged taking the request. */
  server: string | undefined;
  /** Publishes the request (again, while waiting for a server). */
  publish(): void;
  waitForServer: boolean;
  retryDelay: number;
  retry: NodeJS.Timeout | undefined;
}

export class NatsClient<Req = string, Res = Req> extends Client<Req, Res> {
  readonly #nc: NatsConnection;
  readonly #address: NatsAddress;
  readonly #url: string;
  readonly #codec: Codec<Req & Res>;
  readonly #timeout: number | undefined;
  readonly #waitForServer: boolean;
  readonly #limit: number;
  readonly #busyPoll: number;
  readonly #inbox = createInbox();
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  #nextId = 1;
  #closed = false;
  #monitor: NodeJS.Timeout | undefined;

  /** @internal */
  constructor(nc: NatsConnection, url: string, address: NatsAddress, options: ConnectOptions<Req, Res>) {
    super();
    this.#nc = nc;
    this.#url = url;
    this.#address = address;
    this.#codec = resolveCodec(options.codec, 'text');
    this.#timeout = checkTimeout(options.timeout);
    this.#waitForServer = options.waitForServer === true;
    this.#limit = Math.min(options.maxMessageSize ?? DEFAULT_RPC_MAX_MESSAGE, maxPayload(nc));
    this.#busyPoll = checkBusyPoll(options.busyPoll);
    this.#sub = nc.subscribe(`${this.#inbox}.*`, { callback: (err, msg) => {
      if (!err) this.#onReply(msg);
    } });
    void this.#watchConnection();
  }

  /**
   * A reply published while we are disconnected is lost (core NATS), so requests in
   * flight when the connection drops fail now rather than wait for their timeout.
   * Requests made while reconnecting wait in the client's buffer and go out on reconnection.
   */
  async #watchConnection(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type !== 'disconnect') continue;
      const err = new UnreachableError(`lost the connection to the NATS server at ${this.#address.server}; the outcome of requests in flight is unknown`);
      for (const [reply, p] of this.#pending) {
        this.#pending.delete(reply);
        p.reject(err);
      }
    }
  }

  get replyAddress(): string {
    return this.#inbox;
  }

  #onReply(msg: Msg): void {
    const pending = this.#pending.get(msg.subject);
    const h = msg.headers;
    if (h?.get(H_STATUS) === 'accepted') {
      const server = h.get(H_SERVER);
      if (!CONTROL_SUBJECT.test(server)) return; // not an npipe server's: no cancel or liveness check goes there
      if (!pending) this.#cancelOn(server, msg.subject); // we gave up before it said it had it
      else {
        pending.server = server;
        this.#watchServers();
      }
      return;
    }
    if (!pending) return; // late reply to a request that timed out or was cancelled
    if (h?.hasError && h.code === 503) {
      // No responders: nobody subscribes to the subject right now.
      if (pending.waitForServer) {
        pending.retry = setTimeout(() => pending.publish(), pending.retryDelay);
        pending.retryDelay = Math.min(pending.retryDelay * 2, 1000);
        return;
      }
      this.#pending.delete(msg.subject);
      pending.reject(new ServerGoneError(`no server is listening on ${this.#url}; start it (npipe serve ${this.#url} ...), or wait for it (waitForServer)`));
      return;
    }
    this.#pending.delete(msg.subject);
    keepPolling(this.#busyPoll); // the caller's next request is likely to follow at once
    if (msg.data.byteLength > this.#limit) {
      // As over FIFOs: a reply larger than this client takes is an error, not a surprise for the caller's memory.
      pending.reject(new FrameTooLargeError(msg.data.byteLength, this.#limit, `the reply from ${this.#url}`));
      return;
    }
    const code = h?.get(H_ERROR_CODE) || (h?.get(H_SERVICE_ERROR_CODE) ? 'ERR_NPIPE_REMOTE' : '');
    if (code) pending.reject(new RemoteError(code, msg.data.byteLength > 0 ? msg.string() : h!.get(H_SERVICE_ERROR)));
    else pending.resolve(msg);
  }

  #cancelOn(server: string, reply: string): void {
    if (!server || this.#nc.isClosed()) return;
    const h = headers();
    h.set(H_CANCEL, reply);
    try {
      this.#nc.publish(server, Empty, { headers: h });
    } catch {
      // connection closing: the server's handler runs to its end; nobody waits for it
    }
  }

  /** While accepted requests are in flight, fail them as soon as their server is seen to be gone. */
  #watchServers(): void {
    if (this.#monitor || this.#closed) return;
    const check = async () => {
      const servers = new Set<string>();
      for (const p of this.#pending.values()) if (p.server) servers.add(p.server);
      if (servers.size === 0) {
        this.#monitor = undefined;
        return;
      }
      await Promise.all(
        [...servers].map((server) =>
          this.#nc.request(server, Empty, { timeout: 2000 }).then(
            () => {},
            (err: unknown) => {
              if (!(err instanceof NoRespondersError) && !((err as Error).cause instanceof NoRespondersError)) return; // slow, or we are reconnecting: not proof
              for (const [reply, p] of this.#pending) {
                if (p.server !== server) continue;
                this.#pending.delete(reply);
                p.reject(new ServerGoneError(`the server on ${this.#url} went away before answering`));
              }
            },
          ),
        ),
      );
      if (!this.#closed) this.#monitor = setTimeout(() => void check(), SERVER_CHECK_MS).unref();
    };
    this.#monitor = setTimeout(() => void check(), SERVER_CHECK_MS).unref();
  }

  async request(payload: Req, options: RequestOptions = {}): Promise<Res> {
    if (this.#closed) throw new ClosedError('this client is closed');
    const timeout = checkTimeout(options.timeout ?? this.#timeout);
    const { signal } = options;
    if (signal?.aborted) throw signal.reason;
    const data = this.#codec.encode(payload as Req & Res);
    if (data.byteLength > this.#limit) throw new FrameTooLargeError(data.byteLength, this.#limit, 'request');
    const reply = `${this.#inbox}.${this.#nextId++}`;
    const timeoutError = timeout === undefined ? undefined : new TimeoutError(`no reply from the server on ${this.#url} (timeout ${timeout} ms)`);
    const h = headers();
    h.set(H_CLIENT, '1');
    let entry: Pending | undefined;
    const msg = await awaitReply<Msg>({
      timeout,
      timeoutError,
      signal,
      forget: () => this.#pending.delete(reply),
      cancel: () => {
        if (entry?.server) this.#cancelOn(entry.server, reply);
      },
      cleanup: () => clearTimeout(entry?.retry),
      start: (settle) => {
        const pending: Pending = {
          ...settle,
          server: undefined,
          waitForServer: this.#waitForServer,
          retryDelay: 50,
          retry: undefined,
          publish: () => {
            try {
              this.#nc.publish(this.#address.subject, data, { reply, headers: h });
            } catch (err) {
              if (this.#pending.delete(reply)) pending.reject(new UnreachableError(`the connection to the NATS server at ${this.#address.server} is closed`, { cause: err }));
            }
          },
        };
        entry = pending;
        this.#pending.set(reply, pending);
        keepPolling(this.#busyPoll);
        pending.publish();
      },
    });
    return this.#codec.decode(asBuffer(msg.data)) as Res;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#monitor);
    const err = new ClosedError('the client was closed');
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
    this.#sub.unsubscribe();
    await this.#nc.close();
  }
}

/**
 * A client of the server on `url` (`nats://host:port/subject`).
 * @throws ERR_NPIPE_UNREACHABLE (no NATS server; with waitForServer it waits for one), ERR_NPIPE_INVALID_ARG.
 */
export async function connectNatsClient<Req, Res>(url: string, options: ConnectOptions<Req, Res> & MediumOptions): Promise<NatsClient<Req, Res>> {
  const address = withServer(url, parseRequestReplyUrl(url), options.nats);
  const nc = await connectNats(address, {
    wait: options.waitForServer === true,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.nats === undefined ? {} : { nats: options.nats }),
  });
  const client = new NatsClient<Req, Res>(nc, url, address, options);
  await nc.flush().catch((err: unknown) => lostAtStart(nc, address, err)); // the inbox subscription is on the server before the first request
  return client;
}


/**
 * Request/reply over NATS, with NATS's own request/reply: a request is a message
 * on the subject with a reply subject (an inbox of the client's); the reply is
 * one message to that inbox. Servers share a queue group, so several servers on
 * one subject share the requests. Any NATS client can call an npipe server
 * (`nats request jobs hello`), and an npipe client can call any NATS responder.
 *
 * What npipe adds, in headers (docs/RPC.md, "Over NATS"):
 * - errors: `Nats-Service-Error` / `Nats-Service-Error-Code` (the NATS micro
 *   convention) and `Npipe-Error-Code` (the handler's code); the body is the message;
 * - a request with `Npipe-Client: 1` is told which server took it, when the reply
 *   is not ready at once: `Npipe-Status: accepted` and `Npipe-Server: <subject>`.
 *   The client sends cancellations there (`Npipe-Cancel: <reply subject>`), and
 *   checks that the server is still alive (a request to it with no responders
 *   means it is gone: ERR_NPIPE_SERVER_GONE).
 */
import { createInbox, Empty, headers, NoRespondersError, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { resolveCodec, type Codec } from '../../codec.js';
import {
  BusyError,
  ClosedError,
  FrameTooLargeError,
  InvalidArgumentError,
  RemoteError,
  ServerGoneError,
  TimeoutError,
  UnreachableError,
} from '../../errors.js';
import { connectNats as openConnection, maxPayload } from './connection.js';
import { parseNatsUrl, type NatsAddress } from './url.js';
import { checkTimeout } from '../../util/abort.js';
import { checkBusyPoll, keepPolling } from '../../util/busy-poll.js';
import { Client, Server, newServerStats, type ConnectOptions, type RequestOptions, type ServeOptions, type ServerEvent, type ServerStats } from '../../rpc/types.js';
import { Cancel, runHandler, type Handler } from '../../rpc/handler.js';
import { awaitReply, type Settle } from '../../rpc/pending.js';

export const H_CLIENT = 'Npipe-Client';
export const H_STATUS = 'Npipe-Status';
export const H_SERVER = 'Npipe-Server';
export const H_CANCEL = 'Npipe-Cancel';
export const H_ERROR_CODE = 'Npipe-Error-Code';
export const H_SERVICE_ERROR = 'Nats-Service-Error';
export const H_SERVICE_ERROR_CODE = 'Nats-Service-Error-Code';

/**
 * What an npipe server's control subject looks like (createInbox('_NPIPE')). The
 * client sends cancellations and liveness requests there, so a responder that
 * names anything else (`$JS.API.STREAM.DELETE.X`) is not believed: the client
 * would be publishing, with its own permissions, wherever a peer told it to.
 */
const CONTROL_SUBJECT = /^_NPIPE\.[A-Za-z0-9]{1,64}$/;

/** A request not answered within this long is acknowledged with the server's address (cancel, liveness). */
const ACCEPT_AFTER_MS = 20;
/** How often a client with accepted requests in flight checks their servers are alive. */
const SERVER_CHECK_MS = 250;
const DEFAULT_MAX_MESSAGE = 1024 * 1024;

/** A header value is one line: NATS headers cannot carry CR or LF. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 1024);
}

function bytesOf(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * What a waiting request counts against maxWaitingBytes beside its payload: its
 * reply subject, its timer and bookkeeping. So that requests with empty payloads
 * are bounded too (at the default 4 MiB, 8192 of them).
 */
export const WAITING_REQUEST_OVERHEAD = 512;

interface Job {
  /** The request's payload; a copy once it waits, so that it does not hold the connection's read buffer. */
  payload: Buffer;
  /** What it counts against maxWaitingBytes while it waits. */
  cost: number;
  reply: string;
  cancel: Cancel;
  accept: NodeJS.Timeout | undefined;
  started: boolean;
}

export class NatsServer extends Server {
  readonly stats: ServerStats = newServerStats();
  readonly done: Promise<void>;
  readonly #nc: NatsConnection;
  readonly #address: NatsAddress;
  readonly #handler: Handler<unknown, unknown>;
  readonly #codec: Codec<unknown>;
  readonly #options: ServeOptions<unknown, unknown>;
  readonly #limit: number;
  readonly #busyPoll: number;
  readonly #requests: Subscription;
  readonly #control: Subscription;
  /** This server's own subject: cancellations and liveness checks. */
  readonly #controlSubject = createInbox('_NPIPE');
  /** Requests taken and not answered, by reply subject. */
  readonly #jobs = new Map<string, Job>();
  readonly #waiting: Job[] = [];
  #waitingBytes = 0;
  #running = 0;
  #closing: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  /** @internal */
  constructor(nc: NatsConnection, address: NatsAddress, handler: Handler<unknown, unknown>, options: ServeOptions<unknown, unknown>) {
    super();
    this.#nc = nc;
    this.#address = address;
    this.#handler = handler;
    this.#options = options;
    this.#codec = resolveCodec(options.codec, 'text');
    this.#limit = Math.min(options.maxMessageSize ?? DEFAULT_MAX_MESSAGE, maxPayload(nc));
    this.#busyPoll = checkBusyPoll(options.busyPoll);
    this.#requests = nc.subscribe(address.subject, { queue: address.group, callback: (err, msg) => {
      if (!err) this.#take(msg);
    } });
    this.#control = nc.subscribe(this.#controlSubject, { callback: (err, msg) => {
      if (!err) this.#onControl(msg);
    } });
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
    this.done = nc.closed().then(() => {});
  }

  get clients(): number {
    const clients = new Set<string>();
    for (const reply of this.#jobs.keys()) clients.add(reply.slice(0, reply.lastIndexOf('.')));
    return clients.size;
  }

  #event(event: ServerEvent): void {
    this.#options.onEvent?.(event);
  }

  #take(msg: Msg): void {
    keepPolling(this.#busyPoll);
    if (!msg.reply) {
      this.stats.refused++;
      this.#event({ kind: 'bad-message', reason: `a message on ${this.#address.subject} without a reply subject (publish it as a request)` });
      return;
    }
    if (msg.reply.startsWith('$')) {
      // $JS.API..., $SYS...: the reply would be a system request made with this server's permissions.
      this.stats.refused++;
      this.#event({ kind: 'bad-message', reason: `a request on ${this.#address.subject} whose reply subject is a system subject ($...): not answered` });
      return;
    }
    this.stats.requests++;
    if (msg.data.byteLength > this.#limit) {
      this.stats.refused++;
      this.#event({ kind: 'refused', client: msg.reply, reason: `request of ${msg.data.byteLength} bytes over the limit of ${this.#limit}` });
      this.#respondError(msg.reply, new FrameTooLargeError(msg.data.byteLength, this.#limit, 'request'));
      return;
    }
    const maxWaiting = this.#options.maxWaitingBytes ?? 4 * 1024 * 1024;
    const concurrency = this.#options.concurrency ?? 64;
    const cost = msg.data.byteLength + WAITING_REQUEST_OVERHEAD;
    if (this.#running >= concurrency && this.#waitingBytes + cost > maxWaiting) {
      this.stats.refused++;
      this.#event({ kind: 'refused', client: msg.reply, reason: 'too many requests waiting' });
      this.#respondError(
        msg.reply,
        new BusyError(`the server has ${this.#waiting.length} requests (${this.#waitingBytes} bytes with overhead) waiting (maxWaitingBytes); try again later`),
      );
      return;
    }
    const waits = this.#running >= concurrency;
    const job: Job = { payload: waits ? Buffer.from(msg.data) : bytesOf(msg.data), cost, reply: msg.reply, cancel: new Cancel(), accept: undefined, started: false };
    this.#jobs.set(job.reply, job);
    if (msg.headers?.get(H_CLIENT)) {
      job.accept = setTimeout(() => {
        job.accept = undefined;
        this.#publish(job.reply, Empty, this.#acceptHeaders());
      }, ACCEPT_AFTER_MS);
    }
    if (!waits) void this.#run(job);
    else {
      this.#waiting.push(job);
      this.#waitingBytes += cost;
    }
  }

  #acceptHeaders(): MsgHdrs {
    const h = headers();
    h.set(H_STATUS, 'accepted');
    h.set(H_SERVER, this.#controlSubject);
    return h;
  }

  async #run(job: Job): Promise<void> {
    job.started = true;
    this.#running++;
    const outcome = await runHandler(this.#handler, this.#codec, job.payload, job.cancel, job.reply);
    this.#running--;
    this.#finish(job);
    if (!job.cancel.aborted || this.#closing) {
      if (outcome.ok) {
        if (outcome.payload.byteLength > this.#limit) {
          this.stats.errors++;
          this.#respondError(job.reply, new FrameTooLargeError(outcome.payload.byteLength, this.#limit, 'reply'));
        } else {
          this.stats.replies++;
          this.#publish(job.reply, outcome.payload);
        }
      } else {
        this.stats.errors++;
        this.#publishError(job.reply, outcome.code, outcome.message);
      }
    }
    this.#next();
  }

  #finish(job: Job): void {
    clearTimeout(job.accept);
    this.#jobs.delete(job.reply);
  }

  #next(): void {
    const concurrency = this.#options.concurrency ?? 64;
    while (this.#running < concurrency && this.#waiting.length > 0) {
      const job = this.#waiting.shift()!;
      this.#waitingBytes -= job.cost;
      if (job.cancel.aborted) continue;
      void this.#run(job);
    }
    if (this.#running === 0) this.#idle?.();
  }

  #onControl(msg: Msg): void {
    const reply = msg.headers?.get(H_CANCEL);
    if (!reply) {
      // A liveness check: answering is the answer.
      if (msg.reply) msg.respond(Empty);
      return;
    }
    const job = this.#jobs.get(reply);
    if (!job) return;
    this.stats.cancelled++;
    job.cancel.abort(new ClosedError('the client cancelled the request'));
    if (!job.started) {
      this.#finish(job);
      const i = this.#waiting.indexOf(job);
      if (i >= 0) {
        this.#waiting.splice(i, 1);
        this.#waitingBytes -= job.cost;
      }
    }
  }

  #publish(subject: string, data: Uint8Array, h?: MsgHdrs): void {
    keepPolling(this.#busyPoll); // nats.js writes on a later turn; the client's next request is likely to follow
    try {
      this.#nc.publish(subject, data, h ? { headers: h } : undefined);
    } catch (err) {
      this.stats.repliesDropped++;
      this.#event({ kind: 'reply-dropped', client: subject, reason: (err as Error).message });
    }
  }

  #respondError(reply: string, err: { code: string; message: string }): void {
    this.#publishError(reply, err.code, err.message);
  }

  #publishError(reply: string, code: string, message: string): void {
    const h = headers();
    h.set(H_SERVICE_ERROR, oneLine(message) || code);
    h.set(H_SERVICE_ERROR_CODE, '500');
    h.set(H_ERROR_CODE, oneLine(code));
    this.#publish(reply, Buffer.from(message), h);
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      // No new requests; those already delivered to us are still taken (drain).
      await this.#requests.drain().catch(() => {});
      const closing = new ClosedError('the server is closing');
      for (const job of this.#waiting.splice(0)) {
        this.#finish(job);
        this.#respondError(job.reply, closing);
      }
      this.#waitingBytes = 0;
      for (const job of this.#jobs.values()) job.cancel.abort(closing);
      if (this.#running > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      this.#control.unsubscribe();
      await this.#nc.drain().catch(() => this.#nc.close());
      await this.done;
    })());
  }
}

/**
 * Serves requests arriving on a NATS subject (`nats://host:port/subject`); the
 * same handler contract as over FIFOs.
 * @throws ERR_NPIPE_UNREACHABLE (no NATS server), ERR_NPIPE_INVALID_ARG (bad URL).
 */
export async function serveNats(url: string, handler: Handler<unknown, unknown>, options: ServeOptions<unknown, unknown>): Promise<NatsServer> {
  const address = parseNatsUrl(url);
  if (address.delivery !== 'core') {
    throw new InvalidArgumentError(`${url}: request/reply uses core NATS (its own request/reply); delivery=${address.delivery} applies to send/listen`);
  }
  const nc = await openConnection(address, options.signal ? { signal: options.signal } : {});
  const server = new NatsServer(nc, address, handler, options);
  // The subscription is on the server once this returns: a client's first request finds us.
  await nc.flush().catch((err: unknown) => lostAtStart(nc, address, err));
  return server;
}

/** The connection failed between connecting and the first round trip. */
async function lostAtStart(nc: NatsConnection, address: NatsAddress, err: unknown): Promise<never> {
  await nc.close().catch(() => {});
  throw new UnreachableError(`lost the connection to the NATS server at ${address.server} while starting (${(err as Error)?.message ?? String(err)})`, { cause: err });
}

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
    this.#limit = Math.min(options.maxMessageSize ?? DEFAULT_MAX_MESSAGE, maxPayload(nc));
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
    return this.#codec.decode(bytesOf(msg.data)) as Res;
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
export async function connectNats<Req, Res>(url: string, options: ConnectOptions<Req, Res>): Promise<NatsClient<Req, Res>> {
  const address = parseNatsUrl(url);
  if (address.delivery !== 'core') {
    throw new InvalidArgumentError(`${url}: request/reply uses core NATS (its own request/reply); delivery=${address.delivery} applies to send/listen`);
  }
  const nc = await openConnection(address, { wait: options.waitForServer === true, ...(options.signal ? { signal: options.signal } : {}) });
  const client = new NatsClient<Req, Res>(nc, url, address, options);
  await nc.flush().catch((err: unknown) => lostAtStart(nc, address, err)); // the inbox subscription is on the server before the first request
  return client;
}


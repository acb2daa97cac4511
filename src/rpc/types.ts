/**
 * What request/reply looks like to users, whatever the medium: `serve()` takes
 * ServeOptions and gives a Server, `connect()` takes ConnectOptions and gives a
 * Client. Each medium implements them: over a frame Transport (FIFOs) in
 * frame-server.ts and frame-client.ts, over NATS in drivers/nats. An option that
 * means something for one medium only says so in its doc; the others ignore it.
 * Defaults are in limits.ts.
 */
import type { Codec, CodecName } from '../codec.js';

/** Something the server refused or dropped, for logs. */
export interface ServerEvent {
  kind: 'refused' | 'reply-dropped' | 'bad-message' | 'frame-dropped';
  /** The reply address a peer named: peer data, escape it before printing. */
  client?: string;
  reason: string;
  /** The error's code, when an error is behind the event (e.g. ERR_NPIPE_UNSAFE for a refused address). */
  code?: string;
}

/**
 * A server's counters. `replies` and `errors` count answers made (a handler's
 * reply; an error reply, the handler's or the server's own); `repliesDropped`
 * counts answers and waiting requests that never reached their client (it was
 * gone, or not reading). So an answer made for a client that then went away
 * counts in both, and `replies + errors + repliesDropped` can exceed `requests`.
 */
export interface ServerStats {
  /** Requests taken, SIZE announcements and CANCELs not included. */
  requests: number;
  replies: number;
  errors: number;
  /** Requests cancelled by their client (a CANCEL, or a newer request under the same id) before their answer. */
  cancelled: number;
  repliesDropped: number;
  /** Requests whose reply address failed the transport's check: never handled. */
  refused: number;
}

/** A server's counters, all at zero. */
export function newServerStats(): ServerStats {
  return { requests: 0, replies: 0, errors: 0, cancelled: 0, repliesDropped: 0, refused: 0 };
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** ms; overrides the client's default. */
  timeout?: number;
}

export abstract class Server {
  abstract readonly stats: ServerStats;
  /** Settles when the server has stopped (after close(), or its signal). */
  abstract readonly done: Promise<void>;
  /** Clients seen recently (FIFO: with a reply FIFO open; NATS: with requests in progress). */
  abstract readonly clients: number;
  /**
   * Stops taking requests, aborts running handlers (their signals), sends the
   * replies of handlers that still finish, and releases the endpoint. Idempotent.
   */
  abstract close(): Promise<void>;
}

export abstract class Client<Req = string, Res = Req> {
  /** The private address replies come to. */
  abstract readonly replyAddress: string;
  /**
   * Sends `payload` and resolves with the server's reply.
   * @throws RemoteError (ERR_NPIPE_REMOTE, with the handler's `remoteCode`), ERR_NPIPE_TIMEOUT,
   *   ERR_NPIPE_SERVER_GONE, ERR_NPIPE_CLOSED, ERR_NPIPE_FRAME_TOO_LARGE, `signal.reason`.
   *   A timeout or abort also cancels the request on the server (its handler's signal aborts).
   */
  abstract request(payload: Req, options?: RequestOptions): Promise<Res>;
  /** Fails requests in flight (ERR_NPIPE_CLOSED) and releases the connection. Idempotent. */
  abstract close(): Promise<void>;
}

export interface ServeOptions<Req, Res> {
  /** Closes the server when it aborts. */
  signal?: AbortSignal;
  /** Handlers running at once (default 64); more requests wait their turn. */
  concurrency?: number;
  /** Payload codec for requests and replies (default text). */
  codec?: CodecName | Codec<Req & Res>;
  /**
   * Largest request or reply in bytes (default 1 MiB; over NATS at most the NATS
   * server's max_payload). A larger request gets an ERR_NPIPE_FRAME_TOO_LARGE error
   * reply (read or not: see docs/RPC.md), never a handler; so does a reply larger
   * than this or than the client's own limit.
   */
  maxMessageSize?: number;
  /**
   * FIFO only (over NATS the NATS server buffers replies). Reply bytes queued for
   * one client, each reply counted with REPLY_COST (limits.ts: 512) bytes beyond
   * its frame, before the server stops starting handlers for it (default 4 MiB);
   * beyond it, error replies (ERR_NPIPE_BUSY) to that client are dropped and
   * counted. A client that reads none of its replies for `stuckAfter` ms is
   * dropped: its queued replies and waiting requests with it.
   */
  maxQueuedReplyBytes?: number;
  /** FIFO only. ms without a reply delivered to a client with replies queued, before it counts as stuck (default 10000). */
  stuckAfter?: number;
  /**
   * Requests waiting for a handler, per client over FIFOs (in all over NATS), in
   * bytes (default 4 MiB). Over FIFOs each waiting request costs its payload plus
   * REQUEST_COST (limits.ts: 512) bytes (its record, its address, its place in the
   * queue), so empty requests count too. Beyond, the request gets an
   * ERR_NPIPE_BUSY error reply and is never queued.
   */
  maxWaitingBytes?: number;
  /**
   * FIFO only. The same bound for all clients together (default 32 MiB, at most
   * 65536 empty requests): what bounds the server's memory however many reply
   * addresses its writers name. A request over it gets ERR_NPIPE_BUSY.
   */
  maxTotalWaitingBytes?: number;
  /**
   * FIFO only. Reply bytes queued for all clients together (default 32 MiB), each
   * reply counted with REPLY_COST bytes beyond its frame: what bounds the server's
   * memory when many clients (reply addresses) read none of their replies. At the
   * bound no handler starts (requests wait, then get ERR_NPIPE_BUSY), and the error
   * replies the server makes up are dropped and counted, except one for a client
   * with nothing queued. Replies of handlers already running may pass it by at
   * most `concurrency` replies.
   */
  maxTotalQueuedReplyBytes?: number;
  /**
   * Refused addresses, dropped replies and frames, for logs. Everything in an event
   * may come from a peer (`client` always does): escape it before printing.
   * At most 20 events of a kind per second; the rest are counted in one event.
   */
  onEvent?: (event: ServerEvent) => void;
  /**
   * Microseconds to keep polling for the next request instead of sleeping, after
   * each request taken and reply sent (default 0: off). Cuts the round trip where
   * waking an idle CPU is costly (virtual machines), at the price of that much CPU
   * time; see docs/TUNING.md. Like Linux's SO_BUSY_POLL.
   */
  busyPoll?: number;
  /**
   * A server for several users (docs/RPC.md). FIFO: accept a request FIFO that
   * group or others may write to. Windows pipe: let every local user connect
   * (default: only this user). NATS ignores it.
   */
  allowShared?: boolean;
}

export interface ConnectOptions<Req, Res> {
  /** Payload codec for requests and replies (default text). */
  codec?: CodecName | Codec<Req & Res>;
  /** Default timeout of each request, in ms (default: none); with waitForServer, also the longest connect() waits for a server. */
  timeout?: number;
  /**
   * When the server is not there (at connect, or it goes away): false (default)
   * fails with ERR_NPIPE_SERVER_GONE; true waits for a server to (re)appear. Either
   * way, requests the departed server had taken fail with ERR_NPIPE_SERVER_GONE.
   */
  waitForServer?: boolean;
  /** Aborts connecting (and waiting for a server). */
  signal?: AbortSignal;
  /** Largest request or reply in bytes (default 1 MiB; over NATS at most the NATS server's max_payload). */
  maxMessageSize?: number;
  /**
   * Microseconds to keep polling for the reply instead of sleeping, after each
   * request sent and reply received (default 0: off). Cuts the round trip where
   * waking an idle CPU is costly (virtual machines), at the price of that much CPU
   * time; see docs/TUNING.md. Like Linux's SO_BUSY_POLL.
   */
  busyPoll?: number;
  /**
   * FIFO only (other media ignore it): accept a request FIFO that group or others
   * may write to (a server for several users; see docs/RPC.md). Windows pipe:
   * also talk to a server another user shared (its key in the shared folder).
   */
  allowShared?: boolean;
}

/**
 * What request/reply looks like to users, whatever the medium: `serve()` gives a
 * Server and `connect()` a Client. FIFOs (server.ts, client.ts) and NATS (nats.ts)
 * implement them.
 */

/** Something the server refused or dropped, for logs. */
export interface ServerEvent {
  kind: 'refused' | 'reply-dropped' | 'bad-message' | 'frame-dropped';
  /** The reply address a peer named: peer data, escape it before printing. */
  client?: string;
  reason: string;
  /** The error's code, when an error is behind the event (e.g. ERR_NPIPE_UNSAFE for a refused address). */
  code?: string;
}

export interface ServerStats {
  requests: number;
  replies: number;
  errors: number;
  cancelled: number;
  repliesDropped: number;
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

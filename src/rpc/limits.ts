/**
 * Request/reply's defaults and bounds, in one place for every medium: the FIFO
 * server and client (frame-server.ts, frame-client.ts) and the NATS ones
 * (drivers/nats) read them here, and the option docs (types.ts) name them.
 * docs/RPC.md states the same figures to users.
 */

const MiB = 1024 * 1024;

/** Largest request or reply, in bytes, unless `maxMessageSize` says otherwise. */
export const DEFAULT_RPC_MAX_MESSAGE = MiB;

/** Handlers running at once, unless `concurrency` says otherwise. */
export const DEFAULT_CONCURRENCY = 64;

/** Bytes of requests waiting for a handler (per client over FIFOs, in all over NATS), unless `maxWaitingBytes` says otherwise. */
export const DEFAULT_MAX_WAITING_BYTES = 4 * MiB;

/** FIFO: bytes of requests waiting for a handler, all clients together, unless `maxTotalWaitingBytes` says otherwise. */
export const DEFAULT_MAX_TOTAL_WAITING_BYTES = 32 * MiB;

/** FIFO: reply bytes queued for one client, unless `maxQueuedReplyBytes` says otherwise. */
export const DEFAULT_MAX_QUEUED_REPLY_BYTES = 4 * MiB;

/** FIFO: reply bytes queued for all clients together, unless `maxTotalQueuedReplyBytes` says otherwise. */
export const DEFAULT_MAX_TOTAL_QUEUED_REPLY_BYTES = 32 * MiB;

/** FIFO: ms without a reply delivered to a client with replies queued before it counts as stuck, unless `stuckAfter` says otherwise. */
export const DEFAULT_STUCK_AFTER_MS = 10_000;

/**
 * What a waiting request costs against `maxWaitingBytes` and
 * `maxTotalWaitingBytes` beyond its payload (issue 15 #1: empty requests counted
 * nothing, and 2,000,000 of them took a server from 54 MB to 588 MB).
 */
export const REQUEST_COST = 512;

/**
 * What a reply queued for a client costs against `maxQueuedReplyBytes` and
 * `maxTotalQueuedReplyBytes` beyond its frame (its frame header, its place in the
 * sender's queue, the promise waiting on it): empty replies count too.
 */
export const REPLY_COST = 512;

/**
 * FIFO: replies queued for a client past which the error replies the server makes
 * up (ERR_NPIPE_BUSY, ERR_NPIPE_FRAME_TOO_LARGE) are dropped: a client flooding the
 * server and not reading keeps little of the server's memory.
 */
export const ERROR_REPLY_QUEUE = 256 * 1024;

/** FIFO: a client with nothing in progress for this long has its reply sender closed (reopened on its next request). */
export const IDLE_CLIENT_MS = 1000;

/** Server events of one kind passed on per second: a flood of refused addresses must not flood the log too. */
export const EVENTS_PER_SECOND = 20;

/** How often a client with requests in flight checks that its server is still there (where the medium can tell). */
export const SERVER_CHECK_MS = 250;

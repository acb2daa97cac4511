/**
 * Request/reply's defaults and bounds, in one place for every medium (FIFO and
 * NATS servers and clients read them here).
 */

/** Largest request or reply, in bytes, unless `maxMessageSize` says otherwise. */
export const DEFAULT_RPC_MAX_MESSAGE = 1024 * 1024;

/** Handlers running at once, unless `concurrency` says otherwise. */
export const DEFAULT_CONCURRENCY = 64;

/** Bytes of requests waiting for a handler (per client over FIFOs, in all over NATS), unless `maxWaitingBytes` says otherwise. */
export const DEFAULT_MAX_WAITING_BYTES = 4 * 1024 * 1024;

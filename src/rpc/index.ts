export { FifoServer } from './frame-server.js';
export { FifoClient } from './frame-client.js';
export { Server, Client, type ServeOptions, type ConnectOptions, type RequestOptions, type ServerEvent, type ServerStats } from './types.js';
export { REQUEST_COST } from './limits.js';
export type { Handler, HandlerContext } from './handler.js';
// Types only: the NATS client is loaded when a nats:// URL is first used.
export type { NatsServer, NatsClient } from '../drivers/nats/rpc.js';

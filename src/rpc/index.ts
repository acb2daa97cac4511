export { FifoServer, REQUEST_COST, type ServeOptions } from './frame-server.js';
export { FifoClient, type ConnectOptions } from './frame-client.js';
export { Server, Client, type RequestOptions, type ServerEvent, type ServerStats } from './types.js';
export type { Handler, HandlerContext } from './handler.js';
// Types only: the NATS client is loaded when a nats:// URL is first used.
export type { NatsServer } from '../drivers/nats/rpc-server.js';
export type { NatsClient } from '../drivers/nats/rpc-client.js';

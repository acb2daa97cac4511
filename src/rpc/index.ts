export { serve, FifoServer, REQUEST_COST, type ServeOptions } from './server.js';
export { connect, FifoClient, type ConnectOptions } from './client.js';
export { Server, Client, type RequestOptions, type ServerEvent, type ServerStats } from './base.js';
export type { Handler, HandlerContext } from './handler.js';
// Types only: the NATS client is loaded when a nats:// URL is first used.
export type { NatsServer, NatsClient } from './nats.js';

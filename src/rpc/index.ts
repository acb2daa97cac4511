export { serve, Server, type Handler, type HandlerContext, type ServeOptions, type ServerEvent, type ServerStats } from './server.js';
export { connect, Client, type ConnectOptions, type RequestOptions } from './client.js';

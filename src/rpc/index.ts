export { FrameServer } from './frame-server.js';
export { FrameClient } from './frame-client.js';
export { Server, Client, type ServeOptions, type ConnectOptions, type RequestOptions, type ServerEvent, type ServerStats } from './types.js';
export { REQUEST_COST } from './limits.js';
export type { Handler, HandlerContext } from './handler.js';

/**
 * What npipe's NATS servers and clients add to NATS request/reply, in headers
 * (docs/RPC.md, "Over NATS"):
 * - errors: `Nats-Service-Error` / `Nats-Service-Error-Code` (the NATS micro
 *   convention) and `Npipe-Error-Code` (the handler's code); the body is the message;
 * - a request with `Npipe-Client: 1` is told which server took it, when the reply
 *   is not ready at once: `Npipe-Status: accepted` and `Npipe-Server: <subject>`.
 *   The client sends cancellations there (`Npipe-Cancel: <reply subject>`), and
 *   checks that the server is still alive (a request to it with no responders
 *   means it is gone: ERR_NPIPE_SERVER_GONE).
 */

export const H_CLIENT = 'Npipe-Client';
export const H_STATUS = 'Npipe-Status';
export const H_SERVER = 'Npipe-Server';
export const H_CANCEL = 'Npipe-Cancel';
export const H_ERROR_CODE = 'Npipe-Error-Code';
export const H_SERVICE_ERROR = 'Nats-Service-Error';
export const H_SERVICE_ERROR_CODE = 'Nats-Service-Error-Code';

/** The prefix of a server's control subject (`Npipe-Server`): createInbox(CONTROL_PREFIX). */
export const CONTROL_PREFIX = '_NPIPE';

/**
 * What an npipe server's control subject looks like (createInbox('_NPIPE')). The
 * client sends cancellations and liveness requests there, so a responder that
 * names anything else (`$JS.API.STREAM.DELETE.X`) is not believed: the client
 * would be publishing, with its own permissions, wherever a peer told it to.
 */
export const CONTROL_SUBJECT = /^_NPIPE\.[A-Za-z0-9]{1,64}$/;

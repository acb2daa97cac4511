/**
 * The first line a NATS server sends, read over a plain TCP connection of our own:
 * `INFO {...}`, which says whether the server requires TLS and a client
 * certificate (`tls_required`, `tls_verify`). Used only to explain a failed
 * connection: nats.js, when the server rejects the client's certificate after a
 * TLS 1.3 handshake that looked complete, reports nothing but its timeout.
 */
import { connect as tcpConnect } from 'node:net';

export interface ServerInfo {
  tls_required?: boolean;
  tls_verify?: boolean;
}

/** The INFO of the server at `hostPort`, or undefined (no answer within `ms`, not NATS). Never throws. */
export function peekInfo(hostPort: string, ms = 2000): Promise<ServerInfo | undefined> {
  const at = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(hostPort.slice(at + 1));
  return new Promise((resolve) => {
    let text = '';
    const socket = tcpConnect({ host, port });
    const finish = (info: ServerInfo | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(info);
    };
    const timer = setTimeout(() => finish(undefined), ms);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n');
      if (end < 0 && text.length < 64 * 1024) return;
      const m = /^INFO\s+(\{.*\})/.exec(end < 0 ? text : text.slice(0, end));
      try {
        finish(m ? (JSON.parse(m[1]!) as ServerInfo) : undefined);
      } catch {
        finish(undefined);
      }
    });
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
  });
}

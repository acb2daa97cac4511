/**
 * Which server an address talks to. An address that names a host (`nats://h:4222/jobs`)
 * uses it, whatever else is given; one that names none (`nats:///jobs`) takes the
 * `servers` connection option (the CLI's --server, else NATS_URL, as the `nats` CLI
 * reads it: one URL or several, comma-separated, each maybe with user:password@).
 * Neither: ERR_NPIPE_INVALID_ARG, saying where a server can be given.
 */
import { InvalidArgumentError } from '../../errors.js';
import type { NatsOptions } from './options.js';
import { NATS_DEFAULT_PORT, type NatsAddress } from './url.js';

/** One entry of a servers list: `host`, `host:port`, `nats://[user[:pass]@]host[:port]`, `tls://...`. */
interface ServerEntry {
  hostPort: string;
  user?: string;
  pass?: string;
  tls: boolean;
}

function parseEntry(entry: string): ServerEntry {
  const text = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(entry) ? entry : `nats://${entry}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`the NATS server ${JSON.stringify(entry)} is not host[:port] or nats://[user:password@]host[:port]`);
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
    throw new InvalidArgumentError(`the NATS server ${JSON.stringify(entry)}: only nats:// and tls:// URLs are supported`);
  }
  if (url.hostname === '' || (url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new InvalidArgumentError(`the NATS server ${JSON.stringify(entry)} is not host[:port] or nats://[user:password@]host[:port] (no subject or options)`);
  }
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new InvalidArgumentError(`the NATS server ${JSON.stringify(entry)} has a malformed %-escape`);
    }
  };
  return {
    hostPort: `${url.hostname}:${url.port === '' ? NATS_DEFAULT_PORT : url.port}`,
    ...(url.username === '' ? {} : { user: decode(url.username) }),
    ...(url.password === '' ? {} : { pass: decode(url.password) }),
    tls: url.protocol === 'tls:',
  };
}

/** The entries of the `servers` option: an array, or a comma-separated list; empty entries are skipped. */
export function serverList(servers: NatsOptions['servers']): ServerEntry[] {
  const items = typeof servers === 'string' ? servers.split(',') : [...(servers ?? [])];
  return items.map((item) => {
    if (typeof item !== 'string') throw new InvalidArgumentError(`nats.servers must be strings, got ${typeof item}`);
    return item.trim();
  }).filter((item) => item !== '').map(parseEntry);
}

/**
 * `address` with its server: its own host, or the `servers` option's.
 * @throws ERR_NPIPE_INVALID_ARG (no server anywhere, or a malformed servers entry).
 */
export function withServer(url: string, address: NatsAddress, nats: NatsOptions | undefined): NatsAddress {
  if (address.server !== '') return address;
  const entries = serverList(nats?.servers);
  if (entries.length === 0) {
    throw new InvalidArgumentError(
      `${url} names no NATS server; write one in it (nats://host:4222/${address.subject}), or pass nats: { servers } (--server or NATS_URL)`,
    );
  }
  const withCredentials = entries.find((e) => e.user !== undefined);
  return {
    ...address,
    server: entries.map((e) => e.hostPort).join(','),
    ...(withCredentials?.user === undefined ? {} : { serverUser: withCredentials.user }),
    ...(withCredentials?.pass === undefined ? {} : { serverPass: withCredentials.pass }),
    ...(entries.some((e) => e.tls) ? { serverTls: true } : {}),
  };
}

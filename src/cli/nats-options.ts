/**
 * The CLI's NATS connection flags, as the `nats` CLI (nats-io/natscli) spells them
 * and with the environment variables it reads: one table, its help, and the
 * function that turns flags and environment into the library's `nats` option.
 * Every command that takes a nats:// address uses them (send, listen, serve,
 * request, bridge, streams); given with a FIFO path or pipe name they are refused
 * (args.ts, MEDIUM_OPTIONS), while the environment variables are simply not used.
 *
 * Precedence: a host in the address wins over --server and NATS_URL (which serve
 * only `nats:///subject`); a flag wins over its environment variable; if any
 * credential flag is given (--user, --password, --token, --nkey, --creds), the
 * credential variables (NATS_USER, NATS_PASSWORD, NATS_NKEY, NATS_CREDS) are not read.
 */
import { InvalidArgumentError } from '../errors.js';
import type { NatsOptions } from '../drivers/nats/options.js';

/** parseArgs option specs: spread into a command's `options`. */
export const natsFlags = {
  server: { type: 'string', short: 's' },
  user: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  nkey: { type: 'string' },
  creds: { type: 'string' },
  tlsca: { type: 'string' },
  tlscert: { type: 'string' },
  tlskey: { type: 'string' },
} as const;

/** The flags' long names: options for nats:// addresses only. */
export const NATS_FLAG_NAMES: readonly string[] = Object.keys(natsFlags);

/** The variables read, flag by flag (the `nats` CLI's). */
const ENV = {
  server: 'NATS_URL',
  user: 'NATS_USER',
  password: 'NATS_PASSWORD',
  nkey: 'NATS_NKEY',
  creds: 'NATS_CREDS',
  tlsca: 'NATS_CA',
  tlscert: 'NATS_CERT',
  tlskey: 'NATS_KEY',
} as const;

export const NATS_FLAGS_HELP = `NATS connection (nats:// addresses only; the \`nats\` CLI's flags and variables):
  -s, --server URL   the server for nats:///subject, an address naming none
                     (env NATS_URL; URLs may be comma-separated and carry
                     user:password@); a host in the address wins over both
      --user U       user name; without --password it is a token, as for
                     \`nats\` (env NATS_USER)
      --password P   password (env NATS_PASSWORD)
      --token T      token (or NATS_USER=T with no NATS_PASSWORD)
      --nkey FILE    NKey seed file, SU... (env NATS_NKEY)
      --creds FILE   credentials file, .creds (env NATS_CREDS)
      --tlsca FILE   CA that signed the server's certificate (env NATS_CA)
      --tlscert FILE client certificate, with --tlskey (env NATS_CERT)
      --tlskey FILE  its private key (env NATS_KEY)
Secrets given as flags show in ps: prefer the variables. Refused by the
server: exit 1, ERR_NPIPE_AUTH (never retried, not even with --wait).`;

type Values = Record<string, string | boolean | undefined>;

/** A flag's value, else its variable's (empty counts as unset), else undefined. */
function pick(values: Values, env: NodeJS.ProcessEnv, flag: keyof typeof natsFlags, useEnv = true): string | undefined {
  const given = values[flag];
  if (typeof given === 'string') {
    if (given === '') throw new InvalidArgumentError(`--${flag} needs a value`);
    return given;
  }
  const name = (ENV as Record<string, string | undefined>)[flag];
  const fromEnv = useEnv && name !== undefined ? env[name] : undefined;
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/**
 * The library's `nats` option from the flags and the environment; undefined when
 * nothing is given. Never throws for what the variables hold (they may be meant
 * for another program); the library checks it when a nats:// address is opened.
 * @throws ERR_NPIPE_INVALID_ARG (CLI exit 2) for a flag given an empty value.
 */
export function natsOptionsFrom(values: Values, env: NodeJS.ProcessEnv = process.env): NatsOptions | undefined {
  const credentialFlags = (['user', 'password', 'token', 'nkey', 'creds'] as const).filter((f) => values[f] !== undefined);
  const useEnv = credentialFlags.length === 0;
  const servers = pick(values, env, 'server');
  const user = pick(values, env, 'user', useEnv);
  const pass = pick(values, env, 'password', useEnv);
  const token = pick(values, env, 'token', useEnv);
  const nkeyFile = pick(values, env, 'nkey', useEnv);
  const credsFile = pick(values, env, 'creds', useEnv);
  // Conflicts (--password without --user, two ways to log in, a certificate without
  // its key) are the library's to refuse, for nats:// addresses only: variables left
  // in the environment never break a command on a FIFO path.
  const caFile = pick(values, env, 'tlsca');
  const certFile = pick(values, env, 'tlscert');
  const keyFile = pick(values, env, 'tlskey');
  const tls = caFile === undefined && certFile === undefined && keyFile === undefined ? undefined : { ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}) };
  const options: NatsOptions = {
    ...(servers === undefined ? {} : { servers }),
    ...(token === undefined ? {} : { token }),
    ...(user === undefined ? {} : { user }),
    ...(pass === undefined ? {} : { pass }),
    ...(nkeyFile === undefined ? {} : { nkeyFile }),
    ...(credsFile === undefined ? {} : { credsFile }),
    ...(tls === undefined ? {} : { tls }),
  };
  return Object.keys(options).length === 0 ? undefined : options;
}

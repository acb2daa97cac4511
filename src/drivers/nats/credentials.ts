/**
 * Who npipe is to a NATS server, and how the connection is secured: the `nats`
 * connection options (and the address's user:password@) as nats.js's own
 * options. Files (NKey seed, .creds, TLS certificates) are read here, before
 * connecting, so that a missing or malformed one is ERR_NPIPE_INVALID_ARG naming
 * the file, never a connection failure that waiting would retry.
 *
 * Which credentials: the address's user:password@ (like its host, it wins), else
 * the one of token / user+pass / NKey / creds the options give (two of them is an
 * error), else a user:password@ in the servers option's URLs. A user without a
 * password is a token, as NATS's own clients (and the `nats` CLI's --user) take it.
 */
import { readFile } from 'node:fs/promises';
import { credsAuthenticator, nkeyAuthenticator, nkeys, type ConnectionOptions } from '@nats-io/transport-node';
import { InvalidArgumentError } from '../../errors.js';
import type { NatsOptions } from './options.js';
import type { NatsAddress } from './url.js';

type Login = Pick<ConnectionOptions, 'user' | 'pass' | 'token' | 'authenticator' | 'tls'>;

const SEED = /\bSU[A-Z2-7]{56}\b/;

async function readText(file: unknown, what: string, option: string): Promise<string> {
  if (typeof file !== 'string' || file === '') throw new InvalidArgumentError(`nats.${option} must be a file path, got ${JSON.stringify(file)}`);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new InvalidArgumentError(`cannot read the NATS ${what} ${file} (${code}); check nats.${option}`, { cause: err });
  }
}

function checkString(value: unknown, option: string): asserts value is string | undefined {
  if (value !== undefined && typeof value !== 'string') throw new InvalidArgumentError(`nats.${option} must be a string, got ${typeof value}`);
}

/** The seed in `text` (a seed file may hold comments around it), checked; `where` names it in errors. */
function seedIn(text: string, where: string): Uint8Array {
  const seed = SEED.exec(text)?.[0];
  if (!seed) throw new InvalidArgumentError(`${where} holds no NKey user seed (a line SU... of 58 characters)`);
  const bytes = new TextEncoder().encode(seed);
  try {
    nkeys.fromSeed(bytes);
  } catch (err) {
    throw new InvalidArgumentError(`${where} holds an NKey seed that is not valid (${(err as Error).message})`, { cause: err });
  }
  return bytes;
}

/** user alone: a token; user and password: both. */
function userOrToken(user: string, pass: string | undefined): Login {
  return pass === undefined ? { token: user } : { user, pass };
}

async function credentials(address: NatsAddress, nats: NatsOptions): Promise<Login> {
  for (const option of ['token', 'user', 'pass', 'nkeySeed', 'nkeyFile', 'credsFile'] as const) checkString(nats[option], option);
  if (nats.pass !== undefined && nats.user === undefined) throw new InvalidArgumentError('nats.pass needs nats.user');
  const given = (
    [
      ['token', nats.token],
      ['user', nats.user],
      ['nkeySeed', nats.nkeySeed],
      ['nkeyFile', nats.nkeyFile],
      ['credsFile', nats.credsFile],
    ] as const
  ).filter(([, value]) => value !== undefined).map(([name]) => `nats.${name}`);
  if (given.length > 1) throw new InvalidArgumentError(`give one way to log in to NATS, not ${given.join(' and ')}`);
  if (address.user !== undefined) return userOrToken(address.user, address.pass);
  if (nats.token !== undefined) return { token: nats.token };
  if (nats.user !== undefined) return userOrToken(nats.user, nats.pass);
  if (nats.nkeySeed !== undefined) return { authenticator: nkeyAuthenticator(seedIn(nats.nkeySeed, 'nats.nkeySeed')) };
  if (nats.nkeyFile !== undefined) {
    const text = await readText(nats.nkeyFile, 'NKey seed file', 'nkeyFile');
    return { authenticator: nkeyAuthenticator(seedIn(text, `the NKey seed file ${nats.nkeyFile}`)) };
  }
  if (nats.credsFile !== undefined) {
    const text = await readText(nats.credsFile, 'credentials file', 'credsFile');
    if (!/-----BEGIN NATS USER JWT-----\s*\S+\s*------END NATS USER JWT------/.test(text)) {
      throw new InvalidArgumentError(`the NATS credentials file ${nats.credsFile} holds no user JWT (-----BEGIN NATS USER JWT----- ...); check nats.credsFile`);
    }
    seedIn(text, `the NATS credentials file ${nats.credsFile}`);
    return { authenticator: credsAuthenticator(new TextEncoder().encode(text)) };
  }
  if (address.serverUser !== undefined) return userOrToken(address.serverUser, address.serverPass);
  return {};
}

async function tls(address: NatsAddress, nats: NatsOptions): Promise<Login> {
  const given = nats.tls;
  if (given === undefined) return address.serverTls ? { tls: {} } : {};
  if (given === null || typeof given !== 'object') throw new InvalidArgumentError(`nats.tls must be an object ({ caFile, certFile, keyFile }), got ${String(given)}`);
  if ((given.certFile === undefined) !== (given.keyFile === undefined)) {
    throw new InvalidArgumentError('a TLS client certificate needs its key: give both nats.tls.certFile and nats.tls.keyFile');
  }
  const [ca, cert, key] = await Promise.all([
    given.caFile === undefined ? undefined : readText(given.caFile, 'TLS CA file', 'tls.caFile'),
    given.certFile === undefined ? undefined : readText(given.certFile, 'TLS certificate file', 'tls.certFile'),
    given.keyFile === undefined ? undefined : readText(given.keyFile, 'TLS key file', 'tls.keyFile'),
  ]);
  return { tls: { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) } };
}

/**
 * nats.js's options for logging in to `address`'s server and securing the connection.
 * @throws ERR_NPIPE_INVALID_ARG (a file that cannot be read or holds no seed, JWT or
 *   PEM; two ways to log in; a certificate without its key).
 */
export async function loginOptions(address: NatsAddress, nats: NatsOptions = {}): Promise<Login> {
  if (nats === null || typeof nats !== 'object') throw new InvalidArgumentError(`the nats option must be an object, got ${String(nats)}`);
  return { ...(await credentials(address, nats)), ...(await tls(address, nats)) };
}

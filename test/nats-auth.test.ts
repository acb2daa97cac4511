/**
 * Issue 19 #8, stage A: NATS as NATS users expect. The server for `nats:///subject`
 * from --server or NATS_URL; tokens, users and passwords, NKeys, .creds files
 * (operator mode, JWTs signed here) and TLS (a CA and certificates made here with
 * openssl, a client certificate with `verify: true`). Each against a real
 * nats-server started with a configuration this file writes, through the real
 * `npipe` binary: the right credential works end to end, a wrong one fails at
 * once with ERR_NPIPE_AUTH (exit 1), also with --wait, which must not retry it.
 * Needs nats-server (and openssl for TLS): skipped with a message without them,
 * failed under CI=true.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { nkeys } from '@nats-io/transport-node';
import { connect, openReceiver, openSender, serve } from '../src/index.js';
import { driverFor } from '../src/registry.js';
import { NATS_FLAG_NAMES } from '../src/cli/nats-options.js';
import { npipe, requireOrSkip, run, tempDir, type Result } from './helpers.js';
import { NATS_INSTALL_HINT, NatsServer, natsServerAvailable } from './nats-server.js';

type KeyPair = ReturnType<typeof nkeys.createUser>;

const natsAvailable = natsServerAvailable();
const opensslAvailable = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

/** An environment without the NATS variables of whoever runs the tests, plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('NATS_') || name === 'NATS_SERVER'));
  return { ...clean, ...extra };
}

/** A nats-server started with `config` (written to a file in the test's folder), or undefined (skipped). */
async function serverWith(t: TestContext, config: string): Promise<{ server: NatsServer; dir: string } | undefined> {
  if (!requireOrSkip(t, natsAvailable, NATS_INSTALL_HINT)) return undefined;
  const dir = tempDir(t);
  const file = join(dir, 'nats-server.conf');
  writeFileSync(file, config);
  const server = await NatsServer.start(['-c', file]);
  t.after(() => server.dispose());
  return { server, dir };
}

/** `npipe ...args` with only the variables given; a hang is a failure (a refusal must come at once). */
function npipeRun(args: string[], vars: Record<string, string> = {}, hangMs = 30_000): Promise<Result> {
  return run(args, { env: env(vars), hangMs });
}

function refused(r: Result, command: string): void {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^npipe ${command}: ERR_NPIPE_AUTH: `), r.stderr);
}

/**
 * End to end through the binary: a JetStream send and a listen that takes it
 * (both log in), or, where JetStream is not set up (operator mode), a request to
 * an `npipe serve --echo` (both log in too), on `<subject>.rpc`: a stream that
 * captures a subject answers requests to it itself (its PubAck).
 */
async function endToEnd(url: string, flags: string[], vars: Record<string, string> = {}, via: 'stream' | 'request' = 'stream'): Promise<void> {
  if (via === 'request') url = url.replace(/(\/[^/?]+)(\?.*)?$/, '$1.rpc');
  if (via === 'stream') {
    const sent = await npipeRun(['send', url, 'hello', '--jetstream', ...flags], vars);
    assert.equal(sent.code, 0, sent.stderr);
    const got = await npipeRun(['listen', url, '--jetstream', '--count', '1', '--timeout', '10s', ...flags], vars);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'hello\n');
    return;
  }
  const server = npipe(['serve', url, '--echo', ...flags], { env: env(vars) });
  try {
    const reply = await npipeRun(['request', url, 'hello', '--wait', '--timeout', '10s', ...flags], vars);
    assert.equal(reply.code, 0, reply.stderr);
    assert.equal(reply.stdout, 'hello\n');
  } finally {
    server.child.kill('SIGTERM');
    const served = await server.done;
    assert.equal(served.code, 0, served.stderr);
  }
}

/** A wrong credential: refused at once by send, send --wait, listen, request --wait and serve. */
async function refusedEverywhere(url: string, flags: string[], vars: Record<string, string> = {}): Promise<void> {
  refused(await npipeRun(['send', url, 'x', ...flags], vars), 'send');
  // --wait waits for a server that is not there; a server that refuses us is there: no retry.
  refused(await npipeRun(['send', url, 'x', '--wait', ...flags], vars, 20_000), 'send');
  refused(await npipeRun(['listen', url, '--count', '1', ...flags], vars), 'listen');
  refused(await npipeRun(['request', url, 'x', '--wait', ...flags], vars, 20_000), 'request');
  refused(await npipeRun(['serve', url, '--echo', ...flags], vars), 'serve');
}

describe('the server of an address that names none', () => {
  test('nats:///subject takes its server from --server, else NATS_URL (a list, with user:password@); a host in the address wins over both', { timeout: 90_000 }, async (t) => {
    const s = await serverWith(t, 'authorization { user: npipe, password: "pw-1" }\n');
    if (!s) return;
    const at = `127.0.0.1:${s.server.port}`;
    const url = 'nats:///auth.server?delivery=jetstream';
    // --server, with the credentials as flags.
    const sent = await npipeRun(['send', url, 'by-flag', '--server', at, '--user', 'npipe', '--password', 'pw-1']);
    assert.equal(sent.code, 0, sent.stderr);
    // NATS_URL: a list whose first server is not there, user:password@ in the URL.
    const listed = await npipeRun(['listen', url, '--count', '1', '--timeout', '10s'], { NATS_URL: `nats://127.0.0.1:1,nats://npipe:pw-1@${at}` });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, 'by-flag\n');
    // -s wins over NATS_URL.
    const short = await npipeRun(['send', url, 'by-short-flag', '-s', at], { NATS_URL: 'nats://127.0.0.1:1', NATS_USER: 'npipe', NATS_PASSWORD: 'pw-1' });
    assert.equal(short.code, 0, short.stderr);
    // A host in the address wins over NATS_URL and --server (which point nowhere here).
    const own = await npipeRun(['listen', `nats://npipe:pw-1@${at}/auth.server?delivery=jetstream`, '--count', '1', '--timeout', '10s', '-s', '127.0.0.1:1'], {
      NATS_URL: '127.0.0.1:1',
    });
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.stdout, 'by-short-flag\n');
    // No server anywhere: a usage error naming both ways to give one.
    for (const command of [['send', url, 'x'], ['listen', url], ['request', 'nats:///auth.rpc', 'x'], ['serve', 'nats:///auth.rpc', '--echo']]) {
      const none = await npipeRun(command);
      assert.equal(none.code, 2, none.stderr);
      assert.match(none.stderr, /^npipe \w+: ERR_NPIPE_INVALID_ARG: .*names no NATS server.*--server.*NATS_URL/, none.stderr);
    }
    // The library: the nats option's servers; no server is ERR_NPIPE_INVALID_ARG.
    const receiver = await openReceiver('nats:///auth.lib', { nats: { servers: [`nats://npipe:pw-1@${at}`] } });
    const sender = await openSender('nats:///auth.lib', { nats: { servers: at, user: 'npipe', pass: 'pw-1' } });
    await sender.send('lib');
    assert.equal(await receiver.receive(), 'lib');
    await sender.close();
    await receiver.close();
    await assert.rejects(openSender('nats:///auth.lib'), { code: 'ERR_NPIPE_INVALID_ARG' });
    await assert.rejects(connect('nats:///auth.lib', { nats: { servers: '' } }), { code: 'ERR_NPIPE_INVALID_ARG' });
  });

  test('a bare word stays a FIFO path: send jobs writes the FIFO ./jobs, whatever the NATS variables say; NATS flags with a FIFO path are refused (exit 2)', { timeout: 30_000 }, async (t) => {
    const dir = tempDir(t);
    // Variables that would be a mistake for a nats:// address (two ways to log in, a certificate without its key) do not matter here.
    const vars = { NATS_URL: '127.0.0.1:1', NATS_USER: 'u', NATS_CREDS: 'missing.creds', NATS_CERT: 'missing.pem' };
    const listener = npipe(['listen', 'jobs', '--count', '1'], { cwd: dir, env: env(vars) });
    const sent = await run(['send', 'jobs', 'to-the-fifo'], { cwd: dir, env: env(vars) });
    assert.equal(sent.code, 0, sent.stderr);
    const got = await listener.done;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'to-the-fifo\n');
    assert.equal((await driverFor('jobs')).name, 'fifo');
    for (const flag of [['--server', '127.0.0.1:4222'], ['--token', 't'], ['--creds', 'x.creds'], ['--tlsca', 'ca.pem']]) {
      const r = await run(['send', 'jobs', 'x', ...flag], { cwd: dir, env: env() });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^npipe send: ERR_NPIPE_INVALID_ARG: ${flag[0]} does not apply to jobs \\(a FIFO path\\)`));
    }
  });

  test('the NATS flags are the NATS driver\'s own options (refused elsewhere), and every command that takes a nats:// address has them', async () => {
    const nats = await driverFor('nats://h/s');
    for (const name of NATS_FLAG_NAMES) assert.ok(nats.capabilities.cliOptions.includes(name), name);
    for (const command of ['send', 'listen', 'serve', 'request', 'bridge']) {
      const help = await run([command, '--help']);
      for (const name of NATS_FLAG_NAMES) assert.match(help.stdout, new RegExp(`--${name}\\b`), `npipe ${command} --help names --${name}`);
      assert.match(help.stdout, /NATS_URL/);
      assert.deepEqual(help.stdout.split('\n').filter((line) => line.length > 80), [], `npipe ${command} --help`);
    }
  });
});

describe('credentials', () => {
  test('token: the right one works end to end (--token, or NATS_USER alone as the nats CLI takes it); a wrong or missing one is ERR_NPIPE_AUTH at once, also with --wait', { timeout: 120_000 }, async (t) => {
    const s = await serverWith(t, 'authorization { token: "tok-7f3e" }\n');
    if (!s) return;
    const url = s.server.url('auth.token');
    await endToEnd(url, ['--token', 'tok-7f3e']);
    await endToEnd(url, [], { NATS_USER: 'tok-7f3e' });
    await endToEnd(url, ['--user', 'tok-7f3e'], {}, 'request');
    await refusedEverywhere(url, ['--token', 'wrong']);
    await refusedEverywhere(url, []);
    // The message says what was refused and what to check.
    const r = await npipeRun(['send', url, 'x', '--token', 'wrong']);
    assert.match(r.stderr, /Authorization Violation.*--token/);
    // The library: waitForServer does not retry a refusal either.
    await assert.rejects(connect(url, { waitForServer: true, nats: { token: 'wrong' } }), { code: 'ERR_NPIPE_AUTH', name: 'AuthError' });
    await assert.rejects(openSender(url, { waitForReader: true, nats: { token: 'wrong' } }), { code: 'ERR_NPIPE_AUTH' });
    const rpc = s.server.url('auth.token.lib');
    const server = await serve(rpc, (req: string) => req.toUpperCase(), { nats: { token: 'tok-7f3e' } });
    const client = await connect(rpc, { nats: { token: 'tok-7f3e' } });
    assert.equal(await client.request('lib'), 'LIB');
    await client.close();
    await server.close();
  });

  test('user and password: flags or NATS_USER/NATS_PASSWORD or the URL work end to end; a wrong password is ERR_NPIPE_AUTH at once, also with --wait; flags replace the variables', { timeout: 120_000 }, async (t) => {
    const s = await serverWith(t, 'authorization { users: [ { user: alice, password: "a-pw-9" } ] }\n');
    if (!s) return;
    const url = s.server.url('auth.user');
    await endToEnd(url, ['--user', 'alice', '--password', 'a-pw-9']);
    await endToEnd(url, [], { NATS_USER: 'alice', NATS_PASSWORD: 'a-pw-9' }, 'request');
    await endToEnd(`nats://alice:a-pw-9@127.0.0.1:${s.server.port}/auth.user`, []);
    await refusedEverywhere(url, ['--user', 'alice', '--password', 'wrong']);
    await refusedEverywhere(url, [], { NATS_USER: 'alice', NATS_PASSWORD: 'wrong' });
    // A credential flag: the credential variables are not read (the right ones there do not rescue a wrong flag).
    refused(await npipeRun(['send', url, 'x', '--user', 'bob', '--password', 'a-pw-9'], { NATS_USER: 'alice', NATS_PASSWORD: 'a-pw-9' }), 'send');
    // Usage mistakes: exit 2.
    for (const bad of [['--password', 'p'], ['--user', 'a', '--password', 'p', '--token', 't'], ['--tlscert', 'c.pem']]) {
      const r = await npipeRun(['send', url, 'x', ...bad]);
      assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^npipe send: ERR_NPIPE_INVALID_ARG: /);
    }
  });

  test('NKey: a seed file works end to end (--nkey or NATS_NKEY); a seed the server does not list is ERR_NPIPE_AUTH, also with --wait; a file that is missing or holds no seed is exit 2', { timeout: 120_000 }, async (t) => {
    const user = nkeys.createUser();
    const s = await serverWith(t, `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }\n`);
    if (!s) return;
    const seedFile = join(s.dir, 'user.nk');
    writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600 });
    const strangerFile = join(s.dir, 'stranger.nk');
    writeFileSync(strangerFile, new TextDecoder().decode(nkeys.createUser().getSeed()), { mode: 0o600 });
    const notSeed = join(s.dir, 'not-a-seed.nk');
    writeFileSync(notSeed, 'hello\n');
    const url = s.server.url('auth.nkey');
    await endToEnd(url, ['--nkey', seedFile]);
    await endToEnd(url, [], { NATS_NKEY: seedFile }, 'request');
    await refusedEverywhere(url, ['--nkey', strangerFile]);
    for (const file of [join(s.dir, 'missing.nk'), notSeed]) {
      const r = await npipeRun(['send', url, 'x', '--nkey', file, '--wait']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^npipe send: ERR_NPIPE_INVALID_ARG: .*--nkey|^npipe send: ERR_NPIPE_INVALID_ARG: .*NKey/, r.stderr);
    }
    // The library takes the seed itself too.
    const receiver = await openReceiver(url, { nats: { nkeySeed: new TextDecoder().decode(user.getSeed()) } });
    await receiver.close();
  });

  test('.creds: operator mode (operator, account and user JWTs signed here) works end to end (--creds or NATS_CREDS); a user of an account the server does not know is ERR_NPIPE_AUTH, also with --wait; a missing or malformed file is exit 2', { timeout: 120_000 }, async (t) => {
    const operator = nkeys.createOperator();
    const account = nkeys.createAccount();
    const stranger = nkeys.createAccount();
    // JetStream (which the test server runs) needs a system account in operator mode.
    const system = nkeys.createAccount();
    const operatorJwt = jwt(operator, operator, 'operator', { type: 'operator', version: 2, system_account: system.getPublicKey() });
    const accountClaims = {
      type: 'account',
      version: 2,
      limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 },
      default_permissions: { pub: {}, sub: {} },
    };
    const accountJwt = jwt(account, operator, 'npipe-account', accountClaims);
    const systemJwt = jwt(system, operator, 'SYS', accountClaims);
    const s = await serverWith(
      t,
      `operator: ${operatorJwt}\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: ${accountJwt}\n  ${system.getPublicKey()}: ${systemJwt}\n}\n`,
    );
    if (!s) return;
    const good = join(s.dir, 'user.creds');
    writeFileSync(good, creds(nkeys.createUser(), account), { mode: 0o600 });
    const unknown = join(s.dir, 'stranger.creds');
    writeFileSync(unknown, creds(nkeys.createUser(), stranger), { mode: 0o600 });
    const malformed = join(s.dir, 'malformed.creds');
    writeFileSync(malformed, 'not a creds file\n');
    const url = s.server.url('auth.creds');
    await endToEnd(url, ['--creds', good], {}, 'request');
    await endToEnd(url, [], { NATS_CREDS: good }, 'request');
    // Core NATS send/listen too: the listener subscribed (its first message is ours), then the send.
    const listener = npipe(['listen', url, '--count', '1', '--timeout', '20s', '--creds', good], { env: env() });
    for (let i = 0; ; i++) {
      const sent = await npipeRun(['send', url, `creds-${i}`, '--creds', good]);
      assert.equal(sent.code, 0, sent.stderr);
      if (listener.child.exitCode !== null || (await Promise.race([listener.done.then(() => true), new Promise((r) => setTimeout(() => r(false), 300))]))) break;
    }
    const got = await listener.done;
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^creds-\d+\n$/);
    await refusedEverywhere(url, ['--creds', unknown]);
    for (const file of [join(s.dir, 'missing.creds'), malformed]) {
      const r = await npipeRun(['request', url, 'x', '--creds', file, '--wait']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^npipe request: ERR_NPIPE_INVALID_ARG: .*(--creds|credentials file)/, r.stderr);
    }
  });
});

/** A CA, a server certificate for 127.0.0.1 signed by it, a client certificate signed by it, and another CA's client certificate. */
function makeCertificates(dir: string): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey' | 'otherCa' | 'otherCert' | 'otherKey', string> {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) ssl('req', '-x509', ...ec, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.pem`), '-days', '2', '-subj', `/CN=npipe test ${ca}`);
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const issue = (name: string, ca: string, ext: string) => {
    ssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=npipe test ${name}`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.pem`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2', '-extfile', f(ext));
  };
  issue('server', 'ca', 'server.ext');
  issue('client', 'ca', 'client.ext');
  issue('other-client', 'other-ca', 'client.ext');
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.pem'),
    otherCert: f('other-client.pem'),
    otherKey: f('other-client.key'),
  };
}

describe('TLS', () => {
  test('TLS with a CA: --tlsca (or NATS_CA) works end to end; without it, or with another CA, the server\'s certificate is not trusted: ERR_NPIPE_AUTH at once, also with --wait', { timeout: 120_000 }, async (t) => {
    if (!requireOrSkip(t, opensslAvailable, 'openssl is not installed')) return;
    const certs = makeCertificates(tempDir(t));
    const s = await serverWith(t, `tls {\n  cert_file: "${certs.serverCert}"\n  key_file: "${certs.serverKey}"\n}\n`);
    if (!s) return;
    const url = s.server.url('auth.tls');
    await endToEnd(url, ['--tlsca', certs.ca]);
    await endToEnd(url, [], { NATS_CA: certs.ca }, 'request');
    await refusedEverywhere(url, []);
    await refusedEverywhere(url, ['--tlsca', certs.otherCa]);
    const r = await npipeRun(['send', url, 'x']);
    assert.match(r.stderr, /not trust.*--tlsca/, r.stderr);
    // A CA file that is not there: exit 2, never a wait.
    const missing = await npipeRun(['send', url, 'x', '--wait', '--tlsca', join(s.dir, 'missing.pem')]);
    assert.equal(missing.code, 2, missing.stderr);
    // TLS asked of a server without it: exit 2 too.
    const plain = await serverWith(t, 'port: 4222\n');
    if (!plain) return;
    const noTls = await npipeRun(['send', plain.server.url('auth.tls'), 'x', '--tlsca', certs.ca]);
    assert.equal(noTls.code, 2, noTls.stderr);
    assert.match(noTls.stderr, /^npipe send: ERR_NPIPE_INVALID_ARG: .*does not offer TLS/);
  });

  test('TLS client certificate (verify: true): --tlscert and --tlskey work end to end; none, or one from another CA, is ERR_NPIPE_AUTH at once, also with --wait', { timeout: 150_000 }, async (t) => {
    if (!requireOrSkip(t, opensslAvailable, 'openssl is not installed')) return;
    const certs = makeCertificates(tempDir(t));
    const s = await serverWith(t, `tls {\n  cert_file: "${certs.serverCert}"\n  key_file: "${certs.serverKey}"\n  ca_file: "${certs.ca}"\n  verify: true\n}\n`);
    if (!s) return;
    const url = s.server.url('auth.mtls');
    await endToEnd(url, ['--tlsca', certs.ca, '--tlscert', certs.clientCert, '--tlskey', certs.clientKey]);
    await endToEnd(url, [], { NATS_CA: certs.ca, NATS_CERT: certs.clientCert, NATS_KEY: certs.clientKey }, 'request');
    const none = await npipeRun(['send', url, 'x', '--wait', '--tlsca', certs.ca], {}, 30_000);
    refused(none, 'send');
    assert.match(none.stderr, /client certificate.*--tlscert/);
    const other = await npipeRun(['request', url, 'x', '--wait', '--tlsca', certs.ca, '--tlscert', certs.otherCert, '--tlskey', certs.otherKey], {}, 30_000);
    refused(other, 'request');
    // A certificate with another's key: exit 2.
    const mismatch = await npipeRun(['send', url, 'x', '--tlsca', certs.ca, '--tlscert', certs.clientCert, '--tlskey', certs.otherKey]);
    assert.equal(mismatch.code, 2, mismatch.stderr);
  });
});

/** A NATS JWT: base64url(header).base64url(claims).base64url(ed25519 signature by `issuer`). */
function jwt(subject: KeyPair, issuer: KeyPair, name: string, nats: Record<string, unknown>): string {
  const enc = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = enc({ typ: 'JWT', alg: 'ed25519-nkey' });
  const claims = enc({ jti: randomBytes(16).toString('hex').toUpperCase(), iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject.getPublicKey(), nats });
  const signature = Buffer.from(issuer.sign(Buffer.from(`${header}.${claims}`))).toString('base64url');
  return `${header}.${claims}.${signature}`;
}

/** A .creds file for a new user of `account`: the user's JWT (signed by the account) and its seed. */
function creds(user: KeyPair, account: KeyPair): string {
  const userJwt = jwt(user, account, 'npipe-user', { type: 'user', version: 2, pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
  return `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`;
}

/**
 * Issue 19 #8, stage C: `npipe streams`, listing and removing the JetStream
 * streams npipe makes, through the real binary against a real nats-server (its
 * own, so that the list is exactly this test's). Needs nats-server: skipped with
 * a message without it, failed under CI=true.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { streamNameFor } from '../src/drivers/nats/url.js';
import { requireOrSkip, run } from './helpers.js';
import { NATS_INSTALL_HINT, NatsServer, natsServerAvailable } from './nats-server.js';

const available = natsServerAvailable();

async function ownServer(t: TestContext): Promise<NatsServer | undefined> {
  if (!requireOrSkip(t, available, NATS_INSTALL_HINT)) return undefined;
  const server = await NatsServer.start();
  t.after(() => server.dispose());
  return server;
}

/** A stream made by hand (not by npipe): HAND, capturing hand.>. */
async function handMadeStream(port: number): Promise<void> {
  const nc = await natsConnect({ servers: `127.0.0.1:${port}` });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'HAND', subjects: ['hand.>'] });
  } finally {
    await nc.close();
  }
}

test('npipe streams lists the streams npipe made, with subjects, messages, bytes and consumers (--json: one object a line); others only with --all', { timeout: 60_000 }, async (t) => {
  const server = await ownServer(t);
  if (!server) return;
  const base = `nats://127.0.0.1:${server.port}`;
  assert.equal((await run(['send', `${base}/jobs.eu`, 'one', 'two', '--jetstream'])).code, 0);
  assert.equal((await run(['send', `${base}/named?delivery=jetstream&stream=MINE`, 'x'])).code, 0);
  const listened = await run(['listen', `${base}/jobs.eu`, '--jetstream', '--count', '1']);
  assert.equal(listened.code, 0, listened.stderr);
  await handMadeStream(server.port);
  const json = await run(['streams', base, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const rows = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    rows.map((r) => r.name),
    ['MINE', streamNameFor('jobs.eu')],
  );
  const jobs = rows.find((r) => r.name === streamNameFor('jobs.eu'))!;
  assert.deepEqual(jobs.subjects, ['jobs.eu']);
  assert.equal(jobs.messages, 1, 'one taken, one left (work queue)');
  assert.equal(jobs.consumers, 1);
  assert.ok((jobs.bytes as number) > 0);
  assert.equal(jobs.npipe, true);
  // The table, and --all with the stream made by hand; the server from NATS_URL.
  const table = await run(['streams', '--all'], { env: { ...process.env, NATS_URL: `127.0.0.1:${server.port}` } });
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0]!, /^NAME +SUBJECTS +MESSAGES +BYTES +CONSUMERS +NPIPE$/);
  assert.match(table.stdout, /^HAND +hand\.> +0 +0 +0 +no$/m);
  assert.match(table.stdout, new RegExp(`^${streamNameFor('jobs.eu')} +jobs\\.eu +1 +\\d+ +1 +yes$`, 'm'));
});

test('npipe streams --remove deletes npipe\'s streams; one npipe did not make is refused (exit 2) unless --force; a missing one is ERR_NPIPE_NOT_FOUND', { timeout: 60_000 }, async (t) => {
  const server = await ownServer(t);
  if (!server) return;
  const base = `nats://127.0.0.1:${server.port}`;
  assert.equal((await run(['send', `${base}/gone`, 'x', '--jetstream'])).code, 0);
  await handMadeStream(server.port);
  const removed = await run(['streams', base, '--remove', streamNameFor('gone')]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(removed.stdout, `removed ${streamNameFor('gone')}\n`);
  const refused = await run(['streams', base, '--remove', 'HAND']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /^npipe streams: ERR_NPIPE_INVALID_ARG: the stream HAND was not made by npipe.*--force/);
  const missing = await run(['streams', base, '--remove', 'NPIPE_nothing']);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /^npipe streams: ERR_NPIPE_NOT_FOUND: /);
  const forced = await run(['streams', '-s', `127.0.0.1:${server.port}`, '--remove', 'HAND', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  const left = await run(['streams', base, '--all', '--json']);
  assert.equal(left.stdout, '');
});

test('npipe streams: a FIFO path, a subject, or no server anywhere is a usage error (exit 2); its help fits 80 columns and npipe --help lists it', async () => {
  for (const args of [['streams', '/tmp/npipe-streams-x'], ['streams', 'nats://127.0.0.1:4222/jobs'], ['streams'], ['streams', 'nats://127.0.0.1:1', '--force']]) {
    const r = await run(args, { env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NATS_') || k === 'NATS_SERVER')) });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^npipe streams: ERR_NPIPE_INVALID_ARG: /);
  }
  const help = await run(['streams', '--help']);
  assert.equal(help.code, 0);
  assert.deepEqual(help.stdout.split('\n').filter((line) => line.length > 80), []);
  assert.match((await run(['--help'])).stdout, /^ {2}streams +list or remove the JetStream streams/m);
});

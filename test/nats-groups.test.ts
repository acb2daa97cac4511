/**
 * Issue 19 #8, stage B: the queue-group-or-fan-out choice of `npipe listen` over
 * core NATS, explicit (--queue NAME, --fan-out; ?group=, ?fan-out=true), through
 * the real binary against a real nats-server. Core NATS delivers only to
 * listeners already subscribed, so each test first sends probes until every
 * listener has printed one (it is subscribed), then the messages it counts.
 * Needs nats-server: skipped with a message without it, failed under CI=true.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openReceiver } from '../src/index.js';
import { npipe, run, sharedNatsServer, until, type Running } from './helpers.js';

const nats = sharedNatsServer('nats-groups');

/** Probes until each listener has printed one: then all are subscribed. */
async function untilSubscribed(url: string, listeners: Running[], output: () => string[]): Promise<void> {
  for (let i = 0; !output().every((text) => text.includes('probe')); i++) {
    const sent = await run(['send', url, `probe-${i}`]);
    assert.equal(sent.code, 0, sent.stderr);
    if (i > 200) throw new Error(`listeners not subscribed after 200 probes: ${JSON.stringify(output())}`);
    for (const l of listeners) assert.equal(l.child.exitCode, null, 'a listener exited early');
  }
}

function collect(l: Running): () => string {
  let text = '';
  l.child.stdout!.on('data', (d: Buffer | string) => (text += d.toString()));
  return () => text;
}

/** The numbered messages (m1...) a listener printed. */
const numbered = (text: string) => text.split('\n').filter((line) => /^m\d+$/.test(line));

describe('listen: a queue group or fan-out', () => {
  test('two listeners with --fan-out (or ?fan-out=true) both get every message, as two nats sub would', { timeout: 90_000 }, async (t) => {
    const url = nats.url(t);
    if (!url) return;
    const a = npipe(['listen', url, '--fan-out'], { hangMs: 80_000 });
    const b = npipe(['listen', `${url}?fan-out=true`], { hangMs: 80_000 });
    const outA = collect(a);
    const outB = collect(b);
    try {
      await untilSubscribed(url, [a, b], () => [outA(), outB()]);
      const messages = Array.from({ length: 20 }, (_, i) => `m${i + 1}`);
      const sent = await run(['send', url, ...messages]);
      assert.equal(sent.code, 0, sent.stderr);
      await until(() => numbered(outA()).length === 20 && numbered(outB()).length === 20, 'every message at both listeners', 20_000);
      assert.deepEqual(numbered(outA()), messages);
      assert.deepEqual(numbered(outB()), messages);
    } finally {
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      assert.equal((await a.done).code, 0);
      assert.equal((await b.done).code, 0);
    }
  });

  test('two listeners in one queue group (--queue NAME, or ?group=NAME) share the messages: each message to one of them, as nats sub --queue', { timeout: 90_000 }, async (t) => {
    const url = nats.url(t);
    if (!url) return;
    const a = npipe(['listen', url, '--queue', 'workers'], { hangMs: 80_000 });
    const b = npipe(['listen', `${url}?group=workers`], { hangMs: 80_000 });
    // A listener in the default group (npipe) is a group of its own: it gets every message too.
    const c = npipe(['listen', url], { hangMs: 80_000 });
    const outA = collect(a);
    const outB = collect(b);
    const outC = collect(c);
    try {
      await untilSubscribed(url, [a, b, c], () => [outA(), outB(), outC()]);
      const messages = Array.from({ length: 40 }, (_, i) => `m${i + 1}`);
      const sent = await run(['send', url, ...messages]);
      assert.equal(sent.code, 0, sent.stderr);
      await until(() => numbered(outA()).length + numbered(outB()).length === 40 && numbered(outC()).length === 40, 'the messages shared out', 20_000);
      const shared = [...numbered(outA()), ...numbered(outB())];
      assert.deepEqual([...shared].sort(), [...messages].sort(), 'each message once in the group');
      assert.ok(numbered(outA()).length > 0 && numbered(outB()).length > 0, `both took some: ${numbered(outA()).length}/${numbered(outB()).length}`);
      assert.deepEqual(numbered(outC()), messages);
    } finally {
      for (const l of [a, b, c]) l.child.kill('SIGTERM');
      for (const l of [a, b, c]) assert.equal((await l.done).code, 0);
    }
  });

  test('the choice is core NATS\'s: with JetStream, with request/reply, both at once, or with a FIFO path it is refused (exit 2)', { timeout: 60_000 }, async (t) => {
    const url = nats.url(t);
    if (!url) return;
    for (const args of [
      ['listen', url, '--jetstream', '--fan-out'],
      ['listen', url, '--jetstream', '--queue', 'g'],
      ['listen', `${url}?delivery=jetstream&fan-out=true`],
      ['listen', url, '--queue', 'g', '--fan-out'],
      ['listen', `${url}?group=g&fan-out=true`],
      ['listen', `${url}?fan-out=maybe`],
      ['listen', url, '--queue', 'not a name'],
      ['serve', `${url}?fan-out=true`, '--echo'],
      ['request', `${url}?fan-out=true`, 'x'],
      ['listen', '/tmp/npipe-never-created', '--fan-out'],
      ['listen', '/tmp/npipe-never-created', '--queue', 'g'],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^npipe \w+: ERR_NPIPE_INVALID_ARG: /, args.join(' '));
    }
    // The library: fanOut and group on openReceiver, the same rules.
    await assert.rejects(openReceiver(url, { delivery: 'jetstream', fanOut: true }), { code: 'ERR_NPIPE_INVALID_ARG' });
    await assert.rejects(openReceiver(url, { group: 'g', fanOut: true }), { code: 'ERR_NPIPE_INVALID_ARG' });
    const receiver = await openReceiver(url, { fanOut: true });
    await receiver.close();
  });
});

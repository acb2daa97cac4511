/**
 * Publish/subscribe over FIFOs (issue 20): every subscriber gets every message,
 * whole, in each publisher's order; subscribers come and go, die, and are let go.
 * Real FIFOs, real processes.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openPublisher, subscribe, type Receiver } from '../src/index.js';
import { BIN, npipe, run, start, tempDir, until } from './helpers.js';

const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
const NPIPE = `${q(process.execPath)} ${q(BIN)}`;

const subscriberFifos = (topic: string) => readdirSync(topic).filter((n) => n.startsWith('s-'));

describe('publish/subscribe over FIFOs', { skip: process.platform === 'win32' && 'FIFO topics are POSIX' }, () => {
  test('8 subscriber processes x 100,000 messages from 2 publishers: every subscriber gets every message, whole, in each publisher\'s order', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const N = 100_000;
    const subscribers = Array.from({ length: 8 }, (_, i) =>
      start('sh', ['-c', `exec ${NPIPE} subscribe ${q(topic)} --count ${2 * N} > ${q(join(dir, `out${i}`))}`], { hangMs: 240_000 }),
    );
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 8, 'eight subscribers', 30_000);
    const publishers = ['A', 'B'].map((p) => start('sh', ['-c', `seq -f '${p} %g' ${N} | ${NPIPE} publish ${q(topic)}`], { hangMs: 240_000 }));
    for (const p of publishers) assert.equal((await p.done).code, 0);
    for (const [i, s] of subscribers.entries()) {
      const r = await s.done;
      assert.equal(r.code, 0, r.stderr);
      const lines = readFileSync(join(dir, `out${i}`), 'utf8').split('\n');
      assert.equal(lines.pop(), '');
      assert.equal(lines.length, 2 * N, `subscriber ${i}`);
      const next = { A: 1, B: 1 } as Record<string, number>;
      for (const line of lines) {
        const [p, n] = line.split(' ');
        assert.equal(Number(n), next[p!], `subscriber ${i}: ${JSON.stringify(line)} out of order or torn`);
        next[p!]!++;
      }
    }
    assert.deepEqual(subscriberFifos(topic), [], 'each subscriber removed its FIFO when it ended');
  });

  test('a subscriber that joins mid-stream gets every message published after subscribe() resolved, in order', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const publisher = await openPublisher(topic);
    const early = await subscribe(topic);
    for (let i = 0; i < 100; i++) await publisher.publish(`m${i}`);
    const late = await subscribe(topic);
    for (let i = 100; i < 200; i++) await publisher.publish(`m${i}`);
    await publisher.close();
    const take = async (r: Receiver<string>, n: number) => {
      const got: string[] = [];
      for await (const m of r) if (got.push(m) === n) break;
      return got;
    };
    assert.deepEqual(await take(early, 200), Array.from({ length: 200 }, (_, i) => `m${i}`));
    assert.deepEqual(await take(late, 100), Array.from({ length: 100 }, (_, i) => `m${i + 100}`));
    await early.close();
    await late.close();
  });

  test('a SIGKILLed subscriber is noticed and its FIFO removed; the publisher goes on and the others get everything', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const victim = start('sh', ['-c', `exec ${NPIPE} subscribe ${q(topic)} > /dev/null`], { hangMs: 60_000 });
    const survivor = await subscribe(topic);
    await until(() => subscriberFifos(topic).length === 2, 'two subscribers');
    const publisher = await openPublisher(topic);
    for (let i = 0; i < 10; i++) await publisher.publish(`before ${i}`);
    assert.equal(publisher.subscribers, 2);
    victim.child.kill('SIGKILL');
    await victim.done;
    // The next publishes find its FIFO without a reader (EPIPE): let go and removed, never waited for.
    for (let i = 0; i < 10; i++) await publisher.publish(`after ${i}`);
    assert.equal(publisher.subscribers, 1);
    assert.equal(subscriberFifos(topic).length, 1, 'the dead subscriber\'s FIFO is removed');
    const got: string[] = [];
    for await (const m of survivor) if (got.push(m) === 20) break;
    assert.deepEqual(got, [...Array.from({ length: 10 }, (_, i) => `before ${i}`), ...Array.from({ length: 10 }, (_, i) => `after ${i}`)]);
    await publisher.close();
    await survivor.close();
  });

  test('a FIFO left by a subscriber killed while no one published is removed by the next subscriber to join', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const victim = start('sh', ['-c', `exec ${NPIPE} subscribe ${q(topic)}`], { hangMs: 60_000 });
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the subscriber');
    victim.child.kill('SIGKILL');
    await victim.done;
    const next = await subscribe(topic);
    assert.equal(subscriberFifos(topic).length, 1, readdirSync(topic).join(' '));
    await next.close();
    assert.deepEqual(readdirSync(topic), []);
  });

  test('a subscriber that closes is let go; publishing with no subscriber goes nowhere and does not wait', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const publisher = await openPublisher(topic);
    await publisher.publish('to nobody');
    assert.equal(publisher.subscribers, 0);
    const s = await subscribe(topic);
    await publisher.publish('one');
    assert.equal(publisher.subscribers, 1);
    await s.close();
    assert.deepEqual(readdirSync(topic), []);
    await publisher.publish('two');
    assert.equal(publisher.subscribers, 0);
    await publisher.close();
    await assert.rejects(publisher.publish('three'), { code: 'ERR_NPIPE_CLOSED' });
  });

  test('the topic folder is made 0700; a symlink, a folder open to others or a file is refused (ERR_NPIPE_UNSAFE, CLI exit 4)', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const s = await subscribe(topic);
    assert.equal(lstatSync(topic).mode & 0o777, 0o700);
    await s.close();
    mkdirSync(join(dir, 'open'));
    chmodSync(join(dir, 'open'), 0o755);
    symlinkSync(topic, join(dir, 'link'));
    writeFileSync(join(dir, 'file'), '');
    for (const name of ['open', 'link', 'file']) {
      await assert.rejects(subscribe(join(dir, name)), { code: 'ERR_NPIPE_UNSAFE' }, name);
      await assert.rejects(openPublisher(join(dir, name)), { code: 'ERR_NPIPE_UNSAFE' }, name);
      const r = await run(['publish', join(dir, name), 'x']);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /^npipe publish: ERR_NPIPE_UNSAFE: /);
    }
  });

  test('the CLI: subscribe --json, --count, --timeout (exit 3); publish from arguments and stdin; usage errors exit 2', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const sub = npipe(['subscribe', topic, '--json', '--count', '3']);
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the subscriber');
    assert.equal((await run(['publish', topic, 'a', 'b b'])).code, 0);
    assert.equal((await run(['publish', topic], { input: 'c\n' })).code, 0);
    const r = await sub.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ text: 'a' }, { text: 'b b' }, { text: 'c' }]);
    const idle = await run(['subscribe', topic, '--timeout', '300ms']);
    assert.equal(idle.code, 3, idle.stderr);
    assert.match(idle.stderr, /ERR_NPIPE_TIMEOUT/);
    for (const args of [['publish'], ['subscribe'], ['subscribe', topic, topic], ['subscribe', topic, '--count', '0']]) {
      assert.equal((await run(args)).code, 2, args.join(' '));
    }
  });
});

/**
 * nodejs/node#23220 and #3628: opening a FIFO the obvious way (fs.open, createReadStream)
 * parks a libuv threadpool thread until the other end shows up; with four such opens
 * every fs call in the process hangs, and the process cannot exit.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { start, tempDir } from './helpers.js';

const INDEX = new URL('../src/index.js', import.meta.url).href;

test('#23220 - sixteen FIFOs waiting for peers do not stop fs.promises.readFile, and aborted waits let the process exit', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'regular.txt');
  writeFileSync(file, 'still readable');
  const script = `
    import { readFile } from 'node:fs/promises';
    import { setMaxListeners } from 'node:events';
    import { openSender, openReceiver } from ${JSON.stringify(INDEX)};
    const dir = ${JSON.stringify(dir)};
    const controller = new AbortController();
    setMaxListeners(32, controller.signal); // one signal shared by sixteen waits
    // Eight writers waiting for a reader, eight readers waiting for a message.
    const waits = [];
    for (let i = 0; i < 8; i++) waits.push(openSender(dir + '/w' + i, { signal: controller.signal }));
    const receivers = await Promise.all(Array.from({ length: 8 }, (_, i) => openReceiver(dir + '/r' + i)));
    for (const r of receivers) waits.push(r.receive({ signal: controller.signal }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const text = await readFile(${JSON.stringify(file)}, 'utf8');
    console.log('readFile: ' + text);
    controller.abort(new Error('done waiting'));
    const results = await Promise.allSettled(waits);
    console.log('aborted: ' + results.filter((r) => r.status === 'rejected' && r.reason.message === 'done waiting').length);
    await Promise.all(receivers.map((r) => r.close()));
    // No process.exit: the process must end by itself, with nothing left waiting.
  `;
  // UV_THREADPOOL_SIZE=4 is the default; set it so that a larger value in the environment cannot hide the bug.
  const child = start(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '4' },
    hangMs: 20_000,
  });
  const result = await child.done;
  assert.equal(result.stderr, '');
  assert.equal(result.code, 0);
  assert.match(result.stdout, /readFile: still readable/);
  assert.match(result.stdout, /aborted: 16/);
});

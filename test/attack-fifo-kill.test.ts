/**
 * Issue 15 #4, signal fault test with SIGKILL: see test/fixtures/signal-runs.ts for
 * what is checked and what the docs promise.
 */
import { test } from 'node:test';
import { RUNS, combos, runCombo } from './fixtures/signal-runs.js';

test(`#15.4 - SIGKILL at random moments, ${RUNS} senders per format: every message whole, each sender's an in-order prefix, the reader never out of step`, async (t) => {
  const seed = Number(process.env.NPIPE_SIGNAL_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (NPIPE_SIGNAL_SEED=${seed} repeats this run)`);
  const outcomes = await Promise.all(combos('SIGKILL').map((combo, i) => runCombo(t, combo, seed + i)));
  combos('SIGKILL').forEach((combo, i) => {
    const o = outcomes[i]!;
    t.diagnostic(`${combo.format}: ${o.killedMidRun}/${RUNS} killed while running, ${o.delivered} messages checked, ${o.dropped} dropped by the reader`);
  });
});

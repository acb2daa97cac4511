/**
 * "Did you mean" (src/cli/suggest.ts): the distance is a metric with adjacent
 * swaps counted once, and a suggestion is only ever one of the known words, close
 * to what was typed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { closest, editDistance } from '../src/cli/suggest.js';

const word = fc.string({ maxLength: 12 });

test('editDistance: zero only for equal words, symmetric, at most the longer length, one per adjacent swap', () => {
  fc.assert(
    fc.property(word, word, (a, b) => {
      const d = editDistance(a, b);
      assert.equal(d === 0, a === b);
      assert.equal(d, editDistance(b, a));
      assert.ok(d <= Math.max(a.length, b.length));
    }),
  );
  assert.equal(editDistance('sned', 'send'), 1);
  assert.equal(editDistance('--cuont', '--count'), 1);
});

test('closest: a known word within reach, or nothing; never a word further than 2 edits unless typed as its start', () => {
  const known = ['send', 'listen', 'serve', 'request', 'bridge', 'mkfifo', 'demo'];
  fc.assert(
    fc.property(word, (typed) => {
      const meant = closest(typed, known);
      if (meant === undefined) return;
      assert.ok(known.includes(meant));
      assert.ok(editDistance(typed, meant) <= 2 || meant.startsWith(typed));
    }),
  );
  assert.equal(closest('sned', known), 'send');
  assert.equal(closest('reqest', known), 'request');
  assert.equal(closest('xyz', known), undefined);
  assert.equal(closest('ser', known), 'serve', 'the start of exactly one of them');
  assert.equal(closest('se', known), undefined, 'too short to guess from');
});

/**
 * Offline analysis of a committed recording (a real trace of
 * test/fixtures/leaky_server.c: 2 leaks before attach, 3 during, 2 good
 * requests). Runs without root: the report must be exactly the one recorded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, runTcptrace, WORK } from './helpers/proc.js';

const file = join(FIXTURES, 'recorded/leaky-server.tcptrace');

test('tcptrace report reproduces the report of the recorded run', async () => {
  const r = await runTcptrace(['report', file, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.deepEqual(got, JSON.parse(readFileSync(join(FIXTURES, 'recorded/leaky-server.report.json'), 'utf8')));
  assert.equal(got.closeWait.length, 5);
  assert.equal(got.closeWait.filter((e: any) => e.since === 'attach').length, 2);
  assert.deepEqual(got.closeWait.map((e: any) => e.fd).sort(), [4, 5, 6, 7, 8]);
});

test('leaks are grouped offline by origin once they pass --leak-after', async () => {
  const r = await runTcptrace(['report', file, '--format', 'json', '--leak-after', '1']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  const byOrigin = Object.fromEntries(doc.leaks.map((g: any) => [g.origin, g]));
  assert.equal(byOrigin.preexisting.count, 2);
  assert.equal(byOrigin.preexisting.ageSince, 'attach');
  assert.equal(byOrigin.accept.count, 3);
  assert.deepEqual(byOrigin.accept.sockets.map((s: any) => s.fd).sort(), [6, 7, 8]);
  assert.ok(byOrigin.accept.notes.some((n: string) => /not captured/.test(n)), 'a recording without stacks says so');
  const strict = JSON.parse((await runTcptrace(['report', file, '--format', 'json'])).stdout);
  assert.deepEqual(strict.leaks, [], 'nothing is 5 s old in a 2.5 s recording');
});

test('the text report names every CLOSE_WAIT socket', async () => {
  const r = await runTcptrace(['report', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /CLOSE_WAIT sockets \(5\)/);
  assert.equal((r.stdout.match(/leaky_server/g) ?? []).length, 5);
});

test('a recording cut mid-frame (killed recorder) still reads, and says so', async () => {
  const data = readFileSync(file);
  const cut = join(WORK, 'cut.tcptrace');
  writeFileSync(cut, data.subarray(0, data.length - 7));
  const r = await runTcptrace(['report', cut, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.ok(doc.warnings.some((w: string) => /interrupted/.test(w)));
  assert.ok(doc.warnings.some((w: string) => /partial last frame/.test(w)));
});

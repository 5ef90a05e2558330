/**
 * The compact transition record (tt_transition4) decodes to the same event as the full
 * one with the same facts, through the plain objects and through the views the live
 * path hands the socket table (raw tuples). Records are built here at the generated
 * offsets; test/10 checks those against the C compiler. No root needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from '../src/generated/events.js';
import { decodeBatch, forEachRecord } from '../src/decode.js';
import { SocketTable } from '../src/model/socket-table.js';
import { TCP } from '../src/model/states.js';
import type { TransitionEvent } from '../src/model/events.js';

const facts = { ts: 123_456_789, sk: 0xffff_8880_1234_5600, cookie: 77n, old: TCP.ESTABLISHED, new: TCP.CLOSE_WAIT, sport: 8080, dport: 41000, netns: 4026531840, tgid: 4242, tid: 4243, comm: 'nginx' };
const ADDR_L = [10, 0, 0, 1];
const ADDR_R = [192, 168, 1, 20];

/** where a record kind keeps each fact (generated offsets) */
const FULL = {
  kind: G.TT_KIND.TRANSITION as number, size: G.SIZE_TRANSITION, sk: G.O_TRANSITION_SK, cookie: G.O_TRANSITION_COOKIE, saddr: G.O_TRANSITION_TUPLE_SADDR,
  daddr: G.O_TRANSITION_TUPLE_DADDR, sport: G.O_TRANSITION_TUPLE_SPORT, dport: G.O_TRANSITION_TUPLE_DPORT, tgid: G.O_TRANSITION_CPU_TGID,
  tid: G.O_TRANSITION_CPU_TID, netns: G.O_TRANSITION_NETNS, old: G.O_TRANSITION_OLDSTATE, new: G.O_TRANSITION_NEWSTATE, comm: G.O_TRANSITION_CPU_COMM,
};
const COMPACT: typeof FULL = {
  kind: G.TT_KIND.TRANSITION4, size: G.SIZE_TRANSITION4, sk: G.O_TRANSITION4_SK, cookie: G.O_TRANSITION4_COOKIE, saddr: G.O_TRANSITION4_SADDR,
  daddr: G.O_TRANSITION4_DADDR, sport: G.O_TRANSITION4_SPORT, dport: G.O_TRANSITION4_DPORT, tgid: G.O_TRANSITION4_CPU_TGID,
  tid: G.O_TRANSITION4_CPU_TID, netns: G.O_TRANSITION4_NETNS, old: G.O_TRANSITION4_OLDSTATE, new: G.O_TRANSITION4_NEWSTATE, comm: G.O_TRANSITION4_CPU_COMM,
};

function record(L: typeof FULL): Buffer {
  const b = Buffer.alloc(L.size);
  b.writeUInt16LE(L.kind, G.O_HDR_KIND);
  b.writeUInt16LE(L.size, G.O_HDR_SIZE);
  b.writeUInt8(1, G.O_HDR_VERSION);
  b.writeBigUInt64LE(BigInt(facts.ts), G.O_HDR_TS_NS);
  b.writeBigUInt64LE(BigInt(facts.sk), L.sk);
  b.writeBigUInt64LE(facts.cookie, L.cookie);
  b.set(ADDR_L, L.saddr);
  b.set(ADDR_R, L.daddr);
  b.writeUInt16LE(facts.sport, L.sport);
  b.writeUInt16LE(facts.dport, L.dport);
  b.writeUInt32LE(facts.tgid, L.tgid);
  b.writeUInt32LE(facts.tid, L.tid);
  b.writeUInt32LE(facts.netns, L.netns);
  b.writeUInt8(facts.old, L.old);
  b.writeUInt8(facts.new, L.new);
  b.write(facts.comm, L.comm);
  if (L === FULL) {
    b.writeUInt16LE(2, G.O_TRANSITION_TUPLE_FAMILY); // AF_INET
    b.writeInt32LE(-1, G.O_TRANSITION_OWNER_FD); // no owner, as the kernel sends it
  }
  return b;
}
const full = () => record(FULL);
const compact = () => record(COMPACT);

test('a compact transition decodes to the event its full record gives', () => {
  const out: TransitionEvent[] = [];
  decodeBatch(Buffer.concat([full(), compact()]), out as never[]);
  assert.equal(out.length, 2);
  assert.deepEqual(out[1], out[0]);
  assert.equal(out[1].local, '10.0.0.1:8080');
  assert.equal(out[1].remote, '192.168.1.20:41000');
  assert.equal(out[1].ownerKnown, false);
  assert.equal(out[1].ownerFd, -1);
  assert.equal(out[1].cpuComm, 'nginx');
});

test('the socket table takes a compact record\'s raw tuple like a full one\'s', () => {
  const endpoints = (buf: Buffer) => {
    const table = new SocketTable(null);
    let seen: string[] = [];
    forEachRecord(buf, (v) => {
      const r = table.apply(v as TransitionEvent);
      assert.ok(r, 'the table took the record');
      seen = [r.rec.local, r.rec.remote];
    });
    return seen;
  };
  assert.deepEqual(endpoints(compact()), ['10.0.0.1:8080', '192.168.1.20:41000']);
  assert.deepEqual(endpoints(compact()), endpoints(full()));
});

test('a compact record shorter than its struct is an error, not a guess', () => {
  const b = compact().subarray(0, 80);
  b.writeUInt16LE(80, G.O_HDR_SIZE);
  assert.throws(() => decodeBatch(b, []), /short compact transition record \(80 bytes\)/);
});

/** Socket table semantics on synthetic event streams (no root needed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SocketTable } from '../src/model/socket-table.js';
import type { PresentEvent, SockcallEvent, TransitionEvent } from '../src/model/events.js';
import { TCP } from '../src/model/states.js';
import { TT_CALL, TT_ORIGIN } from '../src/generated/events.js';

const tr = (sk: number, ts: number, from: number, to: number, extra: Partial<TransitionEvent> = {}): TransitionEvent => ({
  type: 'transition', ts, sk, cookie: 0n, oldState: from, newState: to, family: 2, localPort: 80,
  local: '127.0.0.1:80', remote: '127.0.0.1:5000', netns: 1, ownerKnown: true, ownerPid: 100,
  ownerFd: -1, ownerComm: 'srv', ownerFirstNs: 0, origin: TT_ORIGIN.ACCEPT_PENDING, cpuPid: 200, cpuTid: 200, cpuComm: 'client',
  call: 0, callFd: -1, callArg: 0, ...extra,
});
const call = (sk: number, ts: number, c: number, fd: number, state: number, extra: Partial<SockcallEvent> = {}): SockcallEvent => ({
  type: 'sockcall', ts, sk, cookie: 0n, call: c, via: 0, state, family: 2, local: '127.0.0.1:80', remote: '127.0.0.1:5000',
  netns: 1, pid: 100, tid: 100, fd, arg: 0, comm: 'srv', ...extra,
});

test('a socket is followed from SYN_RECV to CLOSE and then retired', () => {
  const t = new SocketTable([100]);
  t.apply(tr(1, 10, TCP.LISTEN, TCP.SYN_RECV));
  const est = t.apply(tr(1, 15, TCP.SYN_RECV, TCP.ESTABLISHED))!;
  assert.equal(est.inOldNs, 5);
  t.apply(call(1, 16, TT_CALL.ACCEPT, 7, TCP.ESTABLISHED));
  const cw = t.apply(tr(1, 30, TCP.ESTABLISHED, TCP.CLOSE_WAIT))!;
  assert.equal(cw.rec.fd, 7);
  assert.equal(cw.rec.origin, 'accept');
  assert.equal(t.apply(tr(1, 90, TCP.CLOSE_WAIT, TCP.LAST_ACK))!.inOldNs, 60);
  t.apply(tr(1, 95, TCP.LAST_ACK, TCP.CLOSE, { local: '127.0.0.1:0' }));
  assert.equal(t.live.size, 0);
  const closed = [...t.closedCloseWait.values()];
  assert.equal(closed.length, 1);
  assert.equal(closed[0].count, 1);
  assert.deepEqual(closed[0].recentNs, [60]);
});

test('an sk address reused after CLOSE is a new socket', () => {
  const t = new SocketTable([100]);
  t.apply(tr(1, 10, TCP.LISTEN, TCP.SYN_RECV));
  const first = t.apply(tr(1, 11, TCP.SYN_RECV, TCP.CLOSE))!.rec;
  const second = t.apply(tr(1, 20, TCP.LISTEN, TCP.SYN_RECV, { remote: '127.0.0.1:6000' }))!.rec;
  assert.notEqual(first.serial, second.serial);
  assert.equal(second.remote, '127.0.0.1:6000');
  assert.equal(second.transitions, 1);
});

test('the port released at CLOSE does not overwrite the socket\'s address', () => {
  const t = new SocketTable([100]);
  t.apply(tr(1, 10, TCP.ESTABLISHED, TCP.FIN_WAIT1));
  const r = t.apply(tr(1, 11, TCP.FIN_WAIT1, TCP.CLOSE, { local: '127.0.0.1:0' }))!.rec;
  assert.equal(r.local, '127.0.0.1:80');
});

test('a socket present at attach is linked to its events by cookie, and a change already in the snapshot is not applied twice', () => {
  const t = new SocketTable([100]);
  const present: PresentEvent = {
    type: 'present', ts: 100, cookie: 42n, state: TCP.CLOSE_WAIT, family: 2, local: '127.0.0.1:80', remote: '127.0.0.1:5000',
    netns: 1, pid: 100, fd: 9, comm: 'srv', inode: 1234, sharedWith: [],
  };
  t.apply(present);
  // the FIN arrived between the seeding snapshot and this one: same change, earlier timestamp
  const dup = t.apply(tr(7, 90, TCP.ESTABLISHED, TCP.CLOSE_WAIT, { cookie: 42n, origin: TT_ORIGIN.PREEXISTING }))!;
  assert.equal(dup.duplicate, true);
  assert.equal(t.live.size, 1);
  const rec = t.live.get(7)!;
  assert.equal(rec.fd, 9);
  assert.equal(rec.stateSince, null, 'entry into CLOSE_WAIT predates the trace');
  // the owner's close() makes the transition, and the kernel says so in it
  const closed = t.apply(tr(7, 151, TCP.CLOSE_WAIT, TCP.LAST_ACK, { call: TT_CALL.CLOSE, callFd: 9, cpuPid: 100, cpuComm: 'srv' }))!;
  assert.equal(closed.inOldNs, null);
  assert.equal(closed.rec.fdClosedAt, 151);
  assert.equal(t.counts.sockcalls, 1);
});

test('a close() carried by its transition gives a socket the agent attributes its fd', () => {
  const t = new SocketTable(null);
  // whole system, no owner from the kernel and no accept seen: the owner closes it
  t.apply(tr(3, 10, TCP.ESTABLISHED, TCP.CLOSE_WAIT, { ownerKnown: false, ownerPid: 0, cpuPid: 200 }));
  const rec = t.live.get(3)!;
  rec.pid = 100; // as adoptChild would have it
  t.apply(tr(3, 20, TCP.CLOSE_WAIT, TCP.LAST_ACK, { ownerKnown: false, ownerPid: 0, call: TT_CALL.CLOSE, callFd: 12, cpuPid: 100 }));
  assert.equal(rec.fd, 12);
  assert.equal(rec.fdClosedAt, 20);
  // a shutdown() is noted, not taken for a close
  t.apply(tr(4, 30, TCP.ESTABLISHED, TCP.FIN_WAIT1, { ownerKnown: false, ownerPid: 0, call: TT_CALL.SHUTDOWN, callFd: 5, callArg: 1, cpuPid: 100 }));
  assert.equal(t.live.get(4)!.shutdownAt, 30);
  assert.equal(t.live.get(4)!.fdClosedAt, null);
});

test('the holders at the end name who keeps a CLOSE_WAIT socket open', () => {
  const t = new SocketTable([100]);
  const at = (sk: number, port: number) => {
    t.apply(tr(sk, 10, TCP.LISTEN, TCP.SYN_RECV, { remote: `127.0.0.1:${port}` }));
    t.apply(call(sk, 11, TT_CALL.ACCEPT, sk + 3, TCP.ESTABLISHED, { remote: `127.0.0.1:${port}` }));
    t.apply(tr(sk, 20, TCP.ESTABLISHED, TCP.CLOSE_WAIT, { remote: `127.0.0.1:${port}` }));
    return t.live.get(sk)!;
  };
  const closedByOwner = at(1, 6001); // the owner closed its fd; a child it forked holds another
  const shared = at(2, 6002); // the owner still holds it, and so does the child
  const untouched = at(3, 6003); // not in the snapshot (it changed state since): left as it was
  const held = (port: number, holders: { pid: number; fd: number; comm: string }[]) => ({ netns: 1, local: '127.0.0.1:80', remote: `127.0.0.1:${port}`, holders });
  t.applyHolders([held(6001, [{ pid: 101, fd: 4, comm: 'child' }]), held(6002, [{ pid: 100, fd: 5, comm: 'srv' }, { pid: 101, fd: 5, comm: 'child' }])], 90);
  assert.deepEqual(t.holder(closedByOwner), { pid: 101, fd: 4, comm: 'child' });
  assert.equal(closedByOwner.fdClosedAt, 90);
  assert.deepEqual(t.holder(shared), { pid: 100, fd: 5 });
  assert.deepEqual(shared.sharedWith, [101]);
  assert.equal(shared.fdClosedAt, null);
  assert.deepEqual(t.holder(untouched), { pid: 100, fd: 6 });
});

test('a forked child inherits the sockets in the fd table, not those still in the accept queue', () => {
  const t = new SocketTable([100]);
  t.apply(tr(1, 10, TCP.LISTEN, TCP.SYN_RECV));
  t.apply(call(1, 11, TT_CALL.ACCEPT, 4, TCP.ESTABLISHED));
  t.apply(tr(2, 12, TCP.LISTEN, TCP.SYN_RECV, { remote: '127.0.0.1:5001' })); // queued, not accepted
  t.apply({ type: 'fork', ts: 13, parentPid: 100, childPid: 101, comm: 'srv' });
  t.apply(call(1, 14, TT_CALL.CLOSE, 4, TCP.ESTABLISHED)); // parent closes its copy
  assert.deepEqual(t.holder(t.live.get(1)!), { pid: 101, fd: 4 });
  assert.deepEqual(t.live.get(2)!.sharedWith, []);
  assert.ok(t.targets!.has(101));
});

test('a socket born at a live socket\'s address retires it: that CLOSE was skipped by the kernel', () => {
  const t = new SocketTable([100, 300]);
  // a client socket of pid 300 whose final CLOSE run the kernel skipped (missedInKernel)
  t.apply(tr(1, 10, TCP.CLOSE, TCP.SYN_SENT, { ownerPid: 300, ownerComm: 'client', origin: TT_ORIGIN.CONNECT, ownerFd: 5 }));
  const client = t.apply(tr(1, 11, TCP.SYN_SENT, TCP.ESTABLISHED, { ownerPid: 300, ownerComm: 'client', origin: TT_ORIGIN.CONNECT }))!.rec;
  t.apply(tr(1, 12, TCP.ESTABLISHED, TCP.FIN_WAIT1, { ownerPid: 300, ownerComm: 'client', origin: TT_ORIGIN.CONNECT }));
  // the address comes back as a listener's child of pid 100
  const child = t.apply(tr(1, 20, TCP.LISTEN, TCP.SYN_RECV))!;
  assert.notEqual(child.rec, client);
  assert.equal(child.rec.pid, 100);
  assert.equal(child.rec.state, TCP.SYN_RECV);
  assert.equal(child.rec.transitions, 1, 'the child does not continue the client\'s life');
  assert.equal(t.counts.unseenCloses, 1);
  assert.equal(t.live.size, 1);
});

// The whole system without stacks: the kernel keeps no owners map (SessionInfo.owners 'agent')
// and names an owner only at connect/listen; the table attributes everything else.
const unowned = { ownerKnown: false, ownerPid: 0, ownerComm: '', ownerFd: -1, origin: TT_ORIGIN.UNKNOWN };

test('without owners from the kernel, a listener\'s child is its owner\'s until accept(), and keeps the acceptor after', () => {
  const t = new SocketTable(null);
  // a listener made while tracing (its record names the owner), and one present at attach, in another netns
  t.apply(tr(9, 1, TCP.CLOSE, TCP.LISTEN, { local: '0.0.0.0:80', remote: '0.0.0.0:0', ownerPid: 100, ownerComm: 'srv', ownerFd: 3, origin: TT_ORIGIN.LISTEN }));
  const present: PresentEvent = {
    type: 'present', ts: 2, cookie: 77n, state: TCP.LISTEN, pid: 300, fd: 4, comm: 'other', inode: 1, sharedWith: [],
    family: 2, local: '0.0.0.0:80', remote: '0.0.0.0:0', netns: 2,
  };
  t.apply(present);
  const child = t.apply(tr(1, 10, TCP.LISTEN, TCP.SYN_RECV, unowned))!.rec;
  assert.deepEqual([child.pid, child.comm, child.fd, child.origin], [100, 'srv', -1, 'accept-pending']);
  const other = t.apply(tr(2, 11, TCP.LISTEN, TCP.SYN_RECV, { ...unowned, netns: 2, remote: '127.0.0.1:5001' }))!.rec;
  assert.deepEqual([other.pid, other.comm], [300, 'other'], 'the listener of the child\'s own netns');
  t.apply(tr(1, 12, TCP.SYN_RECV, TCP.ESTABLISHED, unowned));
  t.apply(call(1, 13, TT_CALL.ACCEPT, 7, TCP.ESTABLISHED, { pid: 101, comm: 'worker' }));
  const cw = t.apply(tr(1, 20, TCP.ESTABLISHED, TCP.CLOSE_WAIT, unowned))!.rec;
  assert.deepEqual([cw.pid, cw.comm, cw.fd, cw.origin], [101, 'worker', 7, 'accept']);
  // the listener closes: a later child on that port has no owner to inherit
  t.apply(tr(9, 30, TCP.LISTEN, TCP.CLOSE, { ...unowned, local: '0.0.0.0:0' }));
  const orphan = t.apply(tr(3, 31, TCP.LISTEN, TCP.SYN_RECV, { ...unowned, remote: '127.0.0.1:5002' }))!.rec;
  assert.deepEqual([orphan.pid, orphan.origin], [0, 'unknown']);
});

test('a child first seen as its listener\'s copy (before 6.15: port only) takes its tuple from the next transition', () => {
  const t = new SocketTable(null);
  t.apply(tr(9, 1, TCP.CLOSE, TCP.LISTEN, { local: '0.0.0.0:80', remote: '0.0.0.0:0', ownerPid: 100, origin: TT_ORIGIN.LISTEN }));
  const child = t.apply(tr(1, 10, TCP.LISTEN, TCP.SYN_RECV, { ...unowned, local: '0.0.0.0:80', remote: '0.0.0.0:0' }))!.rec;
  assert.equal(child.pid, 100);
  t.apply(tr(1, 11, TCP.SYN_RECV, TCP.ESTABLISHED, unowned));
  assert.deepEqual([child.local, child.remote], ['127.0.0.1:80', '127.0.0.1:5000']);
  // a listener's own endpoints stay as they are (its peer is always :0)
  const listener = t.live.get(9)!;
  assert.deepEqual([listener.local, listener.remote], ['0.0.0.0:80', '0.0.0.0:0']);
});

/**
 * A small process for test/doctor.test.ts to create real conditions with.
 * Started as `node dist/test/doctor-fixture.js [noaccept PORT BACKLOG MAXSECONDS]`.
 *
 * Interactive mode (default): prints {"ready":true,"pid":N}, then reads one
 * command per line on stdin and answers one JSON line on stdout:
 *   listen PORT MODE [BACKLOG]  MODE: leak (never close accepted sockets: CLOSE_WAIT
 *                               once the peer closes), close-first (close right after
 *                               accept: TIME_WAIT on this side), normal (close when the peer does)
 *   connect HOST PORT N         open N connections and keep them
 *   closeall                    close (close(), FIN) every connection opened by `connect`
 *   churn HOST PORT N C [peer-first]
 *                               N connections, C at a time, each closed by this side first
 *                               (peer-first: wait for the peer to close, then close)
 *   burst HOST PORT N MS        start one connection every MS ms, N in all, without waiting
 *   accepted N                  wait (at most 10 s) until N connections were accepted (leak mode)
 *   fill N                      open /dev/null until N fds are open (or EMFILE)
 *   exit
 * noaccept mode: listens on 127.0.0.1:PORT with BACKLOG, prints ready, then blocks
 * its only thread (so nothing ever calls accept()) for at most MAXSECONDS and exits.
 */
import { openSync, readdirSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const servers: Server[] = [];
const accepted: Socket[] = [];
const clients: Socket[] = [];
const files: number[] = [];

function reply(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length - 1; // minus the fd readdir itself holds
}

function connectOne(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function listen(port: number, mode: string, backlog: number): Promise<number> {
  const server = createServer({ allowHalfOpen: mode === 'leak' }, (sock) => {
    sock.on('error', () => {});
    if (mode === 'leak') accepted.push(sock); // never end()ed: CLOSE_WAIT once the peer closes
    else if (mode === 'close-first') sock.end();
    else sock.resume();
  });
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, backlog }, () => resolve((server.address() as { port: number }).port));
  });
}

async function churn(host: string, port: number, n: number, concurrency: number, peerFirst: boolean): Promise<{ done: number; errors: number }> {
  let next = 0;
  let done = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      try {
        const s = await connectOne(host, port);
        await new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          s.on('error', () => {});
          s.resume();
          if (!peerFirst) s.end(); // our FIN first: TIME_WAIT lands on this side
          // peerFirst: wait for the peer's FIN; net.Socket then ends its side
        });
        done++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { done, errors };
}

async function command(line: string): Promise<object> {
  const [cmd, ...a] = line.trim().split(/\s+/);
  switch (cmd) {
    case 'listen':
      return { ok: true, port: await listen(Number(a[0]), a[1] ?? 'normal', Number(a[2] ?? 511)) };
    case 'connect': {
      for (let i = 0; i < Number(a[2]); i++) {
        const s = await connectOne(a[0]!, Number(a[1]));
        s.on('error', () => {});
        clients.push(s);
      }
      return { ok: true, connected: clients.length };
    }
    case 'closeall': {
      const n = clients.length;
      await Promise.all(clients.splice(0).map((s) => new Promise<void>((resolve) => (s.once('close', () => resolve()), s.destroy()))));
      return { ok: true, closed: n };
    }
    case 'churn':
      return { ok: true, ...(await churn(a[0]!, Number(a[1]), Number(a[2]), Number(a[3] ?? 10), a[4] === 'peer-first')) };
    case 'burst': {
      const n = Number(a[2]);
      let i = 0;
      const t = setInterval(() => {
        if (i++ >= n) return clearInterval(t);
        const s = createConnection({ host: a[0]!, port: Number(a[1]) });
        s.on('error', () => {});
        clients.push(s);
      }, Number(a[3]));
      return { ok: true };
    }
    case 'accepted': {
      const want = Number(a[0]);
      for (let i = 0; i < 200 && accepted.length < want; i++) await new Promise((r) => setTimeout(r, 50));
      return { ok: accepted.length >= want, accepted: accepted.length, error: accepted.length >= want ? undefined : `only ${accepted.length} accepted` };
    }
    case 'fill': {
      const target = Number(a[0]);
      let err = '';
      for (let i = 0; i < 100_000 && fdCount() < target; i++) {
        try {
          files.push(openSync('/dev/null', 'r'));
        } catch (e) {
          err = (e as NodeJS.ErrnoException).code ?? String(e);
          break;
        }
      }
      return { ok: true, fds: fdCount(), error: err || undefined };
    }
    case 'exit':
      setImmediate(() => process.exit(0));
      return { ok: true };
    default:
      return { ok: false, error: `unknown command ${cmd}` };
  }
}

if (process.argv[2] === 'noaccept') {
  const [port, backlog, maxSeconds] = process.argv.slice(3).map(Number);
  const server = createServer(() => {});
  server.listen({ host: '127.0.0.1', port, backlog }, () => {
    reply({ ready: true, pid: process.pid, port: (server.address() as { port: number }).port });
    // block the only thread: the event loop never polls the listening socket, so no accept()
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, (maxSeconds ?? 60) * 1000);
    process.exit(0);
  });
} else {
  reply({ ready: true, pid: process.pid });
  const rl = createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      try {
        reply(await command(line));
      } catch (e) {
        reply({ ok: false, error: e instanceof Error ? e.message : String(e) });
      }
    });
  });
  rl.on('close', () => process.exit(0)); // the test went away: do not linger
}

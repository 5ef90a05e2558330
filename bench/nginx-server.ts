/**
 * The server and load every nginx benchmark shares: nginx with its own config on
 * 127.0.0.1 (one worker, no access log, a 3-byte reply; the system's nginx is not
 * touched) and wrk, one thread, 32 connections, `Connection: close`: one TCP
 * connection per request, about 10 state changes each.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { boxCpu, cpuDelta, onInterrupt, sampleOf, sleep, type Sample } from './common.js';

export const PORT = 18080;

export interface Nginx {
  master: number;
  worker: number;
  /** forgets the interrupt handler that stops it */
  off: () => void;
}

/** Starts nginx with its config, logs and temp files under dir. */
export function startNginx(dir: string): Nginx {
  for (const tool of ['nginx', 'wrk']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} missing: run scripts/setup.sh`);
  for (const d of ['logs', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon on; pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
  server { listen 127.0.0.1:${PORT} backlog=4096; location / { return 200 "ok\\n"; } } }
`,
  );
  const r = spawnSync('nginx', ['-c', conf, '-p', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nginx failed to start: ${r.stderr}`);
  const master = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim());
  const off = onInterrupt(() => spawnSync('kill', ['-QUIT', String(master)]));
  let worker = 0;
  for (let i = 0; i < 50 && !worker; i++) {
    const kids = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim();
    worker = Number(kids.split(' ')[0] || 0);
    if (!worker) spawnSync('sleep', ['0.1']);
  }
  if (!worker) {
    spawnSync('kill', ['-QUIT', String(master)]);
    off();
    throw new Error(`nginx (master ${master}) started no worker`);
  }
  return { master, worker, off };
}

/** Graceful stop, by the master's pid. */
export function stopNginx(n: Nginx): void {
  spawnSync('kill', ['-QUIT', String(n.master)]);
  n.off();
}

/** One wrk run; its requests per second. Bounded by wrk's -d and by timeout. */
export async function wrk(seconds: number): Promise<number> {
  const r = spawnSync('timeout', ['-s', 'INT', String(seconds + 20), 'wrk', '-t1', '-c32', `-d${seconds}s`, '-H', 'Connection: close', `http://127.0.0.1:${PORT}/`], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`wrk failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

/** One wrk run, and the whole box's CPU over it and the tailMs after it (a tracer's drain; the baseline's idle time too). */
export async function measureWrk(seconds: number, tailMs = 0): Promise<Sample> {
  const b0 = boxCpu();
  const rps = await wrk(seconds);
  if (tailMs) await sleep(tailMs);
  return sampleOf(rps, seconds, cpuDelta(b0, boxCpu()));
}

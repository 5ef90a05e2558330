/**
 * Helpers of the agent tests: a free loopback port, GETs, reading one series
 * out of a Prometheus exposition, and a process moved into a cgroup of its own
 * under system.slice (a systemd service, as far as the agent can tell).
 */
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CgroupTree } from '../../src/agent/cgroups.js';
import { sleep } from './proc.js';

/** a port nothing listens on now */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function get(port: number, path: string): Promise<{ status: number; text: string; type: string; body: Buffer }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, text: body.toString('utf8'), type: r.headers.get('content-type') ?? '', body };
}

export interface Series {
  labels: Record<string, string>;
  value: number;
}

/** every series of one metric of a Prometheus text exposition */
export function series(text: string, name: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** the value of one series, by labels it must have (null: no such series) */
export function sample(text: string, name: string, labels: Record<string, string>): number | null {
  const s = series(text, name).find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : null;
}

/** A cgroup /system.slice/UNIT.service holding a process, removed by remove(). */
export class ServiceCgroup {
  readonly dir: string | null;
  constructor(readonly unit: string) {
    const root = new CgroupTree().root;
    this.dir = root ? join(root, 'system.slice', `${unit}.service`) : null;
  }

  /** the workload the agent must name: the unit's, or /host without a cgroup2 tree */
  get workload(): string {
    return this.dir ? `/system.slice/${this.unit}.service` : '/host';
  }

  add(pid: number): void {
    if (!this.dir) return;
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, 'cgroup.procs'), String(pid));
  }

  /** after its processes were stopped: rmdir, retried while the kernel lets go of them */
  async remove(): Promise<boolean> {
    return this.dir ? removeCgroup(this.dir) : true;
  }
}

/** rmdir of a cgroup whose processes were stopped, retried for a second while the kernel lets go of them */
export async function removeCgroup(dir: string): Promise<boolean> {
  for (let i = 0; i < 50 && existsSync(dir); i++) {
    try {
      rmdirSync(dir);
    } catch {
      await sleep(20);
    }
  }
  return !existsSync(dir);
}

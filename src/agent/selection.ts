/**
 * Which processes the agent reports: --pid, --comm, --unit, --cgroup, --container
 * (each repeatable; a process is selected when any selector names it; none: every
 * process). The kernel traces the whole host either way (a selector can name a
 * process that starts later, and a reload can change the selection), so this is
 * applied where the agent publishes: metrics, profile, leak events, counters.
 *
 * Selection is decided once per process (its comm and workload do not change in
 * practice) and cached; the cache follows the workload cache's forgetting.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import picomatch from 'picomatch';
import { UsageError } from '../errors.js';
import type { Workload } from './workload.js';

export interface SelectorSpec {
  pid: number[];
  comm: string[];
  unit: string[];
  cgroup: string[];
  container: string[];
}

export const NO_SELECTORS: SelectorSpec = { pid: [], comm: [], unit: [], cgroup: [], container: [] };

/** TASK_COMM_LEN is 16 with the NUL: a longer literal name can never match */
const COMM_MAX = 15;

type Matcher = (s: string) => boolean;
const glob = (pattern: string): Matcher => picomatch(pattern, { dot: true });

export class Selection {
  private readonly pids: Set<number>;
  private readonly comms: Matcher[];
  private readonly units: Matcher[];
  private readonly cgroups: string[];
  private readonly containers: { idPrefix: string | null; name: Matcher }[];
  private readonly cache = new Map<number, boolean>();

  /**
   * Checks every selector (throws UsageError naming the bad one): a comm longer than
   * the kernel keeps, a cgroup that is not a directory under the cgroup2 mount, an
   * empty value. cgroupRoot null: no cgroup v2 tree, so --cgroup cannot match.
   */
  constructor(
    readonly spec: SelectorSpec,
    cgroupRoot: string | null,
  ) {
    for (const [k, vs] of Object.entries(spec) as [keyof SelectorSpec, (string | number)[]][]) {
      for (const v of vs) if (v === '') throw new UsageError(`--${k}: an empty value selects nothing`);
    }
    for (const c of spec.comm) {
      if (!/[*?[\]{}]/.test(c) && c.length > COMM_MAX) throw new UsageError(`--comm '${c}': the kernel keeps ${COMM_MAX} characters of a process name (TASK_COMM_LEN); use '${c.slice(0, COMM_MAX)}' or a glob`);
    }
    for (const c of spec.cgroup) {
      if (!c.startsWith('/')) throw new UsageError(`--cgroup '${c}': a cgroup v2 path from the root, like /system.slice/nginx.service`);
      if (!cgroupRoot) throw new UsageError(`--cgroup '${c}': this host has no cgroup v2 file system mounted`);
      const dir = join(cgroupRoot, c);
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--cgroup '${c}': no such cgroup (${dir} does not exist)`);
    }
    for (const c of spec.container) {
      if (/^[0-9a-f]+$/.test(c) && c.length < 4) throw new UsageError(`--container '${c}': an id prefix of 4 hex digits at least (12 as docker prints them), or a container name`);
    }
    this.pids = new Set(spec.pid);
    this.comms = spec.comm.map(glob);
    this.units = spec.unit.map((u) => glob(u.replace(/\.service$/, '')));
    this.cgroups = spec.cgroup.map((c) => (c.length > 1 ? c.replace(/\/+$/, '') : c));
    this.containers = spec.container.map((c) => ({ idPrefix: /^[0-9a-f]{4,64}$/.test(c) ? c : null, name: glob(c) }));
  }

  /** no selector: every process */
  get all(): boolean {
    return !this.pids.size && !this.comms.length && !this.units.length && !this.cgroups.length && !this.containers.length;
  }

  /** a human summary for the start line: "comm nginx*, unit orders" */
  describe(): string {
    const parts: string[] = [];
    for (const k of ['pid', 'comm', 'unit', 'cgroup', 'container'] as const) if (this.spec[k].length) parts.push(`${k} ${this.spec[k].join(', ')}`);
    return parts.length ? parts.join('; ') : 'the whole system';
  }

  /** comm: the process's name, or how to read it (only when the process is not decided yet) */
  selects(pid: number, comm: string | (() => string), workload: () => Workload): boolean {
    if (this.all) return true;
    let yes = this.cache.get(pid);
    if (yes === undefined) this.cache.set(pid, (yes = this.decide(pid, typeof comm === 'string' ? comm : comm(), workload())));
    return yes;
  }

  private decide(pid: number, comm: string, w: Workload): boolean {
    if (this.pids.has(pid)) return true;
    if (comm && this.comms.some((m) => m(comm))) return true;
    if (w.unit && this.units.some((m) => m(w.unit!))) return true;
    if (this.cgroups.some((c) => c === '/' || w.cgroup === c || w.cgroup.startsWith(`${c}/`))) return true;
    for (const c of this.containers) {
      if (c.idPrefix && w.containerId?.startsWith(c.idPrefix)) return true;
      if (w.container && c.name(w.container)) return true;
    }
    return false;
  }

  /** processes that are gone: a reused pid is decided again */
  forget(live: Set<number>): void {
    for (const pid of this.cache.keys()) if (!live.has(pid)) this.cache.delete(pid);
  }
}

/**
 * Cgroup ids to cgroup v2 paths. The kernel records bpf_get_current_cgroup_id()
 * (Linux 4.18+) when a socket is acquired: the id of the task's cgroup v2
 * directory, which is that directory's inode number on the cgroup2 file system
 * (kernfs, 64-bit ids since Linux 5.5). A process that has exited since is
 * still attributed, as long as its cgroup directory is there, which outlives
 * it by the unit's or the container's life.
 *
 * The cgroup2 mount is found in /proc/self/mountinfo, not assumed: it is
 * /sys/fs/cgroup on a unified host and /sys/fs/cgroup/unified on a hybrid one
 * (this project's VM). Lookups of an id not seen before walk the tree again, at
 * most once per `rescanMs`, bounded in directories and depth: a host with a
 * cgroup per container has thousands, never millions.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** the mount point of the cgroup2 file system, from a mountinfo text (null: none mounted) */
export function cgroup2Mount(mountinfo: string): string | null {
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const fstype = line.slice(dash + 3).split(' ')[0];
    if (fstype !== 'cgroup2') continue;
    const fields = line.slice(0, dash).split(' ');
    if (fields[3] !== '/') continue; // a bind of a subtree (a container's view): not the whole hierarchy
    return fields[4].replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return null;
}

export interface CgroupTreeOptions {
  /** the cgroup2 mount point (default: from /proc/self/mountinfo) */
  root?: string;
  /** directories walked at most per scan */
  maxDirs?: number;
  maxDepth?: number;
  /** an unknown id walks the tree again at most this often */
  rescanMs?: number;
}

export class CgroupTree {
  readonly root: string | null;
  private readonly byId = new Map<bigint, string>();
  private lastScan = -Infinity;
  private readonly maxDirs: number;
  private readonly maxDepth: number;
  private readonly rescanMs: number;
  /** scans that stopped at maxDirs: ids past it resolve as unknown */
  truncatedScans = 0;
  scans = 0;

  constructor(opts: CgroupTreeOptions = {}) {
    this.root = opts.root ?? cgroup2Mount(safeRead('/proc/self/mountinfo') ?? '');
    this.maxDirs = opts.maxDirs ?? 100_000;
    this.maxDepth = opts.maxDepth ?? 32;
    this.rescanMs = opts.rescanMs ?? 1000;
  }

  /** the cgroup v2 path (relative to the hierarchy's root, starting with /) of an id; null: not found (removed, or not v2) */
  pathOf(id: bigint): string | null {
    const hit = this.byId.get(id);
    if (hit !== undefined) return hit;
    if (!this.root || performance.now() - this.lastScan < this.rescanMs) return null;
    this.scan();
    return this.byId.get(id) ?? null;
  }

  /** the id of a cgroup v2 path (its directory's inode), or null */
  idOf(path: string): bigint | null {
    if (!this.root) return null;
    try {
      return statSync(join(this.root, path), { bigint: true }).ino;
    } catch {
      return null;
    }
  }

  private scan(): void {
    this.lastScan = performance.now();
    this.scans++;
    this.byId.clear();
    const root = this.root!;
    const stack: [string, number][] = [['/', 0]];
    let dirs = 0;
    while (stack.length) {
      const [rel, depth] = stack.pop()!;
      let ino: bigint;
      try {
        ino = statSync(join(root, rel), { bigint: true }).ino;
      } catch {
        continue; // removed while walked
      }
      this.byId.set(ino, rel);
      if (++dirs >= this.maxDirs) {
        this.truncatedScans++;
        return;
      }
      if (depth >= this.maxDepth) continue;
      let entries;
      try {
        entries = readdirSync(join(root, rel), { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) if (e.isDirectory()) stack.push([rel === '/' ? `/${e.name}` : `${rel}/${e.name}`, depth + 1]);
    }
  }
}

function safeRead(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Where a process runs, as the agent's `workload` label: a systemd service, a
 * docker container, a Kubernetes container, or the host. Fleets are services
 * and containers, not pids; a label per pid or per session would make series
 * without bound.
 *
 * The input is a cgroup v2 path (the `0::` line of /proc/PID/cgroup, or the
 * directory of the cgroup id the kernel recorded at acquire time, so a process
 * that exited is still attributed). The rules, in order (the same ones
 * coroot-node-agent's cgroup.go and the OpenTelemetry profiler apply; see
 * ../shared/reference/continuous-agents.md):
 *
 *   1. `/`, `/init.scope`, a `(deleted)` cgroup, anything under `/user.slice`
 *      → the host (a user's sessions are not one workload each);
 *   2. a path with `kubepods` → Kubernetes: the container id (64 hex, after
 *      `cri-containerd-`, `crio-`, `docker-` or `/`), the pod UID (`pod…`, `_`
 *      read as `-`); CRI-O's conmon and the pod sandbox are not containers of
 *      the program, they fold into the pod;
 *   3. `/docker/ID` or `…/docker-ID.scope` → docker;
 *   4. `/(system|runtime|reserved|kube).slice/…/NAME.service` → the systemd
 *      unit NAME (`\x2d` and the other \xNN escapes undone);
 *   5. anything else → the host (counted by the caller as unknown).
 *
 * Names (docker's container name, Kubernetes' namespace/pod/container) come
 * from the runtimes' own state on disk when it is there: no API client. Those
 * files are written by another program: every read is bounded, and a file
 * that is missing or does not parse leaves the name out, never the workload.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

export type WorkloadKind = 'host' | 'systemd' | 'docker' | 'kubernetes';

export interface Workload {
  /** the canonical label: `/host`, `/system.slice/NAME.service`, `/docker/NAME`, `/k8s/NS/POD/CONTAINER` */
  workload: string;
  kind: WorkloadKind;
  /** the systemd unit, unescaped (systemd) */
  unit?: string;
  /** 64 hex (docker, kubernetes) */
  containerId?: string;
  /** the pod's UID, with dashes (kubernetes) */
  podUid?: string;
  namespace?: string;
  pod?: string;
  container?: string;
  /** the cgroup path it was resolved from */
  cgroup: string;
}

export const HOST_WORKLOAD = '/host';

/**
 * the cgroup v2 path of a /proc/PID/cgroup text: the `0::` line (null: none, a v1-only host).
 * An agent in a cgroup namespace of its own (a container, cgroupns=private, the default on
 * cgroup v2 since Docker 20.10 and Kubernetes) sees the paths of processes outside it relative
 * to its namespace root: `/../../system.slice/x.service`. Those leading `/..` are dropped: a
 * service or a pod's cgroup then reads as the host names it (the agent's own pod sits under
 * kubepods, so a host service's path climbs to the root; container ids and pod UIDs are matched
 * wherever they are in the path).
 */
export function cgroupV2Path(procCgroup: string): string | null {
  for (const line of procCgroup.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3).trim().replace(/^(?:\/\.\.)+(?=\/|$)/, '') || '/';
  }
  return null;
}

/** systemd's unit name escaping undone: `\x2d` is `-`, any `\xNN` its byte */
export function unescapeUnit(name: string): string {
  return name.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const CONTAINER_ID = /(?:cri-containerd-|crio-|docker-|libpod-|\/)([0-9a-f]{64})(?:\.scope)?$/;
const POD_UID = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;
const DOCKER = /(?:^\/docker\/|\/docker-)([0-9a-f]{64})(?:\.scope)?$/;
const SERVICE = /^\/(?:system|runtime|reserved|kube)\.slice(?:\/[^/]+\.slice)*\/([^/]+)\.service(?:\/|$)/;

/** where the runtimes keep their state (a test points them elsewhere) */
export interface RuntimeState {
  /** docker's containers directory: ID/config.v2.json holds the name */
  docker: string;
  /** containerd's k8s.io task bundles: ID/config.json holds the CRI annotations */
  containerd: string;
  /** CRI-O's container state: ID/userdata/config.json holds the annotations */
  crio: string;
}

export const DEFAULT_RUNTIME_STATE: RuntimeState = {
  docker: '/var/lib/docker/containers',
  containerd: '/run/containerd/io.containerd.runtime.v2.task/k8s.io',
  crio: '/var/lib/containers/storage/overlay-containers',
};

/** A cgroup path as a workload. Pure but for the runtimes' state files, read only to name containers. */
export function workloadOf(cgroup: string, state: RuntimeState = DEFAULT_RUNTIME_STATE): Workload {
  const host: Workload = { workload: HOST_WORKLOAD, kind: 'host', cgroup };
  if (cgroup === '/' || cgroup.endsWith('(deleted)') || cgroup === '/init.scope' || cgroup.startsWith('/user.slice')) return host;

  if (cgroup.includes('kubepods')) {
    const podUid = POD_UID.exec(cgroup)?.[1].replace(/_/g, '-');
    const id = cgroup.includes('crio-conmon-') ? undefined : CONTAINER_ID.exec(cgroup)?.[1];
    const names = id ? (readCriNames(join(state.containerd, id, 'config.json')) ?? readCriNames(join(state.crio, id, 'userdata/config.json'))) : null;
    if (names?.sandbox) {
      // the pod's pause container: the pod, not a container of the program
      return { workload: `/k8s/${names.namespace}/${names.pod}`, kind: 'kubernetes', podUid, namespace: names.namespace, pod: names.pod, cgroup };
    }
    if (names?.namespace && names.pod && names.container) {
      const cron = /-\d{8}-[a-z0-9]{5}$/.test(names.pod); // a CronJob's pods: one workload, not one per run
      const pod = cron ? names.pod.replace(/-\d{8}-[a-z0-9]{5}$/, '') : names.pod;
      return { workload: `/${cron ? 'k8s-cronjob' : 'k8s'}/${names.namespace}/${pod}/${names.container}`, kind: 'kubernetes', containerId: id, podUid, namespace: names.namespace, pod: names.pod, container: names.container, cgroup };
    }
    // no runtime state readable: the pod and container ids still tell one workload from another
    if (podUid || id) return { workload: `/k8s/pod/${podUid ?? 'unknown'}${id ? `/${id.slice(0, 12)}` : ''}`, kind: 'kubernetes', containerId: id, podUid, cgroup };
    return host;
  }

  const docker = DOCKER.exec(cgroup);
  if (docker) {
    const id = docker[1];
    const name = readDockerName(join(state.docker, id, 'config.v2.json'));
    return { workload: `/docker/${name ?? id.slice(0, 12)}`, kind: 'docker', containerId: id, container: name ?? undefined, cgroup };
  }

  const service = SERVICE.exec(cgroup);
  if (service) {
    const unit = unescapeUnit(service[1]);
    return { workload: `/system.slice/${unit}.service`, kind: 'systemd', unit, cgroup };
  }
  return host;
}

/** the most of a runtime's state file read: a container's config is a few KiB; a bigger file is not one */
const STATE_FILE_MAX = 1 << 20;

/** a file's text, at most max bytes; null when it cannot be read or is longer */
export function readBounded(path: string, max = STATE_FILE_MAX): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.allocUnsafe(max + 1);
    let n = 0;
    for (let got = 1; got > 0 && n <= max; n += got) got = readSync(fd, buf, n, max + 1 - n, null);
    return n > max ? null : buf.toString('utf8', 0, n);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function parseJson(path: string): Record<string, unknown> | null {
  const text = readBounded(path);
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 && v.length <= 253 ? v : undefined);

/** docker's config.v2.json: `Name` is "/NAME" */
function readDockerName(path: string): string | null {
  const name = str(parseJson(path)?.Name);
  return name ? name.replace(/^\//, '') : null;
}

interface CriNames {
  namespace?: string;
  pod?: string;
  container?: string;
  /** the pod's sandbox (pause) container */
  sandbox: boolean;
}

/** the OCI bundle's annotations, as containerd's CRI plugin and CRI-O write them */
function readCriNames(path: string): CriNames | null {
  const a = parseJson(path)?.annotations;
  if (!a || typeof a !== 'object') return null;
  const ann = a as Record<string, unknown>;
  const type = str(ann['io.kubernetes.cri.container-type']) ?? str(ann['io.kubernetes.cri-o.ContainerType']);
  return {
    namespace: str(ann['io.kubernetes.cri.sandbox-namespace']) ?? str(ann['io.kubernetes.pod.namespace']),
    pod: str(ann['io.kubernetes.cri.sandbox-name']) ?? str(ann['io.kubernetes.pod.name']),
    container: str(ann['io.kubernetes.cri.container-name']) ?? str(ann['io.kubernetes.container.name']),
    sandbox: type === 'sandbox',
  };
}

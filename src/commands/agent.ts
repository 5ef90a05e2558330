/**
 * `tcptrace agent`: runs until stopped, traces the whole host (or what --pid
 * names), and serves the sockets each process holds in CLOSE_WAIT as
 * Prometheus metrics, labelled by workload (src/agent/).
 */
import { createWriteStream, openSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LeakEvents } from '../agent/events.js';
import { TcptraceError } from '../errors.js';
import { Analyzer } from '../analysis/analyzer.js';
import { AgentMetrics, CLOSE_WAIT_BUCKETS_S, CLOSE_WAIT_KERNEL_BOUNDS } from '../agent/metrics.js';
import { AgentServer, parseListen, type ListenAddress } from '../agent/server.js';
import { closeWaitProfile } from '../agent/profile.js';
import { CgroupTree } from '../agent/cgroups.js';
import { checkNumber, readConfigFile, type AgentSettings } from '../agent/config.js';
import { Selection } from '../agent/selection.js';
import { parsePushUrl, ProfilePusher } from '../agent/push.js';
import { ExitedProcesses } from '../agent/forget.js';
import { logger } from '../log.js';
import { monotonicNs } from '../sys/host.js';
import { parsePositive, selectorOptions, type SelectorOpts } from './options.js';
import { describeTargets, runSession } from './run-session.js';

const log = logger('agent');

function listenOption(v: string): ListenAddress {
  const a = parseListen(v);
  if (!a) throw new InvalidArgumentError(`'${v}' is not HOST:PORT (e.g. 127.0.0.1:9465, [::1]:9465, 0.0.0.0:9465)`);
  return a;
}

/** --close-wait-min: 0 (at once) to 10 s (the kernel's histogram bounds reach 30 s: room for the sweep) */
function closeWaitMin(v: string): number {
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 10) throw new InvalidArgumentError(`'${v}' is not a number of seconds from 0 to 10`);
  return n;
}

/** the kernel's CLOSE_WAIT minimum: --close-wait-min, but never past --leak-after (a leak is reported on time) */
function lingerMs(closeWaitMinS: number, leakAfterS: number): number {
  return Math.min(closeWaitMinS, leakAfterS) * 1000;
}

function wholeAtLeastOne(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`'${v}' is not a whole number >= 1`);
  return Number(v);
}

interface AgentOpts extends SelectorOpts {
  listen: ListenAddress;
  leakAfter: number;
  maxWorkloads: number;
  seriesGrace: number;
  events?: string;
  eventsGrowth: number;
  comm?: string[];
  unit?: string[];
  cgroup?: string[];
  container?: string[];
  config?: string;
  pyroscopeUrl?: URL;
  pushInterval: number;
  forgetInterval: number;
  kernelSummary: boolean;
  closeWaitMin: number;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** the settings a reload may change, from the command line */
function flagSettings(opts: AgentOpts): AgentSettings {
  return {
    leakAfterS: opts.leakAfter,
    eventsGrowth: opts.eventsGrowth,
    seriesGraceS: opts.seriesGrace,
    selectors: { pid: opts.pid ?? [], comm: opts.comm ?? [], unit: opts.unit ?? [], cgroup: opts.cgroup ?? [], container: opts.container ?? [] },
  };
}

/** the settings in force: the command line's, under --config FILE's (throws on a bad file or value) */
function loadSettings(opts: AgentOpts, cgroupRoot: string | null): { settings: AgentSettings; selection: Selection } {
  const settings = opts.config ? readConfigFile(opts.config, flagSettings(opts)) : flagSettings(opts);
  return { settings, selection: new Selection(settings.selectors, cgroupRoot) };
}

/** --events FILE: opened (appended to) before anything attaches, so a bad path is a clear error */
function eventsOut(file: string | undefined): Writable {
  if (!file) return process.stdout;
  try {
    return createWriteStream(file, { flags: 'a', fd: openSync(file, 'a') });
  } catch (err) {
    throw new TcptraceError('CANNOT_WRITE', `cannot write leak events to ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** the flag's rule is the config file's (src/agent/config.ts), as a commander error */
function growthFactor(v: string): number {
  try {
    return checkNumber('events-growth', v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^events-growth: /, ''));
  }
}

export function agentCommand(): Command {
  const cmd = new Command('agent')
    .description('run continuously: serve the sockets every process holds in CLOSE_WAIT as Prometheus metrics, by workload')
    .addHelpText(
      'after',
      `
Endpoints (on --listen, loopback by default: process names are sensitive):
  GET /metrics     Prometheus text: tcptrace_close_wait_sockets, tcptrace_leaked_sockets,
                   tcptrace_close_wait_oldest_seconds {workload, pid, comm};
                   tcptrace_process_open_fds, _max_fds; tcptrace_active_closes_total,
                   tcptrace_sockets {workload, state}; tcptrace_workload_info; the agent's
                   own health (events, lost, missed in kernel, dropped) and process metrics
  GET /debug/pprof/close_wait
                   pprof profile (gzip): sockets leaked (default), in CLOSE_WAIT, in use,
                   and active closes (TIME_WAIT makers), per process and code path;
                   go tool pprof, Pyroscope and Parca read it
  GET /-/healthy   200 while the agent serves
  GET /-/ready     200 once attached and the sockets that predate it are seeded
  POST /-/reload   re-read --config (thresholds and selectors), from this host only; SIGHUP
                   does the same. A file that does not parse changes nothing and says why
                   (400, and tcptrace_config_last_reload_successful 0)
Selectors (repeatable; a process is reported when any names it; none: every process):
  --pid 4242  --comm 'java*'  --unit orders  --cgroup /system.slice/orders.service
  --container 3f2a9c1b7d4e (an id prefix) or --container 'api-*' (a container name)
The kernel traces the whole host with any selector but --pid alone, so a process that
starts later is seen, and a reload can change what is reported.
Push: --pyroscope-url http://pyroscope:4040 posts the same profile to Pyroscope's
/ingest every --push-interval (app tcptrace{host=...}; each sample type averaged).
Leak events, one JSON line each (stdout, or --events FILE): leak_started when a code
path's sockets pass --leak-after, leak_grew at --events-growth times the last size,
leak_ended when none is left (closed, or the process exited).
A workload is where the process runs, from its cgroup: /system.slice/NAME.service,
/docker/NAME, /k8s/NAMESPACE/POD/CONTAINER, else /host.
Examples:
  tcptrace agent                                   the whole host, on 127.0.0.1:9465
  tcptrace agent --listen 0.0.0.0:9465             served beyond the host
  tcptrace agent --pid 4242 --leak-after 30
  curl -s 127.0.0.1:9465/metrics | grep close_wait
  go tool pprof -top http://127.0.0.1:9465/debug/pprof/close_wait
CLOSE_WAIT that does not last: a socket reaches the agent once it has stayed in CLOSE_WAIT
--close-wait-min (1 s); one its program closes sooner (a client that closed first, every
connection of a busy server) is only counted in the kernel, in the CLOSE_WAIT counters,
transitions and duration histogram. A leak's age counts from when it entered CLOSE_WAIT.
Stacks are captured for every process (the point is naming the code path); --no-stacks
turns attribution off for the lowest overhead.`,
    )
    .addOption(new Option('--listen <host:port>', 'address of the HTTP endpoints').argParser(listenOption).default({ host: '127.0.0.1', port: 9465 }, '127.0.0.1:9465'))
    .addOption(new Option('--leak-after <seconds>', 'a socket in CLOSE_WAIT this long, and not closed, is leaked').argParser(parsePositive).default(5))
    .addOption(new Option('--max-workloads <n>', 'workloads with series of their own; the rest fold into workload="~other"').argParser(wholeAtLeastOne).default(500))
    .addOption(new Option('--series-grace <seconds>', "a process's series stay at 0 this long once it holds no CLOSE_WAIT socket (closed, or exited), then go").argParser(parsePositive).default(60))
    .addOption(new Option('--events <file>', 'write the leak events (JSON lines) to FILE, appended, instead of stdout'))
    .addOption(new Option('--events-growth <factor>', 'a leak_grew event when a leak group reaches this many times its last reported size').argParser(growthFactor).default(2))
    .addOption(new Option('--comm <glob>', 'report processes whose name (comm, 15 characters) matches (repeatable)').argParser(collect))
    .addOption(new Option('--unit <glob>', 'report processes of the systemd unit (NAME or NAME.service; repeatable)').argParser(collect))
    .addOption(new Option('--cgroup <path>', 'report processes in the cgroup v2 subtree (/system.slice/x.service; repeatable)').argParser(collect))
    .addOption(new Option('--container <id|glob>', 'report processes of the container: an id prefix (4+ hex digits) or a name glob (repeatable)').argParser(collect))
    .addOption(new Option('--pyroscope-url <url>', "also push the profile to Pyroscope's /ingest (pprof) every --push-interval").argParser(parsePushUrl))
    .addOption(new Option('--push-interval <seconds>', 'seconds between profile pushes').argParser(parsePositive).default(60))
    .addOption(new Option('--no-kernel-summary', 'send every socket event to the agent, not only those of sockets that enter CLOSE_WAIT or LISTEN (costlier; complete transition counts)'))
    .addOption(
      new Option('--close-wait-min <seconds>', 'a socket reaches the agent once it stays in CLOSE_WAIT this long (at most --leak-after); shorter stays are counted in the kernel. 0: every one at once (costlier under churn)')
        .argParser(closeWaitMin)
        .default(1),
    )
    .addOption(new Option('--forget-interval <seconds>', 'how often what is kept of exited processes (stacks, history) is dropped').argParser(parsePositive).default(10))
    .addOption(new Option('--config <file>', 'YAML settings over the flags (leak-after, events-growth, series-grace, pid, comm, unit, cgroup, container); SIGHUP and POST /-/reload read it again'));
  // --duration stays: a bounded run (and the tests) stop by themselves
  for (const o of selectorOptions()) cmd.addOption(o);
  cmd.action(async (opts: AgentOpts) => {
    const cgroupRoot = new CgroupTree({ rescanMs: 0 }).root;
    // a bad selector or config file is a usage error before anything attaches
    const start = loadSettings(opts, cgroupRoot);
    // top: leak groups the events follow (the largest first)
    const analyzer = new Analyzer({ leakAfterMs: start.settings.leakAfterS * 1000, top: 1000 });
    const metrics = new AgentMetrics(analyzer, { maxWorkloads: opts.maxWorkloads, seriesGraceS: start.settings.seriesGraceS, selection: start.selection });
    const selects = (pid: number, comm: string) => metrics.selects(pid, comm);
    const events = new LeakEvents(analyzer, (pid) => metrics.workloadOf(pid).workload, eventsOut(opts.events), start.settings.eventsGrowth, selects);
    let live: { setCloseWaitMin(ms: number): void } | null = null; // the session, once it runs
    const reload = (how: string): { ok: boolean; message: string } => {
      if (!opts.config) {
        metrics.noteReload(true);
        return { ok: true, message: 'no --config file: the command line settings stay' };
      }
      try {
        const { settings, selection } = loadSettings(opts, cgroupRoot);
        analyzer.options.leakAfterMs = settings.leakAfterS * 1000;
        events.growth = settings.eventsGrowth;
        metrics.configure({ seriesGraceS: settings.seriesGraceS, selection });
        live?.setCloseWaitMin(lingerMs(opts.closeWaitMin, settings.leakAfterS));
        metrics.noteReload(true);
        const message = `reloaded ${opts.config}: leak-after ${settings.leakAfterS} s, events-growth ${settings.eventsGrowth}, series-grace ${settings.seriesGraceS} s; reporting ${selection.describe()}`;
        log.info({ how }, message);
        return { ok: true, message };
      } catch (err) {
        metrics.noteReload(false);
        const message = `reload refused, the running settings stay: ${(err as Error).message}`;
        log.error({ how }, message);
        return { ok: false, message };
      }
    };
    const onHup = () => void reload('SIGHUP');
    const profile = () => closeWaitProfile({ analyzer, workloadOf: (pid) => metrics.workloadOf(pid), nowNs: Number(monotonicNs()), wallNs: BigInt(Date.now()) * 1_000_000n, selects, activeCloses: { entries: metrics.activeCloses.entries(), comm: (pid) => metrics.activeCloses.comm(pid) } });
    const server = new AgentServer({ metrics, profile, reload: () => reload('POST /-/reload') });
    const pusher = opts.pyroscopeUrl ? new ProfilePusher(opts.pyroscopeUrl, opts.pushInterval, profile) : null;
    metrics.pushes = pusher?.pushes ?? null;
    // listen first: a port in use is a clear error before anything attaches
    const at = await server.listen(opts.listen);
    let eventTimer: NodeJS.Timeout | undefined;
    let forgetTimer: NodeJS.Timeout | undefined;
    try {
      // attribution is what the agent is for: stacks on unless --no-stacks (trace's whole-system default is off)
      // --pid alone filters in the kernel (cheapest); any other selector or a --config traces the whole host
      const kernelPids = opts.pid && !opts.config && start.selection.spec.comm.length + start.selection.spec.unit.length + start.selection.spec.cgroup.length + start.selection.spec.container.length === 0;
      process.on('SIGHUP', onHup);
      // summary: a socket stays in the kernel until it enters CLOSE_WAIT or LISTEN (the agent's
      // metrics are about those), unless --no-kernel-summary; it needs the kernel's owners (stacks)
      await runSession({ ...opts, pid: kernelPids ? opts.pid : undefined, stacks: opts.stacks ?? true, summary: opts.kernelSummary, cgroups: true, heldCounts: true, closeWaitMinMs: lingerMs(opts.closeWaitMin, start.settings.leakAfterS), closeWaitBoundsS: CLOSE_WAIT_BUCKETS_S.slice(0, CLOSE_WAIT_KERNEL_BOUNDS) }, [analyzer], (s) => {
        live = s;
        metrics.mapFillSource = () => s.mapFill();
        server.ready = true;
        pusher?.start();
        metrics.closesSource = (drop) => s.activeCloses(drop);
        metrics.heldCountsSource = (drop) => s.heldCounts(drop);
        metrics.heldSource = () => s.heldByProcess();
        const tree = new CgroupTree();
        metrics.kernelCgroup = (pid) => {
          const id = s.cgroupOf(pid);
          return id === null ? null : tree.pathOf(id);
        };
        const exited = new ExitedProcesses(analyzer, s, [metrics.activeCloses, metrics.heldCounts]);
        metrics.processMemory = exited;
        forgetTimer = setInterval(() => {
          const n = exited.sweep();
          if (n) log.debug({ processes: n }, 'forgot exited processes');
        }, opts.forgetInterval * 1000);
        eventTimer = setInterval(() => events.check(Number(monotonicNs())), 1000);
        log.info({ listen: `${at.host}:${at.port}`, mode: s.info.attach.mode }, 'ready');
        const what = kernelPids ? describeTargets(opts) : start.selection.all ? 'the whole system' : `the whole system, reporting ${start.selection.describe()}`;
        process.stderr.write(`tcptrace: agent tracing ${what} (attach mode ${s.info.attach.mode}); metrics on http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}/metrics; Ctrl-C to stop\n`);
      });
    } finally {
      process.off('SIGHUP', onHup);
      clearInterval(eventTimer);
      clearInterval(forgetTimer);
      await pusher?.stop();
      await server.close();
    }
  });
  return cmd;
}

/**
 * `tcptrace agent`: runs until stopped, traces the whole host (or what --pid
 * names), and serves the sockets each process holds in CLOSE_WAIT as
 * Prometheus metrics, labelled by workload (src/agent/).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { Analyzer } from '../analysis/analyzer.js';
import { AgentMetrics } from '../agent/metrics.js';
import { AgentServer, parseListen, type ListenAddress } from '../agent/server.js';
import { logger } from '../log.js';
import { parsePositive, selectorOptions, type SelectorOpts } from './options.js';
import { describeTargets, runSession } from './run-session.js';

const log = logger('agent');

function listenOption(v: string): ListenAddress {
  const a = parseListen(v);
  if (!a) throw new InvalidArgumentError(`'${v}' is not HOST:PORT (e.g. 127.0.0.1:9465, [::1]:9465, 0.0.0.0:9465)`);
  return a;
}

function wholeAtLeastOne(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`'${v}' is not a whole number >= 1`);
  return Number(v);
}

interface AgentOpts extends SelectorOpts {
  listen: ListenAddress;
  leakAfter: number;
  maxWorkloads: number;
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
                   tcptrace_sockets {workload, state}; tcptrace_workload_info; the agent's
                   own health (events, lost, missed in kernel, dropped) and process metrics
  GET /-/healthy   200 while the agent serves
  GET /-/ready     200 once attached and the sockets that predate it are seeded
A workload is where the process runs, from its cgroup: /system.slice/NAME.service,
/docker/NAME, /k8s/NAMESPACE/POD/CONTAINER, else /host.
Examples:
  tcptrace agent                                   the whole host, on 127.0.0.1:9465
  tcptrace agent --listen 0.0.0.0:9465             served beyond the host
  tcptrace agent --pid 4242 --leak-after 30
  curl -s 127.0.0.1:9465/metrics | grep close_wait`,
    )
    .addOption(new Option('--listen <host:port>', 'address of the HTTP endpoints').argParser(listenOption).default({ host: '127.0.0.1', port: 9465 }, '127.0.0.1:9465'))
    .addOption(new Option('--leak-after <seconds>', 'a socket in CLOSE_WAIT this long, and not closed, is leaked').argParser(parsePositive).default(5))
    .addOption(new Option('--max-workloads <n>', 'workloads with series of their own; the rest fold into workload="~other"').argParser(wholeAtLeastOne).default(500));
  // --duration stays: a bounded run (and the tests) stop by themselves
  for (const o of selectorOptions()) cmd.addOption(o);
  cmd.action(async (opts: AgentOpts) => {
    const analyzer = new Analyzer({ leakAfterMs: opts.leakAfter * 1000, top: 10 });
    const metrics = new AgentMetrics(analyzer, { maxWorkloads: opts.maxWorkloads });
    const server = new AgentServer(metrics);
    // listen first: a port in use is a clear error before anything attaches
    const at = await server.listen(opts.listen);
    try {
      await runSession(opts, [analyzer], (s) => {
        server.ready = true;
        log.info({ listen: `${at.host}:${at.port}`, mode: s.info.attach.mode }, 'ready');
        process.stderr.write(`tcptrace: agent tracing ${describeTargets(opts)} (attach mode ${s.info.attach.mode}); metrics on http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}/metrics; Ctrl-C to stop\n`);
      });
    } finally {
      await server.close();
    }
  });
  return cmd;
}

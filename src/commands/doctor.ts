/**
 * `tcptrace doctor [--pid PID ...]`: one-shot diagnosis of connection exhaustion
 * (fds, CLOSE_WAIT, ephemeral ports, TIME_WAIT, accept queues) from sock_diag
 * and /proc, no BPF. Exit code = the worst verdict: 0 OK, 1 WARN, 2 CRIT.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { measure, type Sample } from '../doctor/measure.js';
import { buildReport } from '../doctor/report.js';
import { renderText, renderWatchRound } from '../doctor/render.js';
import { logger } from '../log.js';

const log = logger('doctor');

interface DoctorOptions {
  pid?: number[];
  format: 'text' | 'json';
  sample: number;
  watch?: number;
  count?: number;
  details: boolean;
}

function pidArg(value: string, prev: number[] | undefined): number[] {
  if (!/^[1-9][0-9]*$/.test(value) || Number(value) > 4194304) throw new InvalidArgumentError(`not a pid: ${value}`);
  return [...(prev ?? []), Number(value)];
}

function seconds(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^[0-9]*\.?[0-9]+$/.test(value) || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected seconds between ${min} and ${max}, got ${value}`);
    }
    return n;
  };
}

function positiveInt(value: string): number {
  if (!/^[1-9][0-9]*$/.test(value)) throw new InvalidArgumentError(`expected a positive integer, got ${value}`);
  return Number(value);
}

export const DOCTOR_HELP = `
What it checks (thresholds in docs/doctor.md):
  fd-limit          open fds vs RLIMIT_NOFILE soft limit, per process      WARN 80%  CRIT 95%
  close-wait        CLOSE_WAIT sockets per process (peer closed, program did not)
                                                                           WARN 1 lasting the window
                                                                           CRIT 100, or 10% of its fds
  ephemeral-ports   local ports in use per destination vs ip_local_port_range
                    (TIME_WAIT ports that tcp_tw_reuse lets connect() take are not counted)
                                                                           WARN 50%  CRIT 90%
  time-wait         TIME_WAIT sockets vs tcp_max_tw_buckets, per netns     WARN 50%  CRIT 90%
  accept-queue      accept queue vs backlog, per listener                  WARN 50%  CRIT full
  listen-overflows  ListenOverflows during the window, per netns           WARN >0   CRIT 10/s
  file-max          fs.file-nr vs fs.file-max                              WARN 80%  CRIT 95%
Each network namespace is examined on its own (a pid in a container inside its netns).
Without root, other users' processes and other network namespaces are not visible;
the report lists what it could not see.

Exit codes (doctor):
  0   every check OK
  1   at least one WARN
  2   at least one CRIT
  64  bad usage
  67  a --pid does not exist
With --watch, the exit code is that of the last round.`;

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('diagnose connection exhaustion now: fds, CLOSE_WAIT, ephemeral ports, TIME_WAIT, accept queues (no BPF needed)')
    .option('--pid <pid...>', 'examine only these processes (and their network namespaces); repeatable', pidArg)
    .addOption(new Option('--format <format>', 'output format (json: schema tcptrace.doctor/1)').choices(['text', 'json']).default('text'))
    .option('--sample <seconds>', 'seconds between the two measurements that give deltas and rates (0: one snapshot)', seconds(0, 60), 1)
    .option('--watch <seconds>', 're-measure every <seconds>, showing what changed (rates of new CLOSE_WAIT, TIME_WAIT)', seconds(0.1, 3600))
    .option('--count <n>', 'with --watch: stop after <n> rounds (default: until interrupted)', positiveInt)
    .option('--no-details', 'text: only the verdict table, what was not seen and the findings')
    .addHelpText('after', DOCTOR_HELP)
    .action(async (opts: DoctorOptions) => {
      const pids = opts.pid ? [...new Set(opts.pid)] : null;
      const measureOpts = { pids: pids ?? undefined };
      const emit = (text: string): void => void process.stdout.write(text);

      let prev: Sample | undefined;
      if (opts.sample > 0) {
        prev = measure(measureOpts);
        await sleep(opts.sample * 1000);
      }
      let cur = measure(measureOpts);
      let report = buildReport(cur, prev, { pids, round: 1 });
      if (opts.format === 'json') emit(opts.watch ? JSON.stringify(report) + '\n' : JSON.stringify(report, null, 2) + '\n');
      else emit(renderText(report, { details: opts.details }));
      process.exitCode = report.exitCode;
      if (opts.watch === undefined) return;

      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        for (let round = 2; opts.count === undefined || round <= opts.count; round++) {
          try {
            await sleep(opts.watch * 1000, undefined, { signal: stop.signal });
          } catch {
            break; // interrupted: keep the last round's exit code
          }
          prev = cur;
          cur = measure(measureOpts);
          report = buildReport(cur, prev, { pids, round });
          if (opts.format === 'json') emit(JSON.stringify(report) + '\n');
          else emit('\n' + renderWatchRound(report));
          process.exitCode = report.exitCode;
          log.debug({ round, status: report.status }, 'watch round');
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

/** `tcptrace [--pid PID ...]`: live transitions, then the report. The default command. */
import { Command, Option } from 'commander';
import { Analyzer } from '../analysis/analyzer.js';
import { EXIT } from '../errors.js';
import { RecordWriter } from '../record/writer.js';
import { LIVE_HEADER, printLiveLines, renderLeaks, renderReport } from '../report/text.js';
import { monotonicNs } from '../sys/host.js';
import type { TraceSink } from '../trace/types.js';
import { analysisOptions, formatOption, selectorOptions, type AnalysisOpts, type SelectorOpts } from './options.js';
import { describeTargets, runSession } from './run-session.js';
import { liveExportOption, startLiveExport } from './export.js';

interface TraceOpts extends SelectorOpts, AnalysisOpts {
  format: 'text' | 'json';
  quiet: boolean;
  record?: string;
  export?: string;
  kernelSummary: boolean;
}

export function traceCommand(): Command {
  const cmd = new Command('trace')
    .description('trace TCP state transitions live, and name the code paths that leave sockets in CLOSE_WAIT (default command)')
    .addHelpText(
      'after',
      `
Examples:
  tcptrace --pid 4242                    follow pid 4242's sockets until Ctrl-C
  tcptrace --pid 4242 --duration 30 --quiet
                                         no live lines; only the report after 30 s
  tcptrace -p 4242 --interval 60 --quiet the leak report every minute
  tcptrace -p 4242 -f json > report.json one JSON document at exit (docs/report-json.md)
  tcptrace -p 4242 --record run.tcptrace also write a recording for \`tcptrace report\`
  tcptrace -p 4242 -d 60 --export run.pftrace
                                         and the socket timelines for ui.perfetto.dev

Live columns: seconds since start, owner pid, comm and fd (the owner, even when the
kernel changed the state in softirq on behalf of another process), local and remote
address, old -> new state, and how long the socket spent in the old state.

Summary: with --pid and no live lines (--quiet or -f json) nor --record, the kernel
keeps each socket to itself until it enters CLOSE_WAIT (or LISTEN), counting its
transitions; the report is the same, at a fraction of the cost under churn.

Leaks: sockets in CLOSE_WAIT for --leak-after seconds and not closed, grouped by the
stack that acquired them (accept/connect) and the read that saw EOF, like memleak.
Names need symbols: Node wants NODE_OPTIONS="--perf-basic-prof-only-functions
--interpreted-frames-native-stack"; libc lines need libc6-dbg. HotSpot (JDK 17+) needs nothing: Java
frames are read from the JVM's memory (compiled ones without their line yet). CPython 3.11-3.13 needs nothing: the
kernel copies each capture's Python frames and tcptrace names them (function, file, line)
from the process's memory, with no flag and no restart.`,
    );
  for (const o of selectorOptions()) cmd.addOption(o);
  for (const o of analysisOptions()) cmd.addOption(o);
  cmd
    .addOption(formatOption())
    .addOption(new Option('-q, --quiet', 'no live lines, only the final report').default(false))
    .addOption(new Option('-w, --record <file>', 'also record the trace to a file (read it with `tcptrace report`)'))
    .addOption(liveExportOption())
    .addOption(new Option('--no-kernel-summary', 'with --quiet or -f json, send every event to the agent instead of keeping sockets that never enter CLOSE_WAIT in the kernel'))
    .action(async (opts: TraceOpts) => {
      const analyzer = new Analyzer({ leakAfterMs: opts.leakAfter * 1000, top: opts.top });
      const flush = opts.format === 'text' && !opts.quiet ? printLiveLines(analyzer) : () => {};
      const sinks: TraceSink[] = [analyzer];
      if (opts.record) sinks.push(new RecordWriter(opts.record));
      const exported = opts.export ? await startLiveExport(opts.export, opts) : null;
      if (exported) sinks.push(exported.sink);
      let ticker: NodeJS.Timeout | undefined;
      // nothing reads the sockets that never matter to the report: the kernel keeps them (docs/report-json.md "summary")
      const summary = opts.kernelSummary && (opts.quiet || opts.format === 'json') && !opts.record && !exported;
      const end = await runSession({ ...opts, summary }, sinks, (s) => {
        process.stderr.write(`tcptrace: tracing ${describeTargets(opts)} (attach mode ${s.info.attach.mode}); Ctrl-C to stop\n`);
        if (opts.format === 'text' && !opts.quiet) process.stdout.write(LIVE_HEADER + '\n');
        if (opts.interval && opts.format === 'text') {
          ticker = setInterval(() => {
            flush();
            process.stdout.write('\n' + renderLeaks(analyzer.snapshot(monotonicNs())) + '\n');
          }, opts.interval * 1000);
        }
      });
      if (ticker) clearInterval(ticker);
      flush();
      const report = analyzer.result();
      if (opts.format === 'json') process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else process.stdout.write((opts.quiet ? '' : '\n') + renderReport(report));
      await exported?.done();
      if (end.failure) throw end.failure; // the live report is out; the recording stopped at the error
      if (end.reason === 'target-exited') {
        process.stderr.write(`tcptrace: the traced process exited (pid ${end.exitedPids.join(', ')}); the report covers the trace until then\n`);
        process.exitCode = EXIT.TARGET_EXITED;
      }
    });
  return cmd;
}

/** `tcptrace export FILE`: a recording's socket timelines as a Perfetto trace, Chrome JSON or an HTML page. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { createExport, EXPORT_FORMATS, exportTarget, type Export, type ExportTarget } from '../export/formats.js';
import { replay } from '../record/reader.js';
import { damageWarning } from './report.js';
import { UsageError } from '../errors.js';
import { analysisOptions, parsePid, type AnalysisOpts } from './options.js';

interface ExportOpts extends AnalysisOpts {
  format?: string;
  output?: string;
  pid?: number[];
  from?: number;
  to?: number;
  socketTracks: number;
  quiet: boolean;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`'${v}' is not a number of seconds >= 0`);
  return n;
}

function parseTracks(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`'${v}' is not a whole number`);
  return Number(v);
}

/** --socket-tracks: the default keeps a 100,000-socket recording usable in ui.perfetto.dev */
export const DEFAULT_SOCKET_TRACKS = 2000;

export function socketTracksOption(): Option {
  return new Option('--socket-tracks <n>', 'sockets drawn on a track of their own (leaked first, then late closes, listeners, open); the rest are packed into lanes').argParser(parseTracks).default(DEFAULT_SOCKET_TRACKS);
}

export function exportCommand(): Command {
  const cmd = new Command('export')
    .description('export a recording\'s socket timelines: Perfetto (ui.perfetto.dev), Chrome JSON, or a self-contained HTML page')
    .argument('<file>', 'recording made by `tcptrace record` or `tcptrace --record`')
    .addOption(new Option('-f, --format <format>', 'perfetto (default), chrome-json or html; by default taken from -o\'s extension').choices(EXPORT_FORMATS))
    .addOption(new Option('-o, --output <file>', 'where to write (.pftrace, .pftrace.gz, .json, .json.gz, .html; - for stdout); default: FILE with the format\'s extension'))
    .addOption(new Option('-p, --pid <pid>', 'only this process\'s sockets (repeatable)').argParser(parsePid))
    .addOption(new Option('--from <seconds>', 'start the picture this many seconds into the recording').argParser(parseSeconds))
    .addOption(new Option('--to <seconds>', 'end it this many seconds into the recording').argParser(parseSeconds))
    .addOption(socketTracksOption())
    .addOption(new Option('-q, --quiet', 'no progress line and no summary on stderr').default(false))
    .addOption(analysisOptions()[0])
    .addOption(analysisOptions()[2])
    .addHelpText(
      'after',
      `
Each socket is a lane across time, grouped by process and by the code path that
acquired it: its life a slice, its states nested slices, its calls (accept, connect,
close, shutdown, first write, EOF read) instants carrying the stack captured there.
A socket still open at the end has no end: it runs off the right edge, as a leak
should. Leak groups (as in \`tcptrace report\`, --leak-after and --top alike) are
tracks of their own, above the sockets that closed late, the listeners and the rest,
which are packed into lanes. Counter tracks count each process's sockets in
CLOSE_WAIT, ESTABLISHED, TIME_WAIT (derived: the kernel's timewait socket is not
traced, so 60 s after an active close) and open.
Examples:
  tcptrace export run.tcptrace                       run.pftrace: open it in https://ui.perfetto.dev
  tcptrace export run.tcptrace -o run.pftrace.gz     the same, gzipped (Perfetto reads it as is)
  tcptrace export run.tcptrace -f html               run.html: one page, opens from disk
  tcptrace export run.tcptrace -f chrome-json --pid 4242 --from 60 --to 120
  tcptrace --pid 4242 --duration 60 --export run.pftrace   straight from a live trace`,
    )
    .action(async (file: string, opts: ExportOpts, command: Command) => {
      if (opts.from !== undefined && opts.to !== undefined && opts.to <= opts.from) throw new UsageError(`--to ${opts.to} is not after --from ${opts.from}`);
      const target = exportTarget(opts.format, opts.output, file);
      if (target.path === file) throw new UsageError(`the export would overwrite the recording ${file}: name another file with -o`);
      const exp = await createExport(target, { leakAfterMs: opts.leakAfter * 1000, top: opts.top, pids: opts.pid ?? null, fromS: opts.from, toS: opts.to, socketTracks: opts.socketTracks });
      // settings given to `tcptrace record` apply unless this command line overrides them
      const given = (name: string) => command.getOptionValueSource(name) === 'cli';
      exp.builder.analyzer.onBegin = (info) => {
        if (!info.analysis) return;
        if (!given('leakAfter')) exp.builder.analyzer.options.leakAfterMs = info.analysis.leakAfterMs;
        if (!given('top')) exp.builder.analyzer.options.top = info.analysis.top;
      };
      const progress = opts.quiet || !process.stderr.isTTY ? null : new ProgressLine(file);
      const t0 = performance.now();
      const r = await replay(file, exp.builder, {
        onProgress: progress ? (p) => progress.update(p.bytesRead, p.totalBytes, p.records) : undefined,
        drain: exp.output ? () => exp.output!.drain() : undefined,
      });
      await exp.output?.close();
      progress?.done();
      if (opts.quiet) return;
      const report = exp.builder.analyzer.result();
      const s = exp.summary();
      const warnings = [...s.warnings];
      if (r.interrupted) warnings.push('the recording has no end frame (the recorder was interrupted): the picture ends at its last event');
      if (r.truncatedBytes) warnings.push(`${r.truncatedBytes} bytes of a partial last frame were ignored`);
      if (r.damage.length) warnings.push(damageWarning(r));
      for (const w of warnings) process.stderr.write(`tcptrace: warning: ${w}\n`);
      process.stderr.write(summaryLine(target, exp, s.bytes, s.facts, report.leaks.length, (performance.now() - t0) / 1000) + '\n');
    });
  return cmd;
}

function summaryLine(target: ExportTarget, exp: Export, bytes: number, facts: string, leaks: number, seconds: number): string {
  const where = target.path === '-' ? 'stdout' : target.path;
  const open = target.format === 'perfetto' ? ': open it in https://ui.perfetto.dev' : target.format === 'html' ? ': open it in a browser' : '';
  const n = exp.builder.exported;
  return `tcptrace: wrote ${where} (${mib(bytes)}, ${n.toLocaleString('en')} socket${n === 1 ? '' : 's'}, ${leaks} leak group${leaks === 1 ? '' : 's'}${facts ? `, ${facts}` : ''}) in ${seconds.toFixed(1)} s${open}`;
}

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** "exporting run.tcptrace: 41% (210 of 512 MiB), 1.2M records/s", redrawn in place on a terminal */
class ProgressLine {
  private readonly t0 = performance.now();
  private shown = false;
  constructor(private readonly file: string) {}
  update(read: number, total: number, records: number): void {
    const s = (performance.now() - this.t0) / 1000;
    if (s < 0.5) return; // short exports print nothing
    const pct = total ? Math.floor((read / total) * 100) : 0;
    const rate = s > 0 ? records / s : 0;
    process.stderr.write(`\rtcptrace: exporting ${this.file}: ${pct}% (${mib(read)} of ${mib(total)}), ${(rate / 1e6).toFixed(2)}M records/s\x1b[K`);
    this.shown = true;
  }
  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }
}

/** --export FILE on the live commands (trace, record): the format by the file's extension */
export function liveExportOption(): Option {
  return new Option('--export <file>', 'also export the socket timelines when the trace ends; the format by extension: .pftrace[.gz] (Perfetto), .json[.gz] (Chrome JSON), .html');
}

/** a live export: its sink for the session, and what to do once the session ended */
export async function startLiveExport(path: string, opts: AnalysisOpts & { pid?: number[] }): Promise<{ sink: Export['builder']; done(): Promise<void> }> {
  if (!/\.(pftrace|perfetto-trace|pb|json|html?)(\.gz)?$/i.test(path)) {
    throw new UsageError(`--export ${path}: name the file .pftrace, .pftrace.gz, .json, .json.gz or .html (the extension picks the format)`);
  }
  const target = exportTarget(undefined, path);
  const exp = await createExport(target, { leakAfterMs: opts.leakAfter * 1000, top: opts.top, pids: null, socketTracks: DEFAULT_SOCKET_TRACKS });
  const t0 = performance.now();
  return {
    sink: exp.builder,
    async done() {
      await exp.output?.close();
      const s = exp.summary();
      for (const w of s.warnings) process.stderr.write(`tcptrace: warning: ${w}\n`);
      process.stderr.write(summaryLine(target, exp, s.bytes, s.facts, exp.builder.analyzer.result().leaks.length, (performance.now() - t0) / 1000) + '\n');
    },
  };
}

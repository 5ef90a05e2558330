/** `tcptrace report FILE`: the same analysis as live, from a recording. */
import { Command } from 'commander';
import { Analyzer } from '../analysis/analyzer.js';
import { replay, type ReplayResult } from '../record/reader.js';
import { renderLeaks, renderReport } from '../report/text.js';
import { analysisOptions, formatOption, type AnalysisOpts } from './options.js';

export function reportCommand(): Command {
  return new Command('report')
    .description('analyse a recording made by `tcptrace record` (or `tcptrace --record`): same report as live')
    .argument('<file>', 'recording to read')
    .addOption(formatOption())
    .addOption(analysisOptions()[0])
    .addOption(analysisOptions()[1])
    .addOption(analysisOptions()[2])
    .action(async (file: string, opts: { format: 'text' | 'json' } & AnalysisOpts, cmd: Command) => {
      const analyzer = new Analyzer({ leakAfterMs: opts.leakAfter * 1000, top: opts.top });
      // settings given to `tcptrace record` apply unless this command line overrides them
      const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
      analyzer.onBegin = (info) => {
        const rec = info.analysis;
        if (!rec) return;
        if (!given('leakAfter')) analyzer.options.leakAfterMs = rec.leakAfterMs;
        if (!given('top')) analyzer.options.top = rec.top;
        if (!given('interval') && rec.intervalS && opts.format === 'text') opts.interval = rec.intervalS;
        analyzer.trackTime = !!opts.interval && opts.format === 'text';
      };
      {
        // the leak report every --interval seconds of recorded time
        let next = 0;
        analyzer.trackTime = !!opts.interval && opts.format === 'text';
        analyzer.onDelivered = () => {
          if (!opts.interval || opts.format !== 'text') return;
          const now = analyzer.latestNs;
          if (!now) return;
          if (!next) next = Number(analyzer.info.startedNs) + opts.interval! * 1e9;
          while (now >= next) {
            process.stdout.write(renderLeaks(analyzer.snapshot(BigInt(Math.round(next)))) + '\n');
            next += opts.interval! * 1e9;
          }
        };
      }
      const r = await replay(file, analyzer);
      const report = analyzer.result();
      if (r.interrupted) report.warnings.push('the recording has no end frame: the recorder was interrupted; the report ends at the last event');
      if (r.truncatedBytes) report.warnings.push(`${r.truncatedBytes} bytes of a partial last frame were ignored`);
      if (r.damage.length) report.warnings.push(damageWarning(r));
      Object.assign(report.counts, { damagedFrames: r.damagedFrames, damagedBytes: r.damagedBytes, lostRecords: r.lostRecords });
      if (opts.format === 'json') process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else process.stdout.write(renderReport(report));
    });
}

/** "2 damaged frames skipped: 8.4 KiB and 1,234 records lost (the first at byte 10,496: bad payload checksum)" */
export function damageWarning(r: ReplayResult): string {
  const frames = `${r.damagedFrames.toLocaleString('en')} damaged frame${r.damagedFrames === 1 ? '' : 's'} skipped`;
  const records = r.lostRecords === null ? 'an unknown number of records' : `${r.lostRecords.toLocaleString('en')} record${r.lostRecords === 1 ? '' : 's'}`;
  const first = r.damage[0];
  return `${frames}: ${byteSize(r.damagedBytes)} and ${records} lost (the first at byte ${first.offset.toLocaleString('en')}: ${first.why})`;
}

function byteSize(n: number): string {
  if (n < 1024) return `${n} byte${n === 1 ? '' : 's'}`;
  return n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

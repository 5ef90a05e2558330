/** `tcptrace report FILE`: the same analysis as live, from a recording. */
import { Command } from 'commander';
import { Analyzer } from '../analysis/analyzer.js';
import { replay } from '../record/reader.js';
import { renderReport } from '../report/text.js';
import { formatOption } from './options.js';

export function reportCommand(): Command {
  return new Command('report')
    .description('analyse a recording made by `tcptrace record` (or `tcptrace --record`): same report as live')
    .argument('<file>', 'recording to read')
    .addOption(formatOption())
    .action(async (file: string, opts: { format: 'text' | 'json' }) => {
      const analyzer = new Analyzer();
      const r = await replay(file, analyzer);
      const report = analyzer.result();
      if (r.interrupted) report.warnings.push('the recording has no end frame: the recorder was interrupted; the report ends at the last event');
      if (r.truncatedBytes) report.warnings.push(`${r.truncatedBytes} bytes of a partial last frame were ignored`);
      if (opts.format === 'json') process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else process.stdout.write(renderReport(report));
    });
}

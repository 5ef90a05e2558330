/** `tcptrace record -o FILE`: write the trace to a file for `tcptrace report`. */
import { Command, Option } from 'commander';
import { EXIT } from '../errors.js';
import { RecordWriter } from '../record/writer.js';
import { analysisOptions, selectorOptions, type AnalysisOpts, type SelectorOpts } from './options.js';
import { describeTargets, runSession } from './run-session.js';
import { liveExportOption, startLiveExport } from './export.js';

export function recordCommand(): Command {
  const cmd = new Command('record')
    .description('record every transition and call to a file (msgpack frames); analyse it later with `tcptrace report`')
    .addHelpText(
      'after',
      `
The file is flushed every second: a recorder that is killed leaves a readable file.
It is written with direct I/O where the file system allows it, past the page cache
(else through it, dropping what was written back); if the disk cannot keep up, batches
past a 256 MiB backlog are dropped and counted.
--leak-after, --top and --interval are stored in it as the defaults of \`tcptrace report\`.
Stacks are symbolized while the processes live; raw stack bytes are never written.
Examples:
  tcptrace record -o run.tcptrace --pid 4242 --duration 600
  tcptrace record -o box.tcptrace                 whole system until Ctrl-C
  tcptrace report run.tcptrace
  tcptrace export run.tcptrace                    socket timelines for ui.perfetto.dev
  tcptrace record -o run.tcptrace --pid 4242 --export run.html
                                                  and an HTML page of them at the end`,
    )
    .addOption(new Option('-o, --output <file>', 'recording to write').makeOptionMandatory())
    .addOption(liveExportOption());
  for (const o of selectorOptions()) cmd.addOption(o);
  // a recording keeps every event: these are stored in it as the defaults of `tcptrace report`
  for (const o of analysisOptions()) cmd.addOption(o);
  cmd.action(async (opts: SelectorOpts & AnalysisOpts & { output: string; export?: string }) => {
    const writer = new RecordWriter(opts.output);
    const exported = opts.export ? await startLiveExport(opts.export, opts) : null;
    const end = await runSession(opts, exported ? [writer, exported.sink] : [writer], (s) =>
      process.stderr.write(`tcptrace: recording ${describeTargets(opts)} to ${opts.output} (attach mode ${s.info.attach.mode}); Ctrl-C to stop\n`),
    );
    const c = writer.withShed(end.counters);
    process.stderr.write(`tcptrace: recorded ${c.records} records (${writer.bytesWritten} bytes) to ${opts.output}; lost ${c.lost}, dropped ${c.droppedBatches} batches, missed in kernel ${c.missed}\n`);
    await exported?.done();
    if (end.failure) throw end.failure;
    if (end.reason === 'target-exited') process.exitCode = EXIT.TARGET_EXITED;
  });
  return cmd;
}

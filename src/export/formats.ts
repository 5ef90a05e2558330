/**
 * The export formats, chosen by name or by the output's extension, and the
 * sink that writes each; shared by `tcptrace export` and the live `--export`.
 */
import { statSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { ChromeJsonTimeline } from './chrome-json.js';
import { OutputFile } from './output.js';
import { PerfettoTimeline } from './perfetto.js';
import { TimelineBuilder, type TimelineOptions, type TimelineSink } from './timeline.js';

export const EXPORT_FORMATS = ['perfetto', 'chrome-json', 'html'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const EXTENSIONS: Record<ExportFormat, string> = { perfetto: '.pftrace', 'chrome-json': '.json', html: '.html' };

/** the format an output path names by its extension (.pftrace[.gz], .perfetto-trace, .json[.gz], .html), or null */
export function formatOfPath(path: string): ExportFormat | null {
  const p = path.toLowerCase().replace(/\.gz$/, '');
  if (p.endsWith('.pftrace') || p.endsWith('.perfetto-trace') || p.endsWith('.pb')) return 'perfetto';
  if (p.endsWith('.json')) return 'chrome-json';
  if (p.endsWith('.html') || p.endsWith('.htm')) return 'html';
  return null;
}

/** where an export of `input` goes when no -o is given: the recording's name with the format's extension */
export function defaultOutput(input: string, format: ExportFormat): string {
  return input.replace(/\.tcptrace$/, '') + EXTENSIONS[format];
}

export interface ExportTarget {
  format: ExportFormat;
  path: string;
  gzip: boolean;
}

/** format and path from -f and -o (either may be missing); a contradiction is a usage error */
export function exportTarget(format: string | undefined, path: string | undefined, input?: string): ExportTarget {
  const byPath = path && path !== '-' ? formatOfPath(path) : null;
  if (format && !(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`unknown export format '${format}' (one of ${EXPORT_FORMATS.join(', ')})`);
  const f = (format as ExportFormat | undefined) ?? byPath ?? (path && path !== '-' ? null : 'perfetto');
  if (!f) throw new UsageError(`cannot tell the export format from '${path}': name it with -f (${EXPORT_FORMATS.join(', ')}) or use .pftrace, .json or .html`);
  const out = path ?? (input ? defaultOutput(input, f) : null);
  if (!out) throw new UsageError('--export needs a file name');
  const gzip = out.toLowerCase().endsWith('.gz');
  if (gzip && f === 'html') throw new UsageError('an HTML export is one page to open in a browser: it is not gzipped (drop the .gz)');
  return { format: f, path: out, gzip };
}

export interface Export {
  builder: TimelineBuilder;
  sink: TimelineSink;
  output: OutputFile | null;
  /** what was written: file bytes, and a line of facts for the summary */
  summary(): { bytes: number; facts: string; warnings: string[] };
}

export async function createExport(target: ExportTarget, options: TimelineOptions & { socketTracks: number }): Promise<Export> {
  if (target.format === 'html') {
    // loaded only when asked for: it inlines a page and a chart library
    const { HtmlTimeline } = await import('./html.js');
    const sink = new HtmlTimeline(target.path);
    const builder = new TimelineBuilder(sink, options);
    return {
      builder,
      sink,
      output: null,
      summary: () => ({ bytes: fileSize(target.path), facts: '', warnings: [] }),
    };
  }
  const output = new OutputFile(target.path, target.gzip);
  /** a streamed export: the sink writes to output as the recording is read */
  const streamed = (sink: TimelineSink, facts: () => string, warnings: () => string[] = () => []): Export => ({
    builder: new TimelineBuilder(sink, options),
    sink,
    output,
    summary: () => ({ bytes: output.bytesOut, facts: facts(), warnings: warnings() }),
  });
  if (target.format === 'chrome-json') {
    const sink = new ChromeJsonTimeline(output);
    return streamed(
      sink,
      () => `${sink.events.toLocaleString('en')} events`,
      () => (sink.events > 1_000_000 ? [`${sink.events.toLocaleString('en')} events: chrome://tracing and other JS viewers struggle past a million; open it in ui.perfetto.dev, or export -f perfetto`] : []),
    );
  }
  const sink = new PerfettoTimeline(output, { socketTracks: options.socketTracks });
  return streamed(sink, () => `${sink.packets.toLocaleString('en')} packets, ${sink.stats.ownTracks.toLocaleString('en')} socket tracks, ${sink.stats.lanes.toLocaleString('en')} lanes`);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

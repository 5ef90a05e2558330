/**
 * Running a live session from a command: signals, --duration, and the end.
 * Shared by the trace and record commands (and the demo).
 */
import { TraceSession, DEFAULTS } from '../trace/session.js';
import type { SessionEnd, TraceSink } from '../trace/types.js';
import type { AnalysisOpts, SelectorOpts } from './options.js';

export async function runSession(
  opts: SelectorOpts & Partial<AnalysisOpts> & { summary?: boolean; cgroups?: boolean; closeWaitMinMs?: number; heldCounts?: boolean; closeWaitBoundsS?: number[] },
  sinks: TraceSink[],
  onStart?: (s: TraceSession) => void,
): Promise<SessionEnd> {
  const session = TraceSession.open(
    {
      pids: opts.pid ?? null,
      children: opts.children,
      attachMode: opts.attachMode,
      syscallHooks: opts.syscallHooks,
      ringBytes: opts.ringSize,
      ringPerCpu: opts.ringPerCpu,
      maxSockets: opts.maxSockets,
      drainIntervalMs: DEFAULTS.drainIntervalMs,
      countersIntervalMs: DEFAULTS.countersIntervalMs,
      // attribution is per process: whole-system traces do not copy every process's stacks unless asked
      stacks: opts.stacks ?? opts.pid !== undefined,
      stackBytes: opts.stackBytes,
      stackRate: opts.stackRate,
      pythonFrames: opts.pythonFrames,
      summary: opts.summary,
      cgroups: opts.cgroups,
      closeWaitMinMs: opts.closeWaitMinMs,
      heldCounts: opts.heldCounts,
      closeWaitBoundsS: opts.closeWaitBoundsS,
      analysis: opts.leakAfter !== undefined ? { leakAfterMs: opts.leakAfter * 1000, top: opts.top ?? 10, intervalS: opts.interval } : undefined,
    },
    sinks,
  );
  onStart?.(session);
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++interrupts > 1) {
      process.stderr.write(`tcptrace: second ${sig}: exiting without a report\n`);
      process.exit(130);
    }
    void session.stop('signal');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const timer = opts.duration ? setTimeout(() => void session.stop('duration'), opts.duration * 1000) : undefined;
  try {
    return await session.finished();
  } finally {
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function describeTargets(opts: SelectorOpts): string {
  return opts.pid ? `pid ${opts.pid.join(', ')}${opts.children ? ' (and children)' : ''}` : 'the whole system';
}

/** `tcptrace features`: what this kernel can attach, and which mode tcptrace would choose. */
import { Command, Option } from 'commander';
import { probeKernel } from '../attach/probe.js';
import { hookPlan, judgeModes } from '../attach/modes.js';
import { TcptraceError } from '../errors.js';
import { osRelease } from '../sys/host.js';

export function featuresCommand(): Command {
  return new Command('features')
    .description('probe the kernel: which hooks attach, which attach mode would be chosen, and why')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action((opts: { format: 'text' | 'json' }) => {
      const probe = probeKernel();
      const verdicts = judgeModes(probe);
      const basicsOk = probe.bpf.supported && probe.btf.supported && probe.ringbuf.supported;
      const chosen = basicsOk ? verdicts.find((v) => v.usable)?.mode.name ?? null : null;
      if (opts.format === 'json') {
        const doc = {
          schema: 'tcptrace.features/1',
          kernel: osRelease(),
          chosen,
          modes: verdicts.map((v) => ({ name: v.mode.name, usable: basicsOk && v.usable, why: v.why, hooks: hookPlan(v.mode, probe, true).hooks, summary: v.mode.summary })),
          probes: probe,
        };
        process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
      } else {
        const out: string[] = [`kernel ${osRelease()}`, '', 'probes (each loads and attaches a trivial program):'];
        for (const key of ['bpf', 'btf', 'ringbuf', 'tp_btf', 'raw_tp', 'fexit', 'kretprobe', 'tracepoint', 'syscallTracepoint', 'sockIo', 'btfWalk'] as const) {
          const p = probe[key];
          out.push(`  ${key.padEnd(18)} ${p.supported ? 'yes' : 'no '}  ${p.reason}`);
        }
        out.push(`  ${'tracefs'.padEnd(18)} ${probe.tracefs.mounted ? `mounted at ${probe.tracefs.mounted}` : 'not mounted (tracepoint ids are read through a private mount)'}`);
        out.push('', 'attach modes, in order of preference:');
        for (const v of verdicts) {
          const mark = v.mode.name === chosen ? '*' : ' ';
          out.push(`${mark} ${v.mode.name.padEnd(11)} ${basicsOk && v.usable ? 'usable' : `unusable: ${v.why || 'BPF basics missing'}`}`);
          out.push(`  ${''.padEnd(11)} ${v.mode.summary}`);
          if (mark === '*') for (const [fact, how] of Object.entries(hookPlan(v.mode, probe, true).hooks)) out.push(`  ${''.padEnd(11)} ${fact.padEnd(11)} ${how}`);
        }
        out.push('', chosen ? `chosen: ${chosen} (override with --attach-mode)` : 'chosen: none: tcptrace cannot trace on this kernel');
        process.stdout.write(out.join('\n') + '\n');
      }
      if (!chosen) {
        if (!probe.bpf.supported) throw new TcptraceError('NOT_PERMITTED', `BPF not usable: ${probe.bpf.reason}`);
        throw new TcptraceError('UNSUPPORTED_KERNEL', 'no attach mode works on this kernel');
      }
    });
}

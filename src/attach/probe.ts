/**
 * Start-up checks: can this process trace at all, and with which attach mode.
 * Turns the native probe's outcomes into the one error a user needs to read.
 */
import { TcptraceError, UsageError } from '../errors.js';
import { native, type KernelProbe } from '../native.js';
import { judgeModes, MODE_NAMES, modeByName, type AttachMode, type ModeVerdict } from './modes.js';

export interface AttachPlan {
  mode: AttachMode;
  chosenBy: 'probe' | 'option';
  verdicts: ModeVerdict[];
  probe: KernelProbe;
}

export function probeKernel(): KernelProbe {
  return native().probeKernel();
}

/** Throws the precise reason when nothing can work; otherwise picks (or validates) a mode. */
export function planAttach(requested?: string, probe: KernelProbe = probeKernel()): AttachPlan {
  if (!probe.bpf.supported) {
    const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;
    if (notRoot || /not permitted/i.test(probe.bpf.reason)) {
      throw new TcptraceError(
        'NOT_PERMITTED',
        `not permitted to use BPF (${probe.bpf.reason}): run as root, or grant CAP_BPF and CAP_PERFMON`,
      );
    }
    throw new TcptraceError('BPF_DISABLED', `BPF is not available on this kernel: ${probe.bpf.reason}`);
  }
  if (!probe.btf.supported) {
    throw new TcptraceError('NO_BTF', `kernel BTF is missing: ${probe.btf.reason}; tcptrace needs a kernel with BTF (5.5+, CONFIG_DEBUG_INFO_BTF=y)`);
  }
  if (!probe.ringbuf.supported) {
    throw new TcptraceError('UNSUPPORTED_KERNEL', `BPF ring buffer unavailable: ${probe.ringbuf.reason}`);
  }
  const verdicts = judgeModes(probe);
  if (requested !== undefined) {
    const mode = modeByName(requested);
    if (!mode) throw new UsageError(`--attach-mode: unknown mode '${requested}' (one of: ${MODE_NAMES.join(', ')})`);
    const v = verdicts.find((x) => x.mode.name === requested)!;
    if (!v.usable) {
      throw new TcptraceError('UNSUPPORTED_KERNEL', `attach mode '${requested}' is not available on this kernel: ${v.why}`);
    }
    return { mode, chosenBy: 'option', verdicts, probe };
  }
  const best = verdicts.find((v) => v.usable);
  if (!best) {
    throw new TcptraceError(
      'UNSUPPORTED_KERNEL',
      `no attach mode works on this kernel: ${verdicts.map((v) => `${v.mode.name} (${v.why})`).join('; ')}`,
    );
  }
  return { mode: best.mode, chosenBy: 'probe', verdicts, probe };
}

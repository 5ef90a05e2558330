/**
 * Python frames into a native stack, where the interpreter ran them (as py-spy
 * does): every native _PyEval_EvalFrameDefault frame (also its .cold part)
 * stands for one run of Python frames, innermost first, the run ending at a
 * frame flagged TT_PY_RUN_END (3.11's is_entry) or before a shim (3.12+). Runs
 * left when the native frames end (an unwind cut short) follow the native
 * frames, so nothing the kernel copied is dropped.
 */
import type { Frame } from '../types.js';
import { PY_RUN_END, PY_SHIM, type PyFrameRecord } from './frames.js';

/** CPython's eval loop (its .cold part too): each such native frame ran one run of Python frames */
export const EVAL = /^_PyEval_EvalFrameDefault(\.|$)/;

/** The kernel's frames cut into runs, one per eval-loop call, innermost first. */
export function pyRuns<T>(records: readonly PyFrameRecord[], named: (r: PyFrameRecord) => T): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  for (const r of records) {
    if (r.flags & PY_SHIM) {
      if (run.length) runs.push(run);
      run = [];
      continue;
    }
    run.push(named(r));
    if (r.flags & PY_RUN_END) {
      runs.push(run);
      run = [];
    }
  }
  if (run.length) runs.push(run);
  return runs;
}

export function splicePython(native: readonly Frame[], runs: Frame[][]): Frame[] {
  if (!runs.length) return [...native];
  const out: Frame[] = [];
  let next = 0;
  for (const f of native) {
    if (EVAL.test(f.symbol) && next < runs.length) out.push(...runs[next++]);
    else out.push(f);
  }
  while (next < runs.length) out.push(...runs[next++]);
  return out;
}

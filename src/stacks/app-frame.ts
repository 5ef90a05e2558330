/**
 * Which frames are the program's own code, not its runtime's or libc's: they
 * name a code path (the text report keeps them, the exports title groups by
 * the first of them).
 */
import type { Frame } from './types.js';

/** Runtime and library internals that rarely answer "which code path" (kept in JSON). */
const RUNTIME = /^(v8::|node::|uv_|uv__|Builtins_|non-virtual thunk|int node::|void node::|v8_|__libc_start|_start$|std::|_PyEval_|PyObject_|method_vectorcall|runtime\.|runtime\/|syscall\.|internal\/poll)/;

/** CPython's standard library (not site-/dist-packages): the runtime, for "which code path" */
const PY_STDLIB = /\/lib\/python3\.\d+t?\/(?!site-packages\/|dist-packages\/)/;

export function isAppFrame(f: Frame): boolean {
  if (f.kind === 'python') return f.symbol !== '' && !PY_STDLIB.test(f.file ?? '');
  // the JDK's own classes are the runtime, as the CPython stdlib is; JVM stubs are named [like this]
  if (f.kind === 'java') return !/^(java|javax|jdk|sun|com\.sun)\./.test(f.symbol);
  if (f.module === 'java') return false;
  // Node's own JavaScript (node:internal/..., node:net) is runtime too
  if (f.symbol.startsWith('JS:')) return !/ node:/.test(f.symbol);
  return f.symbol !== '' && !RUNTIME.test(f.symbol) && !/^(libc|libpthread|ld-linux)/.test(f.module.split('/').pop() ?? '');
}

/** the innermost frame of the program's own code, else the innermost named one */
export function codePathFrame(frames: Frame[] | null | undefined): Frame | undefined {
  return frames?.find(isAppFrame) ?? frames?.find((f) => f.symbol);
}

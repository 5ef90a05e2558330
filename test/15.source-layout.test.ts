/**
 * The layout the code is read by (issue 23), checked so it does not drift back:
 * the TypeScript imports run one way (no cycles; analysis and the model never
 * reach into rendering or the CLI), and the BPF side keeps its helpers by area
 * in bpf/lib (each header guarded, saying what it owns, holding no program),
 * with only entry points in the .bpf.c files. Runs without root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/proc.js';

function walk(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p, ext));
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

/** relative imports of each src file, as paths of .ts files (generated files included) */
function importGraph(): Map<string, string[]> {
  const src = join(ROOT, 'src');
  const graph = new Map<string, string[]>();
  for (const file of walk(src, '.ts')) {
    const text = readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm)) {
      deps.push(relative(ROOT, resolve(dirname(file), m[1].replace(/\.js$/, '.ts'))));
    }
    graph.set(relative(ROOT, file), deps);
  }
  return graph;
}

test('src imports have no cycles', () => {
  const graph = importGraph();
  assert.ok(graph.size > 30, `only ${graph.size} source files found`);
  // Tarjan's strongly connected components: any component of two or more files is a cycle
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>(), stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue; // generated or outside src
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) cycles.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  assert.deepEqual(cycles, [], `import cycles: ${cycles.map((c) => c.join(' <-> ')).join('; ')}`);
});

test('analysis and the model never import rendering or the CLI', () => {
  const bad: string[] = [];
  for (const [file, deps] of importGraph()) {
    if (!/^src\/(analysis|model)\//.test(file)) continue;
    for (const d of deps) if (/^src\/(report|commands)\/|^src\/cli\.ts$/.test(d)) bad.push(`${file} -> ${d}`);
  }
  assert.deepEqual(bad, []);
});

test('BPF helpers live by area in bpf/lib; the .bpf.c files hold the entry points', () => {
  const lib = walk(join(ROOT, 'bpf/lib'), '.bpf.h');
  assert.ok(lib.length >= 6, `bpf/lib has ${lib.length} headers`);
  const maps = new Map<string, string>();
  for (const file of lib) {
    const name = relative(ROOT, file);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\/\* SPDX-License-Identifier: GPL-2\.0 \*\/\n\/\*\n \* \S/, `${name}: opens with what it owns`);
    const guard = text.match(/^#ifndef (TCPTRACE_\w+_BPF_H)\n#define \1$/m);
    assert.ok(guard, `${name}: include guard`);
    assert.doesNotMatch(text, /^SEC\(|^\s*SEC\("(?!\.maps)/m, `${name}: a program outside the entry files`);
    for (const m of text.matchAll(/^\} (\w+) SEC\("\.maps"\);/gm)) {
      assert.ok(!maps.has(m[1]), `map ${m[1]} defined in ${maps.get(m[1])} and ${name}`);
      maps.set(m[1], name);
    }
  }
  assert.ok(maps.has('owners') && maps.has('counters') && maps.has('walk_memos'), `maps found: ${[...maps.keys()].join(', ')}`);
  const main = readFileSync(join(ROOT, 'bpf/tcpstate.bpf.c'), 'utf8');
  assert.doesNotMatch(main, /SEC\("\.maps"\)/, 'bpf/tcpstate.bpf.c defines a map');
  // the raw syscall fallback's dispatch (on_sys_enter/on_sys_exit) is the only plumbing beside the programs
  const helpers = [...main.matchAll(/^static __always_inline \w+ \*?(\w+)\(/gm)].map((m) => m[1]);
  assert.deepEqual(helpers.sort(), ['on_sys_enter', 'on_sys_exit']);
});

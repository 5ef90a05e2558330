#!/usr/bin/env node
// Builds everything `npm install` needs, in order:
//   1. BPF objects (clang -target bpf) and their libbpf skeletons (bpftool gen skeleton)
//   2. src/generated/events.ts from the BTF of bpf/tcpstate.h (scripts/gen-events.mjs)
//   3. the native addon (node-gyp)
//   4. the TypeScript (tsc)
//   5. dist/build-info.json: what `tcptrace --version --verbose` says of the build
// Missing system tools are reported with the one command that installs them.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'bpf/.output');
const arch = { x64: 'x86' }[process.arch];
const quiet = !process.env.V;

function fail(msg) {
  console.error(`tcptrace build: ${msg}`);
  process.exit(1);
}
function run(tag, cmd, args, opts = {}) {
  if (!quiet) console.error(`${tag} ${cmd} ${args.join(' ')}`);
  else console.error(`  ${tag.padEnd(9)} ${opts.label ?? args[args.length - 1]}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${tag} failed (exit ${r.status})`);
}
function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
function newer(target, ...sources) {
  if (!existsSync(target)) return false;
  const t = statSync(target).mtimeMs;
  return sources.every((s) => statSync(s).mtimeMs <= t);
}

if (!arch) fail(`unsupported architecture ${process.arch} (tcptrace's BPF code is wired for x86-64)`);
const missing = ['clang', 'bpftool', 'pkg-config'].filter((c) => !have(c));
if (!have('pkg-config') || spawnSync('pkg-config', ['--exists', 'libbpf']).status !== 0) missing.push('libbpf-dev');
if (missing.length) fail(`missing ${missing.join(', ')}: run scripts/setup.sh (as root) first`);

mkdirSync(out, { recursive: true });
const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
const common = ['-Ibpf', `-Ibpf/vmlinux/${arch}`, `-I/usr/include/${multiarch}`];
// every header a BPF object may include: the boundary, the drift file, and the helpers by area (bpf/lib)
const headers = ['bpf/tcpstate.h', 'bpf/core_fixes.bpf.h', ...readdirSync(join(root, 'bpf/lib')).map((f) => `bpf/lib/${f}`)].map((h) => join(root, h));

for (const name of ['tcpstate', 'probe']) {
  const src = join(root, `bpf/${name}.bpf.c`);
  const skel = join(out, `${name}.skel.h`);
  if (newer(skel, src, ...headers)) continue;
  const tmp = join(out, `${name}.tmp.bpf.o`);
  const obj = join(out, `${name}.bpf.o`);
  run('BPF', 'clang', ['-g', '-O2', '-Wall', '-Werror', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`, ...common, '-c', src, '-o', tmp], { label: `bpf/${name}.bpf.c` });
  run('GEN-OBJ', 'bpftool', ['gen', 'object', obj, tmp], { label: `${name}.bpf.o` });
  const skelText = execFileSync('bpftool', ['gen', 'skeleton', obj, 'name', `${name}_bpf`], { encoding: 'utf8', maxBuffer: 256 << 20 });
  (await import('node:fs')).writeFileSync(skel, skelText);
  console.error(`  GEN-SKEL  ${name}.skel.h`);
}

const layout = join(out, 'tcpstate_layout.o');
const eventsTs = join(root, 'src/generated/events.ts');
if (!newer(eventsTs, join(root, 'bpf/tcpstate.h'), join(root, 'scripts/gen-events.mjs'))) {
  run('BTF', 'clang', ['-g', '-target', 'bpf', ...common, '-c', 'bpf/tcpstate_layout.c', '-o', layout], { label: 'bpf/tcpstate_layout.c' });
  run('GEN-TS', process.execPath, ['scripts/gen-events.mjs', layout, eventsTs], { label: 'src/generated/events.ts' });
}

const gyp = join(root, 'node_modules/node-gyp/bin/node-gyp.js');
// Build against the installed Node headers (no download: the network may be closed).
const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : '');
const gypArgs = nodedir ? [`--nodedir=${nodedir}`] : [];
if (!existsSync(join(root, 'build/Makefile'))) run('GYP', process.execPath, [gyp, 'configure', ...gypArgs], { label: 'configure' });
run('ADDON', process.execPath, [gyp, 'build', '-j', '2', ...gypArgs], { label: 'build/Release/tcptrace.node', stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit' });
run('TSC', process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { label: 'dist/' });

// The build's own facts, for `tcptrace --version --verbose` and bug reports.
const firstLine = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0].trim() : null;
};
const commit = firstLine('git', ['rev-parse', '--short=12', 'HEAD']);
const buildInfo = {
  commit,
  dirty: commit ? firstLine('git', ['status', '--porcelain', '--untracked-files=no']) !== '' : null,
  builtAt: new Date().toISOString(),
  clang: firstLine('clang', ['--version']),
  bpftool: firstLine('bpftool', ['--version']),
  node: process.version,
};
(await import('node:fs')).writeFileSync(join(root, 'dist/build-info.json'), JSON.stringify(buildInfo, null, 2) + '\n');

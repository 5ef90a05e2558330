/**
 * `tcptrace --version` (-V): the version; with --verbose also what a bug report
 * needs: the libbpf the addon runs with, the kernel and what it can attach (as
 * `tcptrace features` probes it: root only), and how this build was made.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { judgeModes } from '../attach/modes.js';
import { native } from '../native.js';
import { osRelease } from '../sys/host.js';
import { VERSION } from '../version.js';

const VERSION_FLAGS = new Set(['-V', '--version']);

/** The global options, for --help; the CLI answers them before commander parses (answerVersion). */
export function addVersionOptions(program: Command): void {
  program
    .addOption(new Option('-V, --version', 'print the version and exit'))
    .addOption(new Option('--verbose', 'with --version: also libbpf, kernel, attach mode and build details'));
}

/**
 * argv holds only version flags (in any order): print, and return true.
 * Anything else (a subcommand, another option) is commander's to parse.
 */
export function answerVersion(args: string[]): boolean {
  if (!args.some((a) => VERSION_FLAGS.has(a)) || !args.every((a) => VERSION_FLAGS.has(a) || a === '--verbose')) return false;
  process.stdout.write(args.includes('--verbose') ? verboseVersion() : `tcptrace ${VERSION}\n`);
  return true;
}

function buildFacts(): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(new URL('../../build-info.json', import.meta.url), 'utf8'));
  } catch {
    return null;
  }
}

function verboseVersion(): string {
  const rows: [string, string][] = [];
  let addon: ReturnType<ReturnType<typeof native>['buildInfo']> | null = null;
  try {
    addon = native().buildInfo();
  } catch (err) {
    rows.push(['addon', `not loadable: ${(err as Error).message}`]);
  }
  rows.push(['node', `${process.version} (Node-API ${addon?.napiVersion ?? process.versions.napi})`]);
  if (addon) {
    rows.push(['libbpf', `${addon.libbpf} (built against ${addon.libbpfHeaders})`]);
    rows.push(['addon', addon.compiler]);
  }
  rows.push(['kernel', osRelease()]);
  if (addon) {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      rows.push(['attach', 'not probed: needs root (tcptrace features)']);
    } else {
      const probe = native().probeKernel();
      const basics = (['bpf', 'btf', 'ringbuf'] as const).filter((k) => !probe[k].supported);
      const chosen = basics.length ? null : judgeModes(probe).find((v) => v.usable)?.mode.name ?? null;
      rows.push(['attach', chosen ? `${chosen} (tcptrace features tells why)` : `none: ${basics.length ? `missing ${basics.join(', ')}` : 'no attach mode works'}`]);
    }
  }
  const b = buildFacts();
  if (b) {
    rows.push(['build', `${b.commit ?? 'not a git checkout'}${b.dirty ? ' (uncommitted changes)' : ''}, ${b.builtAt}`]);
    if (b.clang) rows.push(['bpf', `${b.clang}; ${b.bpftool ?? 'bpftool unknown'}`]);
  } else rows.push(['build', 'no dist/build-info.json (run npm run build)']);
  return [`tcptrace ${VERSION}`, ...rows.map(([k, v]) => `  ${k.padEnd(7)} ${v}`)].join('\n') + '\n';
}

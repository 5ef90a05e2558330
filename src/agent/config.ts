/**
 * The agent's reloadable settings: thresholds and selectors, from the command
 * line and, with --config FILE, from a YAML file whose keys are the flags' names
 * (SIGHUP and POST /-/reload read it again). A key the file leaves out keeps the
 * command line's value; a file that does not parse, or a bad value, throws and the
 * running configuration stays as it was.
 *
 *   # /etc/tcptrace/agent.yml
 *   leak-after: 60
 *   events-growth: 2
 *   series-grace: 120
 *   unit: [orders, 'billing-*']
 *   comm: java
 */
import { readFileSync } from 'node:fs';
import { parse, YAMLParseError } from 'yaml';
import { TcptraceError, UsageError } from '../errors.js';
import type { SelectorSpec } from './selection.js';

export interface AgentSettings {
  leakAfterS: number;
  eventsGrowth: number;
  seriesGraceS: number;
  selectors: SelectorSpec;
}

const NUMBERS = { 'leak-after': 'leakAfterS', 'events-growth': 'eventsGrowth', 'series-grace': 'seriesGraceS' } as const;
const LISTS = ['pid', 'comm', 'unit', 'cgroup', 'container'] as const;
export const CONFIG_KEYS = [...Object.keys(NUMBERS), ...LISTS];

/** the rule each number follows, as its flag does */
export function checkNumber(key: string, v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (key === 'events-growth') {
    if (!Number.isFinite(n) || n <= 1) throw new UsageError(`${key}: '${String(v)}' is not a factor > 1`);
  } else if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${key}: '${String(v)}' is not a positive number of seconds`);
  return n;
}

function list(key: (typeof LISTS)[number], v: unknown): (string | number)[] {
  const items = Array.isArray(v) ? v : [v];
  return items.map((x) => {
    if (key === 'pid') {
      if (typeof x !== 'number' && !(typeof x === 'string' && /^\d+$/.test(x))) throw new UsageError(`pid: '${String(x)}' is not a process id`);
      const n = Number(x);
      if (!Number.isInteger(n) || n < 1 || n > 4194304) throw new UsageError(`pid: '${String(x)}' is not a process id`);
      return n;
    }
    if (typeof x !== 'string' && typeof x !== 'number') throw new UsageError(`${key}: '${JSON.stringify(x)}' is not a name`);
    return String(x);
  });
}

/** the file's settings over the command line's (throws: NO_INPUT, BAD_INPUT, or a UsageError naming the key) */
export function readConfigFile(path: string, flags: AgentSettings): AgentSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TcptraceError('NO_INPUT', `cannot read the agent config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 100 });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? `:${err.linePos[0].line}` : '';
    throw new TcptraceError('BAD_INPUT', `${path}${where}: not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return flags; // an empty file: the command line's settings
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new TcptraceError('BAD_INPUT', `${path}: a mapping of settings (${CONFIG_KEYS.join(', ')}), not ${Array.isArray(doc) ? 'a list' : typeof doc}`);
  const out: AgentSettings = { ...flags, selectors: { ...flags.selectors } };
  for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
    if (key in NUMBERS) out[NUMBERS[key as keyof typeof NUMBERS]] = checkNumber(key, v);
    else if ((LISTS as readonly string[]).includes(key)) (out.selectors as unknown as Record<string, unknown>)[key] = list(key as (typeof LISTS)[number], v);
    else throw new UsageError(`${path}: unknown setting '${key}' (known: ${CONFIG_KEYS.join(', ')})`);
  }
  return out;
}

/**
 * --pyroscope-url: the agent posts its CLOSE_WAIT profile (src/agent/profile.ts)
 * every --push-interval to Pyroscope's ingest API, for fleets that read profiles
 * there rather than scrape them:
 *
 *   POST URL/ingest?name=tcptrace{host=H}&from=T0&until=T1&format=pprof&spyName=tcptrace
 *   multipart/form-data: profile (the gzipped pprof), sample_type_config (JSON)
 *
 * sample_type_config says each sample type is a count of sockets at an instant
 * (aggregation "average", like a heap's in-use objects), not a sum over time,
 * so Pyroscope does not add up the same leaked socket push after push.
 * A push that fails is counted (tcptrace_profile_pushes_total{result="failure"})
 * and logged once per run of failures; the next interval tries again.
 */
import { hostname } from 'node:os';
import { InvalidArgumentError } from 'commander';
import { logger } from '../log.js';
import { SAMPLE_TYPES } from './profile.js';

const log = logger('agent');

/** --pyroscope-url: an http(s) URL, its path the server's base (/ingest is added) */
export function parsePushUrl(v: string): URL {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError(`'${v}' is not a URL (e.g. http://pyroscope:4040)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`'${v}': http or https, not ${u.protocol.replace(/:$/, '')}`);
  return u;
}

/** the ingest URL for one push; from/until are Unix seconds */
export function ingestUrl(base: URL, app: string, labels: Record<string, string>, from: number, until: number): URL {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/ingest`;
  // Pyroscope's name syntax: app{k=v,...}; values are kept to characters it accepts unquoted
  const clean = (s: string) => s.replace(/[^\w./:-]/g, '_');
  const l = Object.entries(labels).map(([k, v]) => `${k}=${clean(v)}`);
  u.searchParams.set('name', `${app}{${l.join(',')}}`);
  u.searchParams.set('from', String(from));
  u.searchParams.set('until', String(until));
  u.searchParams.set('format', 'pprof');
  u.searchParams.set('spyName', 'tcptrace');
  return u;
}

// active_closes is a total since the agent started (cumulative), the others counts at an instant
export const SAMPLE_TYPE_CONFIG = Object.fromEntries(SAMPLE_TYPES.map((t) => [t, { units: 'objects', aggregation: 'average', 'display-name': t, sampled: false, ...(t === 'active_closes' ? { cumulative: true } : {}) }]));

export class ProfilePusher {
  pushes = { success: 0, failure: 0 };
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | null = null;
  private lastAt = Math.floor(Date.now() / 1000);
  private failing = false;

  constructor(
    private readonly base: URL,
    private readonly intervalS: number,
    private readonly profile: () => Buffer,
    private readonly labels: Record<string, string> = { host: hostname() },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      // one push at a time: a slow server makes pushes fewer, not concurrent
      if (!this.inFlight) this.inFlight = this.push().finally(() => (this.inFlight = null));
    }, this.intervalS * 1000);
    this.timer.unref();
  }

  async push(): Promise<void> {
    const until = Math.floor(Date.now() / 1000);
    const url = ingestUrl(this.base, 'tcptrace', this.labels, this.lastAt, Math.max(until, this.lastAt + 1));
    this.lastAt = until;
    try {
      const form = new FormData();
      form.append('profile', new Blob([new Uint8Array(this.profile())]), 'profile.pb.gz');
      form.append('sample_type_config', new Blob([JSON.stringify(SAMPLE_TYPE_CONFIG)]), 'sample_type_config.json');
      const r = await fetch(url, { method: 'POST', body: form, signal: AbortSignal.timeout(Math.min(30, this.intervalS) * 1000) });
      await r.arrayBuffer().catch(() => undefined);
      if (!r.ok) throw new Error(`HTTP ${r.status} ${r.statusText}`);
      this.pushes.success++;
      if (this.failing) log.info({ url: this.base.href }, 'profile push works again');
      this.failing = false;
    } catch (err) {
      this.pushes.failure++;
      if (!this.failing) log.warn({ url: this.base.href, err: (err as Error).message }, 'profile push failed (counted in tcptrace_profile_pushes_total; retried every --push-interval)');
      this.failing = true;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.inFlight;
  }
}

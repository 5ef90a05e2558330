/**
 * `tcptrace demo`: start a small leaky server, make a few requests (some before
 * attaching), trace it, and show its CLOSE_WAIT sockets. Everything runs on
 * 127.0.0.1 and is stopped by pid at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { Analyzer } from '../analysis/analyzer.js';
import { LIVE_HEADER, printLiveLines, renderReport } from '../report/text.js';
import { DEFAULTS } from '../trace/session.js';
import { runSession } from './run-session.js';

const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function request(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.end(`GET ${path} HTTP/1.0\r\n\r\n`));
    c.on('data', () => {});
    c.on('end', () => resolve());
    c.on('close', () => resolve());
    c.on('error', reject);
    // the leaky handler never ends its side: our end() already sent the FIN, stop waiting
    setTimeout(() => (c.destroy(), resolve()), 300);
  });
}

function startServer(): Promise<{ proc: ChildProcess; port: number }> {
  const script = fileURLToPath(new URL('../demo/leaky-server.js', import.meta.url));
  // perf-map flags: V8 writes /tmp/perf-PID.map so tcptrace can name JavaScript frames
  const proc = spawn(process.execPath, ['--perf-basic-prof-only-functions', '--interpreted-frames-native-stack', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.once('exit', (c) => reject(new Error(`demo server exited (${c})`)));
    proc.stdout!.on('data', (d: Buffer) => {
      const m = /PORT (\d+)/.exec(d.toString());
      if (m) resolve({ proc, port: Number(m[1]) });
    });
  });
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('run tcptrace on a built-in leaky server: live transitions, then its CLOSE_WAIT sockets')
    .addOption(new Option('--attach-mode <mode>', 'force an attach mode (see `tcptrace features`)'))
    .action(async (opts: { attachMode?: string }) => {
      const { proc, port } = await startServer();
      try {
        say(`started a leaky server, pid ${proc.pid}, on 127.0.0.1:${port}; its /quote handler never ends its socket`);
        for (let i = 0; i < 2; i++) await request(port, '/quote');
        say('made 2 leaky requests before attaching: tcptrace must find those too');
        // the demo is short: call a socket leaked after 1 s in CLOSE_WAIT (the default is 5 s)
        const analyzer = new Analyzer({ leakAfterMs: 1000, top: 10 });
        const flush = printLiveLines(analyzer);
        const done = runSession(
          {
            pid: [proc.pid!],
            children: false,
            attachMode: opts.attachMode,
            syscallHooks: 'auto',
            ringSize: DEFAULTS.ringBytes,
            ringPerCpu: true,
            maxSockets: DEFAULTS.maxSockets,
            stacks: true,
            stackBytes: DEFAULTS.stackBytes,
            stackRate: DEFAULTS.stackRate,
            pythonFrames: true,
          },
          [analyzer],
          async (s) => {
            say(`tracing pid ${proc.pid} (attach mode ${s.info.attach.mode}); now 3 healthy and 3 leaky requests`);
            process.stdout.write(LIVE_HEADER + '\n');
            for (let i = 0; i < 3; i++) {
              await request(port, '/health');
              await request(port, '/quote');
            }
            await sleep(1500);
            await s.stop('duration');
          },
        );
        await done;
        flush();
        process.stdout.write('\n' + renderReport(analyzer.result()));
        say(`in production: tcptrace --pid <PID> (add --format json for scripts); see tcptrace --help`);
      } finally {
        if (proc.exitCode === null) process.kill(proc.pid!, 'SIGKILL');
        rmSync(`/tmp/perf-${proc.pid}.map`, { force: true });
      }
    });
}

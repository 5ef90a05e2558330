/** A fixture process that waits for a line on stdin and reports on stdout, line by line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { sleep } from './proc.js';

export interface LineFixture {
  proc: ChildProcess;
  lines: string[];
  /** the first line matching re, waiting up to ms for it */
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

/** Starts cmd in its own process group (stopGroup stops it by pid), collecting its stdout lines. */
export function startLineFixture(cmd: string, args: string[]): LineFixture {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
  const lines: string[] = [];
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const waitFor = async (re: RegExp, ms = 20_000): Promise<string> => {
    for (let t = 0; t < ms; t += 50) {
      const l = lines.find((x) => re.test(x));
      if (l) return l;
      await sleep(50);
    }
    throw new Error(`${cmd} never printed ${re}; printed ${JSON.stringify(lines)}`);
  };
  return { proc, lines, waitFor };
}

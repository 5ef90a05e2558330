/**
 * Logging: pino on stderr (stdout carries data: reports, JSON, recordings).
 * One child logger per component; nothing per event above `trace`.
 */
import { pino, type Logger } from 'pino';

let root: Logger | undefined;

export function rootLogger(): Logger {
  if (!root) {
    root = pino(
      { name: 'tcptrace', level: process.env.TCPTRACE_LOG ?? 'warn', base: undefined },
      pino.destination({ fd: 2, sync: true }),
    );
  }
  return root;
}

export function setLogLevel(level: string): void {
  rootLogger().level = level;
}

export function logger(component: string): Logger {
  return rootLogger().child({ component });
}

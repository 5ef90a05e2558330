/** What a recording says each socket's life was, from its raw events: the ground truth an export is compared with. */
import type { Recorded } from './recording.js';
import { isBirth, stateName, TCP } from '../../src/model/states.js';

/** each socket's states as the recording has them, by "local remote" (the tuple once complete) */
export function recordedStates(rec: Recorded): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of rec.present) out.set(`${p.local} ${p.remote}`, [stateName(p.state)]);
  const lives = new Map<number, { key: string | null; states: number[] }>();
  const done: { key: string | null; states: number[] }[] = [];
  for (const ev of rec.events) {
    if (ev.type !== 'transition') continue;
    let life = lives.get(ev.sk);
    if (life && isBirth(ev.oldState, ev.newState)) {
      done.push(life);
      life = undefined;
    }
    if (!life) {
      life = { key: null, states: [] };
      lives.set(ev.sk, life);
      if (ev.oldState !== TCP.CLOSE && !(ev.oldState === TCP.LISTEN && ev.newState === TCP.SYN_RECV)) life.states.push(ev.oldState);
    }
    if (!ev.local.endsWith(':0') && (!ev.remote.endsWith(':0') || ev.newState === TCP.LISTEN)) life.key = `${ev.local} ${ev.remote}`;
    if (ev.newState === TCP.CLOSE) {
      done.push(life);
      lives.delete(ev.sk);
    } else if (life.states[life.states.length - 1] !== ev.newState) life.states.push(ev.newState);
  }
  for (const l of [...done, ...lives.values()]) {
    if (!l.key) continue;
    const prev = out.get(l.key);
    // a present socket's later transitions continue its life
    const states = prev ? [...prev, ...l.states.map(stateName).filter((s, i) => i > 0 || s !== prev[prev.length - 1])] : l.states.map(stateName);
    out.set(l.key, states);
  }
  return out;
}


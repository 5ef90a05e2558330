/** Reads a recording back into decoded events, for assertions. */
import { decodeBatch } from '../../src/decode.js';
import type { PresentEvent, TraceEvent } from '../../src/model/events.js';
import { replay } from '../../src/record/reader.js';
import type { SessionEnd, SessionInfo } from '../../src/trace/types.js';
import type { ResolvedStack } from '../../src/stacks/types.js';

export interface Recorded {
  info: SessionInfo;
  present: PresentEvent[];
  events: TraceEvent[];
  stacks: ResolvedStack[];
  end: SessionEnd;
}

export async function readRecording(path: string): Promise<Recorded> {
  const rec: Partial<Recorded> & { events: TraceEvent[]; present: PresentEvent[]; stacks: ResolvedStack[] } = { events: [], present: [], stacks: [] };
  await replay(path, {
    stacks: (items) => void rec.stacks.push(...items),
    begin: (info) => void (rec.info = info),
    present: (p) => void rec.present.push(...p),
    batch: (buf) => decodeBatch(buf, rec.events),
    counters: () => {},
    finish: (end) => void (rec.end = end),
  });
  return rec as Recorded;
}

/**
 * Perfetto packets with protobufjs's Writer, the field numbers read from the
 * project's own schema (perfetto.proto) once at start: the schema is the one
 * place they are written down, and a field this code names that the schema
 * lacks fails at start, not in a reader. Packets go to an OutputFile in chunks
 * of about a megabyte, so the trace is never whole in memory.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { OutputFile } from './output.js';

const require = createRequire(import.meta.url);
// protobufjs is CommonJS: its Writer and schema parser through require()
const protobuf = require('protobufjs') as typeof import('protobufjs');

/** the schema, next to this module's source (dist/src/export → src/export) */
export const PERFETTO_PROTO = fileURLToPath(new URL('../../../src/export/perfetto.proto', import.meta.url));

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;

type Fields = Record<string, number>;

/** field name → tag (number << 3 | wire type), per message */
function tagsOf(): Record<string, Fields> {
  const root = protobuf.parse(readFileSync(PERFETTO_PROTO, 'utf8'), { keepCase: true }).root;
  const out: Record<string, Fields> = {};
  const walk = (ns: import('protobufjs').NamespaceBase) => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobuf.Type) {
        const f: Fields = {};
        for (const field of o.fieldsArray) {
          const wire = field.resolvedType instanceof protobuf.Type || field.type === 'string' || field.type === 'bytes' ? LEN : field.type === 'fixed64' || field.type === 'double' ? FIXED64 : VARINT;
          f[field.name] = (field.id << 3) | wire;
        }
        out[o.name] = f;
      }
      if (o instanceof protobuf.Namespace) walk(o);
    }
  };
  root.resolveAll();
  walk(root);
  return out;
}

const TAGS = tagsOf();

/** the tag of message.field, or an error naming what the schema lacks */
export function tag(message: string, field: string): number {
  const t = TAGS[message]?.[field];
  if (t === undefined) throw new Error(`perfetto.proto has no field ${message}.${field}`);
  return t;
}

type Writer = import('protobufjs').Writer;

/** Writes packets (Trace.packet, field 1) one after another, flushing whole chunks. */
export class PacketStream {
  private w: Writer = protobuf.Writer.create();
  private packetsInChunk = 0;
  packets = 0;
  bytes = 0;
  private readonly packetTag = tag('Trace', 'packet');

  constructor(private readonly out: OutputFile) {}

  /** one TracePacket: fill() writes its fields */
  packet(fill: (w: Writer) => void): void {
    const w = this.w;
    w.uint32(this.packetTag).fork();
    fill(w);
    w.ldelim();
    this.packets++;
    if (++this.packetsInChunk >= 4096 || w.len >= 1 << 20) this.flush();
  }

  flush(): void {
    if (!this.packetsInChunk) return;
    const buf = this.w.finish();
    this.bytes += buf.length;
    this.out.write(buf);
    this.w = protobuf.Writer.create();
    this.packetsInChunk = 0;
  }
}

/** Field helpers over a Writer: the tag, then the value; nested messages by fork/ldelim. */
export const pb = {
  uint(w: Writer, t: number, v: number): void {
    // uint64 of a number goes through LongBits: 32-bit values (all but timestamps) take the short way
    if (v <= 0xffffffff) w.uint32(t).uint32(v);
    else w.uint32(t).uint64(v);
  },
  int(w: Writer, t: number, v: number): void {
    w.uint32(t).int64(v);
  },
  bool(w: Writer, t: number, v: boolean): void {
    w.uint32(t).bool(v);
  },
  double(w: Writer, t: number, v: number): void {
    w.uint32(t).double(v);
  },
  fixed64(w: Writer, t: number, v: number): void {
    w.uint32(t).fixed64(v);
  },
  str(w: Writer, t: number, v: string): void {
    w.uint32(t).string(v);
  },
  bytes(w: Writer, t: number, v: Uint8Array): void {
    w.uint32(t).bytes(v);
  },
  msg(w: Writer, t: number, fill: (w: Writer) => void): void {
    w.uint32(t).fork();
    fill(w);
    w.ldelim();
  },
};

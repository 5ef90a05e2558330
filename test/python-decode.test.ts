/**
 * The location-table decoder and the str reader (src/stacks/python/) on bytes
 * of real code objects and real str objects, taken from each CPython 3.11-3.13
 * on the machine by the interpreter itself (co_linetable, and ctypes.string_at
 * of the objects): no root, no BPF. Ground truth is CPython's own
 * co_positions() for every code unit of every function of a real module.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { lineForOffset } from '../src/stacks/python/locations.js';
import { decodeStr, strShape } from '../src/stacks/python/strings.js';
import { tableOffsets } from '../src/stacks/python/offsets.js';

const PYENV = '/root/.pyenv/versions';
const pythons: { label: string; path: string }[] = [];
if (existsSync('/usr/bin/python3.11')) pythons.push({ label: 'Debian 3.11', path: '/usr/bin/python3.11' });
for (const v of existsSync(PYENV) ? readdirSync(PYENV).sort() : []) {
  if (/^3\.1[1-3]\.\d+$/.test(v) && existsSync(join(PYENV, v, 'bin/python3'))) pythons.push({ label: `pyenv ${v}`, path: join(PYENV, v, 'bin/python3') });
}

const DUMP_CODES = String.raw`
import json, sys, types, http.client, asyncio.base_events
def walk(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c)
out = []
for mod in (http.client, asyncio.base_events):
    src = open(mod.__file__).read()
    for code in walk(compile(src, mod.__file__, "exec")):
        out.append({"name": code.co_qualname, "first": code.co_firstlineno, "table": code.co_linetable.hex(),
                    "lines": [p[0] for p in code.co_positions()]})
print(json.dumps({"minor": sys.version_info[1], "codes": out}))
`;

const DUMP_STRS = String.raw`
import ctypes, json, sys
out = []
for s in ["fetch_catalog", "CatalogClient.fetch_catalog", "caf\u00e9_handler", "\u0394elta.\u03c3end", "emoji_\U0001F600_path", ""]:
    out.append({"s": s, "bytes": ctypes.string_at(id(s), sys.getsizeof(s)).hex()})
print(json.dumps({"minor": sys.version_info[1], "strs": out}))
`;

function run(path: string, code: string): any {
  const r = spawnSync(path, ['-c', code], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

if (!pythons.length) test('Python decoders on real objects', { skip: 'no CPython 3.11-3.13 on this machine' }, () => {});

for (const py of pythons) {
  test(`${py.label}: the location table gives co_positions()'s line for every code unit of http.client and asyncio.base_events`, () => {
    const { codes } = run(py.path, DUMP_CODES);
    let units = 0;
    assert.ok(codes.length > 100, `only ${codes.length} code objects`);
    for (const c of codes) {
      const table = Buffer.from(c.table, 'hex');
      c.lines.forEach((want: number | null, unit: number) => {
        assert.equal(lineForOffset(table, c.first, unit * 2), want, `${c.name} code unit ${unit}`);
        units++;
      });
      // past the end of the table: no line, not a wrong one
      assert.equal(lineForOffset(table, c.first, c.lines.length * 2 + 2), null);
    }
    assert.ok(units > 5000, `${units} code units checked`);
  });

  test(`${py.label}: compact str objects (ASCII, latin-1, UCS-2, UCS-4, empty) read back from their own bytes`, () => {
    const { minor, strs } = run(py.path, DUMP_STRS);
    const layout = tableOffsets(minor)!;
    for (const { s, bytes } of strs) {
      const b = Buffer.from(bytes, 'hex');
      const shape = strShape(b, layout);
      assert.ok(!('error' in shape), `${JSON.stringify(s)}: ${JSON.stringify(shape)}`);
      assert.equal(shape.length, [...s].length);
      assert.equal(decodeStr(b.subarray(shape.dataOffset), shape.length, shape.charSize), s);
    }
  });
}

test('damaged input: a table that does not parse throws RangeError, a string header out of bounds is refused', () => {
  assert.throws(() => lineForOffset(Uint8Array.from([0x01, 0x02]), 1, 0), RangeError); // no entry-start bit
  assert.throws(() => lineForOffset(Uint8Array.from([0x80 | (14 << 3)]), 1, 10), RangeError); // long form (code 14) cut short
  const h = Buffer.alloc(40);
  h.writeBigInt64LE(1n << 40n, 16); // length 2^40
  h.writeUInt32LE((1 << 2) | (1 << 5) | (1 << 6), 32);
  assert.match((strShape(h, { asciiData: 40, compactData: 56 }) as { error: string }).error, /out of bounds/);
  h.writeBigInt64LE(3n, 16);
  h.writeUInt32LE(1 << 2, 32); // not compact
  assert.match((strShape(h, { asciiData: 40, compactData: 56 }) as { error: string }).error, /not a compact/);
});

/**
 * The first step of naming Java frames (issue 27): reading a live HotSpot JVM
 * from outside, with no flag and no attach API. For every JDK under
 * /usr/lib/jvm (Debian's OpenJDK 17, Temurin 25): its VMStructs tables read,
 * the VM release they hold equals the build `java -version` prints, the
 * offsets Java unwinding needs are all there (JDK 17's values as the
 * reference memo measured them), and every code heap lies in an executable
 * mapping of the process (/proc/PID/maps). A process with no JVM is none.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { HotSpotProcess } from '../src/stacks/hotspot/process.js';
import { processMaps } from '../src/sys/procfs.js';
import { FIXTURES, sleep, stopGroup } from './helpers/proc.js';

const JVM = '/usr/lib/jvm';
const jdks = [...new Set((existsSync(JVM) ? readdirSync(JVM) : []).map((d) => join(JVM, d)).filter((d) => existsSync(join(d, 'bin/java')) && existsSync(join(d, 'lib/server/libjvm.so'))).map((d) => realpathSync(d)))].sort();

/** the fields and types the Java unwinder reads (names as VMStructs spells them on JDK 17 and 25) */
const FIELDS = ['Method::_constMethod', 'ConstMethod::_constants', 'ConstantPool::_pool_holder', 'Klass::_name', 'Symbol::_length', 'Symbol::_body', 'CodeBlob::_name', 'CodeBlob::_frame_size', 'JavaThread::_anchor', 'nmethod::_compile_id'];
const TYPES = ['Method', 'ConstMethod', 'ConstantPool', 'Symbol', 'nmethod', 'CodeBlob', 'JavaThread'];

if (!jdks.length) test('HotSpot JVMs', { skip: `no JDK with lib/server/libjvm.so under ${JVM}` }, () => {});

for (const jdk of jdks) {
  describe(`HotSpot in ${jdk}`, () => {
    test('VMStructs read from the live JVM: its release, the fields unwinding needs, its code heaps', async () => {
      const version = spawnSync(join(jdk, 'bin/java'), ['-version'], { encoding: 'utf8' }).stderr;
      const build = /Runtime Environment.*\(build ([^)]+)\)/.exec(version)?.[1];
      assert.ok(build, version);
      const proc = spawn(join(jdk, 'bin/java'), [join(FIXTURES, 'java/Sleep.java')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
      try {
        let out = '';
        proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        for (let i = 0; i < 300 && !out.includes('READY'); i++) await sleep(100);
        assert.ok(out.includes('READY'), 'the JVM did not start');
        const h = HotSpotProcess.detect(proc.pid!);
        assert.ok(h, 'no JVM recognised');
        assert.equal(h.release, build);
        for (const f of FIELDS) assert.ok(h.vm.offsets.has(f), `VMStructs lacks ${f}`);
        for (const t of TYPES) assert.ok((h.vm.sizes.get(t) ?? 0) > 0, `VMTypes lacks ${t}`);
        if (build.startsWith('17.')) {
          // the reference memo's JDK 17.0.15 values (../shared/reference/interpreter-stacks.md)
          assert.equal(h.vm.offsets.get('Method::_constMethod'), 8);
          assert.equal(h.vm.sizes.get('ConstMethod'), 48);
          assert.equal(h.vm.sizes.get('ConstantPool'), 72);
          assert.equal(h.vm.offsets.get('Klass::_name'), 24);
          assert.equal(h.vm.offsets.get('nmethod::_compile_id'), 304);
        }
        assert.ok(h.heaps.length >= 1 && h.heaps.length <= 3, `${h.heaps.length} code heaps`);
        const exec = processMaps(proc.pid!).filter((m) => m.perms.includes('x'));
        for (const heap of h.heaps) {
          const inside = exec.some((m) => BigInt(m.start) <= heap.low && heap.high <= BigInt(m.end));
          assert.ok(inside, `code heap ${heap.low.toString(16)}-${heap.high.toString(16)} is not in an executable mapping`);
          assert.equal(h.heapOf(heap.low), heap);
          assert.ok(heap.log2SegmentSize >= 4 && heap.log2SegmentSize <= 12);
        }
      } finally {
        await stopGroup(proc);
      }
    });
  });
}

test('a process without a JVM is none', () => {
  assert.equal(HotSpotProcess.detect(process.pid), null);
});

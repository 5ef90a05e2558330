#!/usr/bin/env bash
# `npm run test:kernels`: the kernel-dependent suite (test/kernel/modes.ts) in
# every attach mode on stock Debian kernels (5.10, 6.1, 6.12, newest) under QEMU
# (scripts/vmtest/matrix), then a kernel x attach-mode table in
# docs/kernel-matrix-results.md, printed as well. See docs/kernel-matrix.md.
#
# usage: scripts/test-kernels.sh [SERIES...]        (as root; default: all four)
# env:   TCPTRACE_SKIP_BUILD=1   do not run scripts/build.mjs first
#        TCPTRACE_REQUIRE_MODES  modes every kernel must have (default: all)
#        TCPTRACE_KERNEL_MODES   only these modes (comma separated; for debugging)
#        TCPTRACE_RESULTS_MD     where the table goes (default: docs/kernel-matrix-results.md)
#        VMTEST_*                as for scripts/vmtest (cache, timeout, ...)
# exit:  0 all kernels that ran passed; 1 a guest test failed (or a VM failed, or
#        left no results); 125 no kernel could run at all (all skipped) or bad usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
# shellcheck source=vmtest/lib.sh
. "$root/scripts/vmtest/lib.sh"

series=("$@")
[ ${#series[@]} -gt 0 ] || read -r -a series <<<"$VT_ALL_SERIES"
for s in "${series[@]}"; do
  vt_series_info "$s" || vt_die "unknown series '$s' (want some of: $VT_ALL_SERIES)"
done
[ "$(id -u)" = 0 ] || vt_die "run as root (QEMU's cache, BPF in the guests)"

t_start=$(vt_now_ms)
out=$root/.vmtest-results/kernels
md=${TCPTRACE_RESULTS_MD:-$root/docs/kernel-matrix-results.md}
mkdir -p "$out/bin"

# ---- host side: build, and the two C fixtures (gcc is not run under TCG)
if [ -z "${TCPTRACE_SKIP_BUILD:-}" ]; then
  node scripts/build.mjs >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; vt_die "build failed (log: $out/build.log)"; }
fi
[ -e dist/test/kernel/modes.js ] || vt_die "dist/test/kernel/modes.js is missing: run node scripts/build.mjs"
gcc -O2 -g -o "$out/bin/leaky_server" test/fixtures/leaky_server.c
gcc -O2 -g -o "$out/bin/uring_server" test/kernel/uring_server.c

# ---- inet_diag.ko + tcp_diag.ko of each kernel
# The vmtest guests load only the virtio/9p modules and have no /lib/modules.
# Stock Debian kernels build inet_diag and tcp_diag as modules (=m on 5.10 .. 7.x)
# and modprobe them on the first sock_diag request; in the guest that request
# fails with ENOENT, so tcptrace could not see the sockets that predate attach
# (and ss would fall back to /proc/net/tcp). The kernel's own modules are
# unpacked from its package into $VMTEST_CACHE/extra-modules/KVER/ and loaded in
# the guest with the host's static busybox (the guest runs the host's root), from
# a copy in the project: the guest cannot see a cache under /tmp or /var/tmp.
modroot=$VT_CACHE/extra-modules
rm -rf "$out/modules"

# SERIES -> 0 with the modules in $modroot/KVER, else 1 with TK_REASON
tk_diag_modules() {
  local s=$1 kver dir tmp deps deb m f dep rc=0
  TK_REASON= TK_KVER=
  vt_cache_init
  vt_lock
  if ! vt_resolve "$s"; then
    TK_REASON=$VT_REASON
    vt_unlock
    return 1
  fi
  kver=$VT_KVER TK_KVER=$VT_KVER
  dir=$modroot/$kver
  if [ -e "$dir/complete" ]; then
    vt_unlock
    return 0
  fi
  tmp=$(mktemp -d "$VT_CACHE/tmp/diag.XXXXXX")
  if id _apt >/dev/null 2>&1; then chown _apt "$tmp" 2>/dev/null || true; fi
  vt_log "$s: unpacking inet_diag.ko and tcp_diag.ko from linux-image-$kver"
  if ! vt_apt_download "$tmp" "linux-image-$kver"; then
    TK_REASON="apt-get download linux-image-$kver failed: $(grep -m1 -E '^(E|W):' "$tmp/download.log" | cut -c1-200)"
    rc=1
  else
    # Debian >= 6.16: the modules are in linux-modules-KVER (as in vt_fetch_in)
    deps=$(dpkg-deb -f "$tmp"/linux-image-"$kver"_*.deb Depends 2>/dev/null || true)
    case $deps in
      *"linux-modules-$kver"*)
        vt_apt_download "$tmp" "linux-modules-$kver" || { TK_REASON="apt-get download linux-modules-$kver failed"; rc=1; } ;;
    esac
  fi
  if [ $rc = 0 ]; then
    mkdir -p "$tmp/x" "$dir.new"
    for deb in "$tmp"/*.deb; do
      dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards '*/modules.builtin' \
        '*/kernel/net/ipv4/inet_diag.ko*' '*/kernel/net/ipv4/tcp_diag.ko*' 2>/dev/null || true
    done
    : >"$dir.new/modules.load"
    for m in inet_diag tcp_diag; do
      f=$(find "$tmp/x" -name "$m.ko*" | head -n 1)
      if [ -z "$f" ]; then
        # built in: nothing to load
        if find "$tmp/x" -name modules.builtin -exec grep -q "/$m.ko\$" {} + 2>/dev/null; then continue; fi
        TK_REASON="$m.ko is not in the packages of $kver"
        rc=1
        break
      fi
      case $f in
        *.xz) xz -dc "$f" >"$dir.new/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$dir.new/$m.ko" ;;
        *.gz) gzip -dc "$f" >"$dir.new/$m.ko" ;;
        *) cp "$f" "$dir.new/$m.ko" ;;
      esac || { TK_REASON="cannot decompress $f"; rc=1; break; }
      dep=$(tr '\0' '\n' <"$dir.new/$m.ko" | sed -n 's/^depends=//p' | head -n 1)
      case ",$dep," in ,, | ,inet_diag,) ;; *) TK_REASON="$m.ko depends on '$dep'"; rc=1; break ;; esac
      echo "$m.ko" >>"$dir.new/modules.load"
    done
  fi
  if [ $rc = 0 ]; then
    echo "$kver" >"$dir.new/complete"
    rm -rf "$dir" && mv "$dir.new" "$dir"
  else
    rm -rf "$dir.new"
  fi
  rm -rf "$tmp"
  vt_unlock
  return $rc
}

for s in "${series[@]}"; do
  # a series that cannot be resolved here is reported as a skip by the matrix
  if tk_diag_modules "$s"; then
    mkdir -p "$out/modules/$TK_KVER"
    cp "$modroot/$TK_KVER"/*.ko "$modroot/$TK_KVER/modules.load" "$out/modules/$TK_KVER/" 2>/dev/null || true
  else
    vt_log "$s: no sock_diag modules for the guest: $TK_REASON"
  fi
done

# ---- the matrix: one VM per kernel, the suite in each
# The guest shell has `ulimit -l unlimited`; a distribution's default is 64 KiB
# (8 MiB on newer systemd), and kernels before 5.11 charge BPF maps and programs
# to it. The suite runs under 64 KiB so that 5.10 proves libbpf raises it itself.
guest='d=$TK_MODROOT/$VMTEST_KERNEL
if [ -f "$d/modules.load" ]; then
  for m in $(cat "$d/modules.load"); do /bin/busybox insmod "$d/$m" || echo "kernel suite: insmod $m failed"; done
else
  echo "kernel suite: no $d/modules.load: sock_diag may be missing"
fi
ulimit -l 64
exec node dist/test/kernel/modes.js'
set +e
# per kernel, boot + every mode: 900 s. Under TCG a kernel's run takes 3 to 6 minutes on
# an idle 2-core box (2026-12-04) and up to 12 on a slow or loaded one (5.10, 2026-12-06):
# 480 s cut 5.10 and 6.1 short there. At worst four kernels take an hour, which with
# npm test stays under the CI's 90-minute limit.
scripts/vmtest/matrix --kernels "${series[*]}" --out "$out/results.json" --result-dir "$out" \
  --timeout "${VMTEST_TIMEOUT:-900}" \
  --env "TK_MODROOT=$out/modules" \
  --env "TCPTRACE_LEAKY_SERVER=$out/bin/leaky_server" \
  --env "TCPTRACE_URING_SERVER=$out/bin/uring_server" \
  --env "TCPTRACE_REQUIRE_MODES=${TCPTRACE_REQUIRE_MODES:-all}" \
  --env "TCPTRACE_KERNEL_MODES=${TCPTRACE_KERNEL_MODES:-}" \
  -- sh -c "$guest"
mrc=$?
set -e
[ -s "$out/results.json" ] || vt_die "the matrix wrote no $out/results.json (exit $mrc)"

# ---- the table
set +e
node - "$out/results.json" "$md" "$(($(vt_now_ms) - t_start))" <<'EOF'
const fs = require('fs');
const [resultsFile, mdFile, totalMs] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
const MODES = ['fentry', 'tp_btf', 'kprobe', 'raw_tp', 'tracepoint'];
const rows = [], notes = [];
let bad = 0;
for (const k of r.kernels) {
  const doc = k.results?.['kernel-modes.json'];
  const name = `${k.series} (${k.kver ?? 'not fetched'})`;
  if (k.status === 'skip') {
    rows.push([name, 'skip', ...MODES.map(() => 'skip'), '-']);
    notes.push(`- ${k.series}: skipped: ${k.skipped}`);
    continue;
  }
  if (!doc || !Array.isArray(doc.results)) {
    bad++;
    rows.push([name, 'no result', ...MODES.map(() => 'no result'), String(k.seconds)]);
    notes.push(`- ${k.series}: the guest left no results (rc ${k.rc}${k.error ? `: ${k.error}` : k.rc === 125 ? ': VM failed or timed out' : ''})`);
    continue;
  }
  const by = new Map(doc.results.map((x) => [x.mode, x]));
  const cell = (x) => (!x ? 'not run' : x.status === 'pass' ? 'pass' : x.status === 'fail' ? '**FAIL**' : 'skip');
  const f = by.get('features');
  rows.push([name, f ? `${cell(f)}: ${f.chosen ?? '-'}` : 'not run', ...MODES.map((m) => cell(by.get(m))), String(k.seconds)]);
  for (const x of doc.results) {
    if (x.status === 'fail') { bad++; notes.push(`- ${k.series} ${x.mode}: FAIL: ${x.reason}`); }
    else if (x.status === 'skip') notes.push(`- ${k.series} ${x.mode}: skipped: ${x.reason}`);
  }
  if (k.status === 'fail' && !doc.results.some((x) => x.status === 'fail')) {
    bad++;
    notes.push(`- ${k.series}: guest exited ${k.rc}${k.error ? ` (${k.error})` : ''}`);
  }
}
const header = ['kernel', 'features (chosen)', ...MODES, 'VM seconds'];
const table = [header, header.map(() => '---'), ...rows].map((c) => `| ${c.join(' | ')} |`).join('\n');
const ran = r.kernels.filter((k) => k.status !== 'skip').length;
const text = `# Kernel matrix results

Written by \`npm run test:kernels\` (scripts/test-kernels.sh): the kernel suite
test/kernel/modes.ts in every attach mode, on stock Debian kernels under QEMU
(${r.accel}). See docs/kernel-matrix.md.

Run started ${r.started}; ${ran} of ${r.kernels.length} kernels ran; ${(Number(totalMs) / 1000).toFixed(1)} s in all
(VMs ${r.seconds.toFixed(1)} s). Each mode: a leaky C server with 2 CLOSE_WAIT sockets from before
attach, 2 leaks and 3 good requests during the trace, 1 request to an io_uring server; see the
header of test/kernel/modes.ts for what is asserted.

${table}
${notes.length ? `\n${notes.join('\n')}\n` : ''}`;
fs.writeFileSync(mdFile, text);
process.stdout.write('\n' + text);
process.exit(bad ? 1 : 0);
EOF
trc=$?
set -e
if [ $mrc = 125 ]; then exit 125; fi
if [ $mrc != 0 ] || [ $trc != 0 ]; then exit 1; fi
exit 0

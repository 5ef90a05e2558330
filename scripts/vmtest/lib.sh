# shellcheck shell=bash
# shellcheck disable=SC2034 # VT_* globals are read by the scripts that source this
# Shared code of scripts/vmtest/{run,kernels,matrix}. Sourced, never executed.
#
# What lives here:
#   - host tool checks (qemu-system-x86, busybox-static are installed on demand),
#   - kernel series -> Debian suites -> newest package name (resolved at run time,
#     because Debian renames kernel packages on every ABI bump),
#   - fetching a kernel package (apt-get download + dpkg-deb, never installed into /boot),
#   - building the busybox initramfs (QEMU itself is started by run).
#
# Functions report through globals (VT_KVER, VT_REASON, VT_APT, ...) instead of
# stdout so callers can use them in `if` without a subshell. Because `set -e` is
# off inside functions called from `if`, every step checks its own errors.

VT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VT_CACHE=${VMTEST_CACHE:-/var/cache/tcptrace-vmtest}
VT_ALL_SERIES="5.10 6.1 6.12 newest"
# apt lists of extra suites older than this (seconds) are refreshed before use;
# a download that fails with the old lists triggers a refresh and one retry anyway.
VT_APT_TTL=${VMTEST_APT_TTL:-21600}
VT_KEYRING=${VMTEST_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
# modules needed for the 9p root; their dependencies are found from the modules
# themselves. Any of them may be built in (virtio_pci is, from 6.12 on).
VT_WANT_MODULES="virtio_pci 9pnet_virtio 9p"

VT_REASON=
VT_KVER=
VT_APT=()
VT_APT_LISTS=
# This host's apt config disables apt's binary package cache (Dir::Cache::pkgcache ""),
# so every apt-cache call would parse all lists (~0.7 s). Keep one of our own:
# apt checks it against the lists and rebuilds it when they change.
VT_APT_SYS=(-o "Dir::Cache::pkgcache=$VT_CACHE/apt/pkgcache.bin" -o "Dir::Cache::srcpkgcache=")

vt_log() { printf 'vmtest: %s\n' "$*" >&2; }
vt_die() {
  printf 'vmtest: error: %s\n' "$*" >&2
  exit 125
}

# Current time in milliseconds (for the timing lines).
vt_now_ms() { date +%s%3N; }
# Milliseconds -> "12.3"
vt_secs() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# Single-quote a word for POSIX sh (the guest command script runs under the
# host's /bin/sh, i.e. dash, so bash's printf %q is not usable).
vt_shquote() {
  local s=$1 q="'\\''"
  printf "'%s'" "${s//\'/$q}"
}

# ---------------------------------------------------------------- cache + lock

vt_cache_init() {
  mkdir -p "$VT_CACHE/kernels" "$VT_CACHE/apt" "$VT_CACHE/tmp" 2>/dev/null ||
    vt_die "cannot create the cache $VT_CACHE (set VMTEST_CACHE to a writable directory)"
  [ -w "$VT_CACHE" ] || vt_die "cache $VT_CACHE is not writable (set VMTEST_CACHE)"
}

# One lock for everything that writes the cache (apt lists, kernel downloads,
# initramfs builds), so concurrent runs don't clobber each other. QEMU runs
# without it. fd 9 is reserved for it.
vt_lock() {
  exec 9>>"$VT_CACHE/.lock"
  flock -w 1800 9 || vt_die "timed out waiting for the cache lock $VT_CACHE/.lock"
}
vt_unlock() { exec 9>&-; }

# ---------------------------------------------------------------- host tools

vt_busybox() { printf '%s' "${VMTEST_BUSYBOX:-/bin/busybox}"; }

# The initramfs needs a statically linked busybox: the dynamic one (package
# "busybox") would need the host's libc inside the initramfs.
vt_busybox_ok() {
  local bb
  bb=$(vt_busybox)
  [ -x "$bb" ] || return 1
  if [ -n "${VMTEST_BUSYBOX:-}" ]; then return 0; fi
  [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ]
}

# Install what is missing, and only that (CI machines start without QEMU).
vt_ensure_tools() {
  local missing=() t
  command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  vt_busybox_ok || missing+=(busybox-static)
  command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd) # 6.12+ bzImages are zstd
  for t in apt-get apt-cache dpkg-deb dpkg-query flock timeout gzip tar sha256sum; do
    command -v "$t" >/dev/null 2>&1 || vt_die "'$t' is missing; vmtest needs a Debian host with apt and coreutils"
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] ||
    vt_die "missing ${missing[*]}: run 'apt-get install --no-install-recommends ${missing[*]}' as root"
  vt_log "installing ${missing[*]} (apt-get install --no-install-recommends)"
  local log="$VT_CACHE/tmp/apt-install.log"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    vt_die "apt-get install ${missing[*]} failed (log: $log)"
  fi
  if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! vt_busybox_ok; then
    vt_die "installed ${missing[*]} but qemu-system-x86_64 or a static busybox is still missing"
  fi
}

# ---------------------------------------------------------------- apt: series -> suites

# Mirrors and suites this host already uses, read from `apt-cache policy` (no host
# name is written down anywhere). Sets VT_MIRROR, VT_SECMIRROR, VT_HOST_SUITES.
vt_mirrors() {
  [ -n "${VT_MIRRORS_DONE:-}" ] && return 0
  local out policy
  policy=$(apt-cache "${VT_APT_SYS[@]}" policy 2>/dev/null || true)
  # a fresh machine may have no apt lists yet: apt-cache policy then lists nothing
  if [[ $policy != *" Packages"* ]] && [ "$(id -u)" = 0 ]; then
    vt_log "no apt lists yet: apt-get update"
    apt-get update -q >"$VT_CACHE/tmp/apt-update.log" 2>&1 || vt_log "apt-get update failed (log: $VT_CACHE/tmp/apt-update.log)"
    policy=$(apt-cache "${VT_APT_SYS[@]}" policy 2>/dev/null || true)
  fi
  out=$(printf '%s\n' "$policy" | awk '
    $NF == "Packages" && $2 ~ /:\/\// { uri = $2; suite = $3; sub(/\/.*/, "", suite); next }
    uri != "" && $1 == "release" {
      if ($0 ~ /[ ,]o=Debian(,|$)/) {
        if ($0 ~ /[ ,]l=Debian-Security(,|$)/) { if (sec == "") sec = uri }
        else if ($0 ~ /[ ,]l=Debian(,|$)/) { if (main == "") main = uri }
        suites = suites " " suite
      }
      uri = ""
    }
    END { print main; print sec; print suites }')
  VT_MIRROR=${VMTEST_MIRROR:-$(sed -n 1p <<<"$out")}
  VT_SECMIRROR=${VMTEST_SECURITY_MIRROR:-$(sed -n 2p <<<"$out")}
  VT_HOST_SUITES=$(sed -n 3p <<<"$out")
  VT_MIRROR=${VT_MIRROR%/}
  VT_SECMIRROR=${VT_SECMIRROR%/}
  VT_MIRRORS_DONE=1
}

# SERIES -> VT_SUITES ("main:SUITE security:SUITE ...") and VT_REGEX (package names).
vt_series_info() {
  case $1 in
    5.10)
      VT_SUITES="security:bullseye-security"
      VT_REGEX='^linux-image-5\.10\.0-[0-9]+-amd64$' ;;
    6.1)
      VT_SUITES="main:bookworm main:bookworm-updates security:bookworm-security"
      VT_REGEX='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12)
      VT_SUITES="main:bookworm security:bookworm-security"
      VT_REGEX='^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
    newest)
      VT_SUITES="main:${VMTEST_NEWEST_SUITE:-trixie-backports}"
      # generic -amd64 flavour only: -cloud-amd64 has no 9p, -rt is not what we test
      VT_REGEX='^linux-image-[0-9]+\.[0-9]+(\.[0-9]+)?\+deb[0-9]+-amd64$' ;;
    *) return 1 ;;
  esac
}

# "main:bookworm security:bookworm-security" -> "bookworm bookworm-security"
vt_suite_names() {
  local s=${VT_SUITES//main:/}
  printf '%s' "${s//security:/}"
}

# KVER A.B -> true when the kernel is older than A.B
vt_kver_lt() {
  local v=${1%%[-+]*} maj min
  maj=${v%%.*} min=${v#*.}
  min=${min%%.*}
  [ "$maj" -lt "${2%%.*}" ] || { [ "$maj" = "${2%%.*}" ] && [ "$min" -lt "${2#*.}" ]; }
}

# Best guess of the series a full version belongs to (for fetching a KVER given
# on the command line, and for VMTEST_SERIES in the guest).
vt_series_of_kver() {
  case $1 in
    5.10.*) echo 5.10 ;;
    6.1.0-*) echo 6.1 ;;
    6.12.*+deb12-*) echo 6.12 ;;
    *+deb1[3-9]-* | *+deb[2-9][0-9]-*) echo newest ;;
    *) echo "${1%%-*}" | cut -d. -f1,2 ;;
  esac
}

# SERIES -> VT_APT: apt options that see the suites of that series. The host's own
# lists are used when they already carry all of them (bookworm here); otherwise the
# suites get private lists under $VT_CACHE/apt/SERIES, so the system's apt sources
# and lists stay untouched. FORCE=1 refreshes the lists now.
vt_apt_setup() {
  local series=$1 force=${2:-0} s kind suite uri absent=0
  VT_APT=()
  vt_series_info "$series" || { VT_REASON="unknown series '$series'"; return 1; }
  vt_mirrors
  for s in $VT_SUITES; do
    case " $VT_HOST_SUITES " in *" ${s#*:} "*) ;; *) absent=1 ;; esac
  done
  if [ $absent = 0 ] && [ -z "${VMTEST_PRIVATE_LISTS:-}" ]; then
    VT_APT=("${VT_APT_SYS[@]}")
    VT_APT_LISTS=/var/lib/apt/lists
    if [ "$force" = 1 ]; then
      vt_log "refreshing the system apt lists (apt-get update)"
      apt-get update -q >"$VT_CACHE/tmp/apt-update.log" 2>&1 ||
        { VT_REASON="apt-get update failed (log: $VT_CACHE/tmp/apt-update.log)"; return 1; }
    fi
    return 0
  fi
  local d="$VT_CACHE/apt/$series" src
  mkdir -p "$d/lists/partial" "$d/sources.list.d"
  src=
  for s in $VT_SUITES; do
    kind=${s%%:*} suite=${s#*:}
    if [ "$kind" = security ]; then uri=$VT_SECMIRROR; else uri=$VT_MIRROR; fi
    if [ -z "$uri" ]; then
      VT_REASON="no Debian ${kind} mirror in 'apt-cache policy' (set VMTEST_MIRROR / VMTEST_SECURITY_MIRROR)"
      return 1
    fi
    src+="deb [signed-by=$VT_KEYRING] $uri $suite main"$'\n'
  done
  VT_APT=(-o "Dir::Etc::SourceList=$d/sources.list" -o "Dir::Etc::SourceParts=$d/sources.list.d"
    -o "Dir::State::Lists=$d/lists" -o "Dir::Cache::pkgcache=$d/pkgcache.bin" -o "Dir::Cache::srcpkgcache=")
  VT_APT_LISTS=$d/lists
  # refresh when asked, when the sources changed (other mirror), or when stale
  if [ "$force" = 1 ] || [ "$(cat "$d/sources.list" 2>/dev/null)"$'\n' != "$src" ] ||
    [ ! -e "$d/updated" ] || [ $(($(date +%s) - $(stat -c %Y "$d/updated"))) -gt "$VT_APT_TTL" ]; then
    printf '%s' "$src" >"$d/sources.list"
    rm -f "$d/updated"
    # apt downloads as user _apt; let it write the private partial/ directory
    if id _apt >/dev/null 2>&1; then chown _apt "$d/lists/partial" 2>/dev/null || true; fi
    vt_log "updating private apt lists for $series ($(vt_suite_names))"
    if ! apt-get "${VT_APT[@]}" update -q >"$d/update.log" 2>&1 ||
      grep -qE '^(E:|W: Failed to fetch)' "$d/update.log"; then
      VT_REASON="apt-get update of $(vt_suite_names) failed: $(grep -m1 -E '^(E|W):' "$d/update.log" | cut -c1-200)"
      return 1
    fi
    touch "$d/updated"
  fi
  return 0
}

# SERIES -> VT_KVER (newest package name of that series), or VT_REASON.
vt_resolve() {
  local series=$1 name
  VT_KVER='' VT_REASON=''
  case $series in
    [0-9]*-*) VT_KVER=$series; return 0 ;; # already a full version (KVER)
  esac
  vt_apt_setup "$series" || return 1
  # The answer only changes when the lists do: remember it, keyed by the lists'
  # names, sizes and times.
  local lists=$VT_APT_LISTS memo key
  memo=$VT_CACHE/apt/resolved-$series
  key=$({ echo "$VT_REGEX"; stat -c '%n %s %Y' "$lists"/*Packages* 2>/dev/null; } | sha256sum | cut -c1-16)
  if [ "$(cut -d' ' -f1 "$memo" 2>/dev/null)" = "$key" ]; then
    VT_KVER=$(cut -d' ' -f2 "$memo")
    [ -n "$VT_KVER" ] && return 0
  fi
  name=$(apt-cache "${VT_APT[@]}" search --names-only "$VT_REGEX" 2>/dev/null |
    awk '{print $1}' | sort -V | tail -n 1)
  [ -z "$name" ] || echo "$key ${name#linux-image-}" >"$memo"
  if [ -z "$name" ]; then
    VT_REASON="no package matching $VT_REGEX in $(vt_suite_names)"
    return 1
  fi
  VT_KVER=${name#linux-image-}
}

# ---------------------------------------------------------------- fetch a kernel

vt_kdir() { printf '%s/kernels/%s' "$VT_CACHE" "$1"; }
# Bump when the layout of a cached kernel changes; older entries are rebuilt.
VT_CACHE_FORMAT=2
vt_have_kernel() { [ "$(cat "$(vt_kdir "$1")/complete" 2>/dev/null)" = "$1 format $VT_CACHE_FORMAT" ]; }

# apt-get download PKG... into DIR with the current VT_APT.
vt_apt_download() {
  local dir=$1
  shift
  (cd "$dir" && apt-get "${VT_APT[@]}" download -q "$@") >>"$dir/download.log" 2>&1
}

# KVER [SERIES] -> $VT_CACHE/kernels/KVER/{vmlinuz,config,modules/*.ko,modules.load,complete}.
# Returns 1 with VT_REASON when the packages cannot be downloaded (a "skip"),
# 2 when they were downloaded but something is wrong with them (an error).
vt_fetch() {
  local kver=$1 series=${2:-} kdir tmp rc
  vt_have_kernel "$kver" && return 0
  [ -n "$series" ] || series=$(vt_series_of_kver "$kver")
  kdir=$(vt_kdir "$kver")
  tmp=$(mktemp -d "$VT_CACHE/tmp/fetch.XXXXXX")
  if id _apt >/dev/null 2>&1; then chown _apt "$tmp" 2>/dev/null || true; fi
  local t0
  t0=$(vt_now_ms)
  vt_fetch_in "$kver" "$series" "$kdir" "$tmp"
  rc=$?
  if [ $rc = 0 ]; then
    vt_log "fetched $kver in $(vt_secs $(($(vt_now_ms) - t0)))s"
    rm -rf "$tmp"
  else
    # keep the download log next to the reason, drop the rest
    cp "$tmp/download.log" "$VT_CACHE/tmp/download-$kver.log" 2>/dev/null || true
    rm -rf "$tmp"
  fi
  return $rc
}

# SERIES or KVER -> VT_KVER, downloaded and unpacked into the cache.
# Returns 1 with VT_REASON when it cannot be had (a skip), 2 when it was
# downloaded but is unusable (an error).
vt_obtain() {
  local what=$1 series rc old why
  vt_resolve "$what" || return 1
  case $what in
    [0-9]*-*) series=$(vt_series_of_kver "$what") ;;
    *) series=$what ;;
  esac
  if vt_fetch "$VT_KVER" "$series"; then rc=0; else rc=$?; fi
  # The lists named a package the mirror has dropped. vt_fetch refreshed them,
  # so the series may now resolve to its successor: try that once.
  if [ $rc = 1 ] && [ "$series" = "$what" ]; then
    old=$VT_KVER why=$VT_REASON
    rm -f "$VT_CACHE/apt/resolved-$what"
    if vt_resolve "$what" && [ "$VT_KVER" != "$old" ]; then
      if vt_fetch "$VT_KVER" "$series"; then rc=0; else rc=$?; fi
    else
      VT_KVER=$old VT_REASON=$why
    fi
  fi
  return $rc
}

vt_fetch_in() {
  local kver=$1 series=$2 kdir=$3 tmp=$4 pkgs=() try deps
  # which apt lists know linux-image-KVER? Try the guessed series first, then all.
  local s found=
  for s in "$series" $VT_ALL_SERIES; do
    vt_series_info "$s" || continue
    vt_apt_setup "$s" || continue
    if apt-cache "${VT_APT[@]}" show "linux-image-$kver" >/dev/null 2>&1; then found=$s; break; fi
  done
  if [ -z "$found" ]; then
    VT_REASON="package linux-image-$kver is not in any known suite"
    return 1
  fi
  vt_log "downloading linux-image-$kver (suite of series $found)"
  for try in 1 2; do
    rm -f "$tmp"/*.deb
    vt_apt_download "$tmp" "linux-image-$kver" && break
    # lists may name a version the mirror already dropped: refresh once and retry
    [ $try = 2 ] || vt_apt_setup "$found" 1 || break
  done
  if ! ls "$tmp"/linux-image-"$kver"_*.deb >/dev/null 2>&1; then
    VT_REASON="apt-get download linux-image-$kver failed: $(grep -m1 -E '^(E|W):' "$tmp/download.log" | cut -c1-200)"
    return 1
  fi
  # Debian >= 6.16: linux-image-KVER is an empty package that depends on
  # linux-binary-KVER (vmlinuz), linux-modules-KVER and linux-base-KVER (config).
  deps=$(dpkg-deb -f "$tmp"/linux-image-"$kver"_*.deb Depends 2>/dev/null || true)
  case $deps in
    *"linux-binary-$kver"*)
      pkgs=("linux-binary-$kver" "linux-modules-$kver")
      case $deps in *"linux-base-$kver"*) pkgs+=("linux-base-$kver") ;; esac
      if ! vt_apt_download "$tmp" "${pkgs[@]}"; then
        VT_REASON="apt-get download ${pkgs[*]} failed"
        return 1
      fi ;;
  esac
  vt_log "extracting $kver"
  vt_extract "$kver" "$kdir" "$tmp" || return 2
}

vt_first_existing() {
  local f
  for f in "$@"; do
    if [ -e "$f" ]; then
      printf '%s' "$f"
      return 0
    fi
  done
}

# Unpack only what the VM needs (vmlinuz, config, the virtio/9p modules): writing
# out the whole module tree would cost several seconds and ~400 MB per kernel.
vt_extract() {
  local kver=$1 kdir=$2 tmp=$3 deb x="$3/x" full=0
  mkdir -p "$x"
  local pats=('*/boot/vmlinuz-*' '*/boot/config-*' '*/modules/*/vmlinuz' '*/modules/*/config'
    '*/modules/*/modules.builtin'
    '*/modules/*/kernel/drivers/virtio/*' '*/modules/*/kernel/net/9p/*'
    '*/modules/*/kernel/fs/9p/*' '*/modules/*/kernel/fs/netfs/*' '*/modules/*/kernel/fs/fscache/*')
  for deb in "$tmp"/*.deb; do
    # tar fails when a pattern matches nothing in this .deb; the checks below decide
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards "${pats[@]}" 2>/dev/null || true
  done
  local vmlinuz config moddir
  # classic layout under /boot and /lib, >= 6.16 all under /usr/lib/modules/KVER
  vmlinuz=$(vt_first_existing "$x/boot/vmlinuz-$kver" "$x/lib/modules/$kver/vmlinuz" "$x/usr/lib/modules/$kver/vmlinuz")
  config=$(vt_first_existing "$x/boot/config-$kver" "$x/lib/modules/$kver/config" "$x/usr/lib/modules/$kver/config")
  moddir=$(vt_first_existing "$x/lib/modules/$kver/kernel" "$x/usr/lib/modules/$kver/kernel")
  moddir=${moddir%/kernel}
  [ -n "$vmlinuz" ] || { VT_REASON="no vmlinuz in the packages of $kver"; vt_log "error: $VT_REASON"; return 1; }
  [ -n "$moddir" ] || { VT_REASON="no modules in the packages of $kver"; vt_log "error: $VT_REASON"; return 1; }
  rm -rf "$kdir.new"
  mkdir -p "$kdir.new/modules"
  if ! vt_pick_modules "$moddir" "$kdir.new"; then
    # a dependency outside the directories above: unpack the whole tree once
    vt_log "$VT_REASON; unpacking all modules of $kver"
    full=1
    for deb in "$tmp"/*.deb; do
      dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards '*/modules/*' 2>/dev/null || true
    done
    rm -rf "$kdir.new/modules" && mkdir -p "$kdir.new/modules"
    vt_pick_modules "$moddir" "$kdir.new" || { vt_log "error: $VT_REASON"; return 1; }
  fi
  cp "$vmlinuz" "$kdir.new/vmlinuz"
  if [ -n "$config" ]; then cp "$config" "$kdir.new/config"; fi
  if [ -n "$config" ] && grep -qx 'CONFIG_PVH=y' "$config"; then
    vt_extract_vmlinux "$kdir.new/vmlinuz" "$kdir.new/vmlinux" ||
      vt_log "note: could not unpack vmlinux from $kver's bzImage, booting the bzImage (slower)"
  fi
  echo "$kver format $VT_CACHE_FORMAT" >"$kdir.new/complete"
  rm -rf "$kdir"
  mv "$kdir.new" "$kdir"
  [ $full = 0 ] || vt_log "note: $kver needed the full module tree"
  return 0
}

# bzImage -> the uncompressed ELF vmlinux inside it. QEMU boots that directly
# through the PVH entry point (CONFIG_PVH), which skips the kernel's own
# decompressor: that alone takes 3-4 s under TCG, about half of a short run.
# The payload's place is in the x86 boot header (boot protocol >= 2.08):
#   0x1f1 setup_sects (u8), 0x248 payload_offset (u32), 0x24c payload_length (u32),
# offsets counted from the protected-mode code at (setup_sects + 1) * 512.
vt_extract_vmlinux() {
  local in=$1 out=$2 ss po pl start magic cut=4
  ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$in" | tr -d ' ')
  po=$(od -An -tu4 -j $((0x248)) -N4 "$in" | tr -d ' ')
  pl=$(od -An -tu4 -j $((0x24c)) -N4 "$in" | tr -d ' ')
  [ -n "$ss" ] && [ -n "$po" ] && [ -n "$pl" ] && [ "$pl" -gt 0 ] || return 1
  [ "$ss" = 0 ] && ss=4
  start=$(((ss + 1) * 512 + po))
  magic=$(od -An -tx1 -j "$start" -N4 "$in" | tr -d ' ')
  # kbuild appends the uncompressed size (4 bytes) to every format but gzip
  local dec
  case $magic in
    fd377a58) dec=(xz -dc) ;;
    28b52ffd) command -v zstd >/dev/null 2>&1 || return 1; dec=(zstd -qdc) ;;
    1f8b*) dec=(gzip -dc); cut=0 ;;
    *) return 1 ;;
  esac
  if dd if="$in" iflag=skip_bytes,count_bytes skip="$start" count=$((pl - cut)) bs=1M status=none |
    "${dec[@]}" >"$out" 2>/dev/null && [ "$(od -An -tx1 -N4 "$out" | tr -d ' ')" = 7f454c46 ]; then
    return 0
  fi
  rm -f "$out"
  return 1
}

# Copy VT_WANT_MODULES and their dependencies (read from each module's own
# "depends=" modinfo field, which modpost wrote at build time, so no depmod is
# needed) into OUT/modules, decompressed, and write the load order to
# OUT/modules.load. Built-in ones are skipped.
vt_pick_modules() {
  local moddir=$1 out=$2 f n
  declare -A path=() builtin=() seen=()
  while IFS= read -r f; do
    n=${f##*/}
    n=${n%.ko*}
    path[${n//-/_}]=$f
  done < <(find "$moddir" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
  if [ -e "$moddir/modules.builtin" ]; then
    while IFS= read -r f; do
      n=${f##*/}
      n=${n%.ko}
      builtin[${n//-/_}]=1
    done <"$moddir/modules.builtin"
  fi
  : >"$out/modules.load"
  # depth-first, dependencies before the module itself
  _vt_visit() {
    local m=$1 src dst d deps
    [ -n "${seen[$m]:-}" ] && return 0
    seen[$m]=1
    [ -n "${builtin[$m]:-}" ] && return 0
    src=${path[$m]:-}
    [ -n "$src" ] || { VT_REASON="module $m (needed for 9p) not found"; return 1; }
    dst="$out/modules/$m.ko"
    case $src in
      *.xz) xz -dc "$src" >"$dst" ;;
      *.zst) zstd -qdc "$src" >"$dst" ;;
      *.gz) gzip -dc "$src" >"$dst" ;;
      *) cp "$src" "$dst" ;;
    esac || { VT_REASON="cannot decompress $src"; return 1; }
    deps=$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p')
    deps=${deps%%$'\n'*}
    for d in ${deps//,/ }; do _vt_visit "${d//-/_}" || return 1; done
    echo "$m.ko" >>"$out/modules.load"
  }
  for n in $VT_WANT_MODULES; do
    _vt_visit "$n" || return 1
  done
}

# ---------------------------------------------------------------- initramfs

# KVER -> $VT_CACHE/kernels/KVER/initramfs.cpio.gz, rebuilt whenever guest-init,
# busybox or the module set changes (their hash is kept next to it).
vt_initramfs() {
  local kver=$1 kdir key rd bb
  kdir=$(vt_kdir "$kver")
  bb=$(vt_busybox)
  key=$(cat "$VT_DIR/guest-init" "$bb" "$kdir/modules.load" | sha256sum | cut -c1-16)
  if [ -s "$kdir/initramfs.cpio.gz" ] && [ "$(cat "$kdir/initramfs.key" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  rd=$(mktemp -d "$VT_CACHE/tmp/initramfs.XXXXXX")
  mkdir -p "$rd"/{bin,dev,proc,sys,mnt,etc,lib/modules}
  cp "$bb" "$rd/bin/busybox"
  cp "$VT_DIR/guest-init" "$rd/init"
  chmod 755 "$rd/init" "$rd/bin/busybox"
  cp "$kdir"/modules/*.ko "$rd/lib/modules/" 2>/dev/null || true
  cp "$kdir/modules.load" "$rd/etc/modules.load"
  if [ -e "$kdir/config" ]; then cp "$kdir/config" "$rd/etc/kernel-config"; fi
  if ! (cd "$rd" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) >"$kdir/initramfs.cpio.gz.new"; then
    rm -rf "$rd"
    vt_die "building the initramfs of $kver failed"
  fi
  mv "$kdir/initramfs.cpio.gz.new" "$kdir/initramfs.cpio.gz"
  echo "$key" >"$kdir/initramfs.key"
  rm -rf "$rd"
  vt_log "built initramfs for $kver ($(wc -l <"$kdir/modules.load") modules, $(du -k "$kdir/initramfs.cpio.gz" | cut -f1) KiB)"
}

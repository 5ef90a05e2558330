#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for tcptrace, as root: installs the Debian
# packages that are missing (and only those), then `npm ci` (the committed lock,
# unchanged), which builds
# the BPF objects, the native addon and the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

# build: clang/bpftool/libbpf for CO-RE BPF, libelf/zlib for libbpf, libdw for stack unwinding
# run/test: iproute2 (ss, ip netns), util-linux (prlimit, setpriv), python3 and gcc for fixtures
# bench: nginx, wrk, libbpf-tools (tcpstates, the peer measured side by side)
# agent tests: prometheus (promtool checks the exposition; a real server scrapes the agent), golang-go's `go tool pprof` reads the profile
# export tests: protobuf-compiler (protoc decodes Perfetto exports independently), chromium (the HTML page, driven by playwright-core)
pkgs=(clang llvm libbpf-dev libelf-dev zlib1g-dev libdw-dev bpftool pkg-config make g++ gcc
      iproute2 util-linux procps python3 golang-go nginx-light wrk libbpf-tools
      protobuf-compiler chromium prometheus)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run this script as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian nginx package may start a system nginx on :80; tcptrace's bench uses its own config.
# npm ci installs exactly the committed lock (npm install would rewrite it on a fresh machine)
npm ci --no-audit --no-fund

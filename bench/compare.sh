#!/usr/bin/env bash
# Side-by-side benchmarks: netsh against the tools people use today
# (python3, nc, socat, curl, nmap, iperf3), on loopback only.
#
#   bench/compare.sh            all parts
#   bench/compare.sh startup    only bench/parts/startup.sh (and so on)
#   bench/compare.sh http       the HTTP group: http, http_static, websocket
#
# Each part in bench/parts/ is sourced and prints lines through `ratio`.
# Peers run alternately with netsh on the same work, several rounds each,
# and the best round counts (least disturbed by the other core's load).
set -euo pipefail
cd "$(dirname "$0")/.."

NETSH=${NETSH:-target/release/netsh}
ROUNDS=${ROUNDS:-5}
WORK=$(mktemp -d /tmp/netsh-bench.XXXXXX)
trap 'rm -rf "$WORK"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT

# Installs the Debian packages that provide missing commands.
need() {
  local missing=()
  local cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
      || echo "could not install ${missing[*]}; those comparisons are skipped" >&2
  fi
}

# The python that times commands: Debian's, when there is one. What a
# child costs to spawn counts in its time, and spawning from pyenv's
# larger interpreter (first on PATH on the dev machines) cost more.
HARNESS_PY=/usr/bin/python3
[ -x "$HARNESS_PY" ] || HARNESS_PY=python3

# Seconds (float) of the fastest of $ROUNDS runs of a command.
best_time() {
  "$HARNESS_PY" - "$ROUNDS" "$@" <<'PY'
import subprocess, sys, time
rounds, cmd = int(sys.argv[1]), sys.argv[2:]
best = float("inf")
for _ in range(rounds):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best = min(best, time.perf_counter() - t)
print(f"{best:.6f}")
PY
}

# ratio LABEL NETSH_VALUE PEER_NAME PEER_VALUE UNIT higher|lower
# Prints both figures and how many times better netsh is (>1 = netsh wins).
ratio() {
  python3 - "$@" <<'PY'
import sys
label, ours, peer_name, theirs, unit, better = sys.argv[1:7]
# An optional 7th names the first figure when it is not netsh's.
ours_name = sys.argv[7] if len(sys.argv) > 7 else "netsh"
ours, theirs = float(ours), float(theirs)
if better == "higher":
    r = ours / theirs if theirs else float("inf")
else:
    r = theirs / ours if ours else float("inf")
print(f"{label:<44} {ours_name} {ours:>12.4g} {unit:<8} {peer_name} {theirs:>12.4g} {unit:<8} ratio {r:6.2f}x")
PY
}

# Peak resident memory (MB) of a command.
peak_rss_mb() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f}")
PY
}

# A port nobody uses right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$1.
wait_listen() {
  for _ in $(seq 500); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.01
  done
  echo "nothing listens on port $1" >&2
  return 1
}

need python3:python3 ss:iproute2
if [ ! -x "$NETSH" ]; then
  cargo build --release --quiet
fi

parts=("$@")
if ((${#parts[@]} == 0)); then
  for f in bench/parts/*.sh; do parts+=("$(basename "$f" .sh)"); done
fi
# `http` named alone is issue 20's group: the scripted server, static
# files and WebSocket (a part not written yet is skipped).
if ((${#parts[@]} > 0)); then
  named=()
  for part in "${parts[@]}"; do
    if [ "$part" = http ]; then
      for p in http http_static websocket; do
        if [ -f "bench/parts/$p.sh" ]; then named+=("$p"); else echo "(bench/parts/$p.sh is not there: skipped)"; fi
      done
    else
      named+=("$part")
    fi
  done
  parts=("${named[@]}")
fi
for part in "${parts[@]}"; do
  echo "== $part"
  # shellcheck source=/dev/null
  source "bench/parts/$part.sh"
done

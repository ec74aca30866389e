# Cold start and idle memory (the foundation issue).
# `netsh -e '1'` against `python3 -c 'import socket'`, the REPL people reach for today
# (target ≥ 8×: issue 21).
need script:bsdutils
# The system interpreter, as the issue measures it (a pyenv shim adds ~20 ms).
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
# From an empty folder, as an installed netsh runs: the bundled scenarios and
# plugins come from the binary. `-e '1'` names no plugin, so none is loaded;
# the second line names one (services::), which is loaded and run.
NETSH_ABS=$(realpath "$NETSH")
mkdir -p "$WORK/empty"
pushd "$WORK/empty" >/dev/null
ours=$(best_time "$NETSH_ABS" -e '1')
py=$(best_time "$PYTHON" -c 'import socket')
ratio "cold start: netsh -e '1' vs python3 -c 'import socket'" "$ours" "python3" "$py" s lower
ours=$(best_time "$NETSH_ABS" -e 'services::well_known().len()')
ratio "cold start, a bundled plugin: services::well_known()" "$ours" "python3" "$py" s lower
ours=$(best_time "$NETSH_ABS" --list)
ratio "netsh --list (bundled scenarios)" "$ours" "python3" "$py" s lower
popd >/dev/null

# Startup in a tighter loop: 200 runs each, wall time per run.
# The harness is the same Debian python as the peer ($PYTHON): a child's
# CPU time includes what it costs to be spawned, and spawning from pyenv's
# interpreter (first on PATH here) added ~0.3 ms to both sides.
per_run() {
  "$PYTHON" - "$@" <<'PY'
import subprocess, sys, time
cmd = sys.argv[1:]
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    for _ in range(200):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best = min(best, (time.perf_counter() - t) / 200)
print(best)
PY
}
ours=$(cd "$WORK/empty" && per_run "$NETSH_ABS" -e '1')
py=$(per_run "$PYTHON" -c 'import socket')
ratio "cold start x200: netsh -e '1' vs python3" "$ours" "python3" "$py" s lower

# The same in CPU time (user + system of the children, from getrusage),
# runs of the two interleaved: on a shared 2-core machine, wall time also
# counts waiting for a core, which CPU time does not.
cpu_pair() {
  "$PYTHON" - "$@" <<'PY'
import resource, subprocess, sys
split = sys.argv.index("--")
cmds = [sys.argv[1:split], sys.argv[split + 1:]]
best = [float("inf"), float("inf")]
for _ in range(5):
    for i, cmd in enumerate(cmds):
        n = 100
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(n):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        best[i] = min(best[i], cpu / n)
print(best[0], best[1])
PY
}
read -r ours py < <(cd "$WORK/empty" && cpu_pair "$NETSH_ABS" -e '1' -- "$PYTHON" -c 'import socket')
ratio "cold start CPU time: netsh -e '1' vs python3" "$ours" "python3" "$py" s lower

# Idle REPL memory: the real REPL in a pseudo-terminal (util-linux `script`),
# measured from /proc after it has drawn its prompt.
( sleep 3 | script -qfc "$NETSH" /dev/null >/dev/null 2>&1 ) &
sleep 1.5
pid=$(pgrep -n -f "^$NETSH\$" || true)
if [ -n "$pid" ]; then
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
  echo "idle REPL RSS: ${rss} MB (target < 30 MB)"
else
  echo "idle REPL RSS: could not find the REPL process"
fi
wait

# Echo servers (the concurrency issue): round trips per second with 100
# concurrent clients through netsh's two `serve` shapes, beside the ceiling
# of this machine and the tools people use today:
#   - the closure shape `serve(port, |c| …)` vs a Rust thread-per-connection
#     server (examples/echo_threads.rs), the same shape in plain Rust;
#   - the event shape `serve(port, #{on_data: …})` vs a plain tokio server
#     (examples/echo_tokio.rs) and Python asyncio (bench/echo_asyncio.py);
#   - both vs socat fork/cat;
#   - and the ceiling of any Rhai-scripted server here (examples/echo_rhai.rs):
#     those two baselines running the same script per message on a bare Rhai
#     engine around the thinnest socket wrappers. netsh cannot beat it; the
#     ratio netsh/ceiling is what netsh's own code costs, and
#     ceiling/baseline what the interpreter costs.
# The load generator is examples/echo_load.rs (ECHO_THREADS tokio threads,
# default 1, so it costs one core at most and the server gets the other),
# the same for every server, run alternately, best of $ROUNDS.
# Beside the rates: each server's CPU per round trip (all, and in the
# kernel), and what netsh's Rhai engine alone costs per message
# (examples/rhai_floor), so a ratio can be read against the interpreter's
# floor: a Rhai handler cannot cost less than that, whatever netsh does.
# Then memory: 10,000 idle connections on the event shape, 1,000 on the
# closure shape, and what an idle server holds after 2,000 connections came
# and went.
need socat:socat python3:python3

ECHO_SECONDS=${ECHO_SECONDS:-4}
ECHO_THREADS=${ECHO_THREADS:-1}
ECHO_LOAD=target/release/examples/echo_load
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
for example in echo_load echo_tokio echo_threads; do
  [ -x "target/release/examples/$example" ] || cargo build --release --quiet --example "$example"
done
# Built every time (a no-op when current): they measure the engine as it is now.
cargo build --release --quiet --example rhai_floor --example echo_rhai

CLOSURE='serve("127.0.0.1:0", |c| { loop { let d = c.recv(); if d == "" { break } c.send(d) } }, #{quiet: true})'
EVENTS='serve("127.0.0.1:0", #{on_data: |c, d| c.send(d), quiet: true})'
LINES='serve("127.0.0.1:0", #{on_line: |c, l| c.send_line(l), quiet: true})'
# One worker, as many threads as asyncio: on a 2-core machine the load
# generator holds one core, and a second worker competes with it.
EVENTS1='serve("127.0.0.1:0", #{on_data: |c, d| c.send(d), quiet: true, workers: 1})'

# Starts server $1 (a name below) in the background; sets $server_pid and
# $server_port (every server prints its port first).
start_server() {
  local out="$WORK/port.$1"
  rm -f "$out"
  case $1 in
    closure) "$NETSH" -e "let s = $CLOSURE; print(s.port); s.wait()" >"$out" & ;;
    events) "$NETSH" -e "let s = $EVENTS; print(s.port); s.wait()" >"$out" & ;;
    events1) "$NETSH" -e "let s = $EVENTS1; print(s.port); s.wait()" >"$out" & ;;
    lines) "$NETSH" -e "let s = $LINES; print(s.port); s.wait()" >"$out" & ;;
    threads) target/release/examples/echo_threads 0 >"$out" & ;;
    tokio) target/release/examples/echo_tokio 0 >"$out" & ;;
    rhai_threads) target/release/examples/echo_rhai threads 0 >"$out" & ;;
    rhai_events) target/release/examples/echo_rhai events 0 >"$out" & ;;
    asyncio) "$PYTHON" bench/echo_asyncio.py 0 >"$out" & ;;
    # The same with glibc told to keep freed memory: Python 3.11 reads into
    # a fresh 256 KiB buffer per recv, by default an mmap, page faults, an
    # mremap and a munmap per message (4x slower) until some recv frees a
    # whole buffer (a connection closing: start_server's probe does that),
    # after which glibc raises its mmap threshold. Tuned, it never depends
    # on that.
    asyncio_tuned)
      MALLOC_MMAP_THRESHOLD_=4000000 MALLOC_TRIM_THRESHOLD_=100000000 \
        "$PYTHON" bench/echo_asyncio.py 0 >"$out" & ;;
    socat)
      local port
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      socat "TCP-LISTEN:$port,fork,reuseaddr,bind=127.0.0.1" EXEC:cat & echo "$port" >"$out" ;;
  esac
  server_pid=$!
  for _ in $(seq 200); do [ -s "$out" ] && break; sleep 0.05; done
  server_port=$(head -1 "$out")
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$server_port),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server $1 never listened" >&2; return 1
}

stop_server() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; }

# CPU time the server (and the children it reaped) has used, in clock
# ticks: "all kernel". socat's children are counted once reaped, so its
# figure is approximate.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17, $15 + $17}' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }
TICK=$(getconf CLK_TCK)

# Best rate per server over $ROUNDS rounds, the servers taking turns, and
# the server CPU per round trip in that round (µs: all, of it in the kernel).
declare -A best cpu
servers=(closure threads rhai_threads events events1 lines tokio rhai_events asyncio asyncio_tuned socat)
for s in "${servers[@]}"; do best[$s]=0; cpu[$s]="0 0"; done
for _ in $(seq "$ROUNDS"); do
  for s in "${servers[@]}"; do
    start_server "$s" || continue
    read -r all0 sys0 < <(cpu_ticks "$server_pid")
    r=$("$ECHO_LOAD" "$server_port" 100 "$ECHO_SECONDS" "$ECHO_THREADS" || echo 0)
    read -r all1 sys1 < <(cpu_ticks "$server_pid")
    stop_server
    if python3 -c "import sys; sys.exit(0 if float('$r') > float('${best[$s]:-0}') else 1)"; then
      best[$s]=$r
      cpu[$s]=$(python3 -c "
n = float('$r') * $ECHO_SECONDS
print(f'{($all1 - $all0) / $TICK / n * 1e6:.1f} {($sys1 - $sys0) / $TICK / n * 1e6:.1f}' if n else '0 0')")
    fi
  done
done
echo "round trips/s, 100 clients, load generator threads: $ECHO_THREADS"
# The targets count against asyncio at its best: the faster of the two runs.
asyncio_best=$(python3 -c "print(max(float('${best[asyncio]:-0}'), float('${best[asyncio_tuned]:-0}')))")
echo "Python asyncio: ${best[asyncio]:-0} rt/s as installed, ${best[asyncio_tuned]:-0} rt/s with glibc's mmap/trim thresholds raised"
ratio "serve |c| closure vs Rust thread per conn" "${best[closure]}" "threads" "${best[threads]}" rt/s higher
ratio "serve #{on_data} events vs Python asyncio" "${best[events]}" "asyncio" "$asyncio_best" rt/s higher
ratio "serve #{on_data} events vs plain tokio" "${best[events]}" "tokio" "${best[tokio]}" rt/s higher
ratio "serve #{on_data} events, 1 worker vs asyncio" "${best[events1]}" "asyncio" "$asyncio_best" rt/s higher
ratio "serve #{on_line} events vs Python asyncio" "${best[lines]}" "asyncio" "$asyncio_best" rt/s higher
ratio "Rhai ceiling, threads vs Rust thread per conn" "${best[rhai_threads]}" "threads" "${best[threads]}" rt/s higher rhai_threads
ratio "serve |c| closure vs the Rhai ceiling, threads" "${best[closure]}" "rhai_threads" "${best[rhai_threads]}" rt/s higher
ratio "Rhai ceiling, events vs Python asyncio" "${best[rhai_events]}" "asyncio" "$asyncio_best" rt/s higher rhai_events
ratio "Rhai ceiling, events vs plain tokio" "${best[rhai_events]}" "tokio" "${best[tokio]}" rt/s higher rhai_events
ratio "serve #{on_data} events vs the Rhai ceiling, events" "${best[events]}" "rhai_events" "${best[rhai_events]}" rt/s higher
ratio "serve |c| closure vs socat fork" "${best[closure]}" "socat" "${best[socat]}" rt/s higher
ratio "serve #{on_data} events vs socat fork" "${best[events]}" "socat" "${best[socat]}" rt/s higher

# Where the time goes: server CPU per round trip, and what netsh's Rhai
# engine costs per message with the network taken out (examples/rhai_floor:
# one handler call; one pass of the closure loop's body).
echo "server CPU per round trip (µs, all / in the kernel), in each server's best round:"
for s in "${servers[@]}"; do
  read -r all sys <<<"${cpu[$s]:-0 0}"
  printf '  %-14s %6s / %s\n' "$s" "$all" "$sys"
done
if floor=$(target/release/examples/rhai_floor); then
  read -r call pass <<<"$floor"
  echo "Rhai alone, no network: a handler call $call µs, a closure-loop pass (recv, compare, send) $pass µs"
fi

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
threads_of() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }

# Holds $2 idle connections to the server named $1 and prints the memory
# and threads they cost it.
idle_cost() {
  start_server "$1" || return
  sleep 0.5
  local before after threads
  before=$(rss_kb "$server_pid")
  mkfifo "$WORK/hold.in.$1"
  python3 bench/hold_idle.py "$server_port" "$2" <"$WORK/hold.in.$1" >"$WORK/hold.out.$1" & local hold_pid=$!
  exec 7>"$WORK/hold.in.$1"
  for _ in $(seq 600); do grep -q ready "$WORK/hold.out.$1" 2>/dev/null && break; sleep 0.05; done
  sleep 1
  after=$(rss_kb "$server_pid")
  threads=$(threads_of "$server_pid")
  exec 7>&-
  wait "$hold_pid" 2>/dev/null || true
  stop_server
  python3 - "$1" "$2" "$before" "$after" "$threads" <<'PY'
import sys
name, n, before, after, threads = sys.argv[1], int(sys.argv[2]), *(int(x) for x in sys.argv[3:6])
print(f"{n:,} idle connections on serve ({name}): VmRSS {before/1024:.1f} MB -> {after/1024:.1f} MB, "
      f"{(after-before)/n:.1f} KiB per connection, {threads} threads")
PY
}
# 10,000 sockets each side: the holder needs the file limit for them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
idle_cost events 10000
idle_cost closure 1000

# 2,000 short connections (50 at a time), then the idle server's memory.
after_churn() {
  start_server "$1" || return
  sleep 0.5
  local idle busy
  idle=$(rss_kb "$server_pid")
  python3 - "$server_port" <<'PY'
import socket, sys, threading
port = int(sys.argv[1])
def client(n):
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"hello\n")
            s.recv(16)
threads = [threading.Thread(target=client, args=(40,)) for _ in range(50)]
for t in threads: t.start()
for t in threads: t.join()
PY
  sleep 1
  busy=$(rss_kb "$server_pid")
  stop_server
  echo "after 2,000 connections came and went ($1): VmRSS $((idle / 1024)) MB idle -> $((busy / 1024)) MB"
}
after_churn closure
after_churn events

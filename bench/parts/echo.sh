# Echo through `serve` (issue 3): round trips per second with 100 concurrent
# clients against `socat TCP-LISTEN,fork EXEC:cat`, and the memory one serve
# needs per idle connection (1,000 held at once). The load generator is
# examples/echo_load.rs (one tokio thread, so it costs one core at most), the
# same for both servers; bench/hold_idle.py holds the idle connections.
need socat:socat python3:python3

ECHO_SECONDS=${ECHO_SECONDS:-5}
ECHO_LOAD=target/release/examples/echo_load
[ -x "$ECHO_LOAD" ] || cargo build --release --quiet --example echo_load

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something accepts on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}

# The best of $ROUNDS runs: round trips per second against port $1.
best_rate() {
  local best=0 r
  for _ in $(seq "$ROUNDS"); do
    r=$("$ECHO_LOAD" "$1" 100 "$ECHO_SECONDS")
    best=$(python3 -c "print(max(float('$best'), float('$r')))")
  done
  echo "$best"
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

ECHO_CODE='serve("127.0.0.1:PORT", |c| { loop { let d = c.recv(); if d == "" { break } c.send(d) } }).wait()'

port=$(free_port)
"$NETSH" -e "${ECHO_CODE//PORT/$port}" & netsh_pid=$!
wait_port "$port"
ours=$(best_rate "$port")
kill "$netsh_pid"; wait "$netsh_pid" 2>/dev/null || true

port=$(free_port)
socat "TCP-LISTEN:$port,fork,reuseaddr" EXEC:cat & socat_pid=$!
wait_port "$port"
theirs=$(best_rate "$port")
kill "$socat_pid"; wait "$socat_pid" 2>/dev/null || true
ratio "echo round trips/s, 100 clients: serve vs socat" "$ours" "socat" "$theirs" rt/s higher

# 1,000 idle connections held by one serve: memory and threads.
port=$(free_port)
"$NETSH" -e "serve(\"127.0.0.1:$port\", |c| c.recv_line()).wait()" & netsh_pid=$!
wait_port "$port"
sleep 0.5
before=$(rss_kb "$netsh_pid")
mkfifo "$WORK/hold.in"
python3 bench/hold_idle.py "$port" 1000 < "$WORK/hold.in" > "$WORK/hold.out" & hold_pid=$!
exec 7>"$WORK/hold.in"
for _ in $(seq 200); do grep -q ready "$WORK/hold.out" 2>/dev/null && break; sleep 0.05; done
sleep 1
after=$(rss_kb "$netsh_pid")
threads=$(awk '/^Threads/ {print $2}' "/proc/$netsh_pid/status")
exec 7>&-
wait "$hold_pid" 2>/dev/null || true
kill "$netsh_pid"; wait "$netsh_pid" 2>/dev/null || true
python3 - "$before" "$after" "$threads" <<'PY'
import sys
before, after, threads = (int(x) for x in sys.argv[1:4])
print(f"1,000 idle connections on one serve: VmRSS {before/1024:.1f} MB -> {after/1024:.1f} MB, "
      f"{(after-before)/1000:.1f} KiB per connection, {threads} threads")
PY

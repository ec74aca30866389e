# WebSocket (issue 20): echo of small text messages (32 bytes) on 1 and on
# 100 connections, round trips per second, netsh's http_serve beside a
# python3-websockets echo server (bench/ws_echo.py), what a user would
# otherwise start (target: >= 2x). netsh runs both shapes of a route:
#   - closure: `#{websocket: |ws| loop { … ws.recv() … ws.send(m) }}`, a
#     thread per connection;
#   - events:  `#{on_message: |ws, m| ws.send(m)}`, the server's workers.
# The load generator is examples/ws_load.rs (tokio-tungstenite, one
# thread), run against each server alternately, best of $ROUNDS. With
# perf, each server's context switches and CPU time a message follow (1
# connection, one run each): load-proof where the rates are not.
WS_SECONDS=${WS_SECONDS:-3}
WS_PYTHON=/usr/bin/python3
[ -x "$WS_PYTHON" ] || WS_PYTHON=python3
WS_DIR="$WORK/websocket"
mkdir -p "$WS_DIR"
cargo build --release --quiet --example ws_load

WS_CLOSURE='let s = http_serve("127.0.0.1:0", #{"/": #{websocket: |ws| { loop { let m = ws.recv(); if m == () { break } ws.send(m) } }}}, #{quiet: true}); print(s.port); s.wait()'
WS_EVENTS='let s = http_serve("127.0.0.1:0", #{"/": #{on_message: |ws, m| ws.send(m)}}, #{quiet: true}); print(s.port); s.wait()'

# Starts server $1 in the background; sets $ws_pid and $ws_port.
start_ws() {
  local out="$WS_DIR/port.$1"
  rm -f "$out"
  case $1 in
    closure) "$NETSH" -e "$WS_CLOSURE" >"$out" & ;;
    events) "$NETSH" -e "$WS_EVENTS" >"$out" & ;;
    python) "$WS_PYTHON" bench/ws_echo.py 0 >"$out" & ;;
  esac
  ws_pid=$!
  for _ in $(seq 400); do [ -s "$out" ] && break; sleep 0.05; done
  ws_port=$(head -1 "$out")
  wait_listen "$ws_port"
}

if ! "$WS_PYTHON" -c 'import websockets' 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
  echo "installing: python3-websockets" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-websockets) >/dev/null 2>&1 || true
fi
ws_names=(closure events)
if "$WS_PYTHON" -c 'import websockets' 2>/dev/null; then
  ws_names+=(python)
else
  echo "python3-websockets is not installed (apt-get install python3-websockets): nothing to compare with"
fi
declare -A ws_port_of ws_pid_of ws_best
for name in "${ws_names[@]}"; do
  start_ws "$name"
  ws_port_of[$name]=$ws_port
  ws_pid_of[$name]=$ws_pid
done
for conns in 1 100; do
  for name in "${ws_names[@]}"; do ws_best[$name.$conns]=0; done
  for _ in $(seq "$ROUNDS"); do
    for name in "${ws_names[@]}"; do
      rate=$(target/release/examples/ws_load "ws://127.0.0.1:${ws_port_of[$name]}/" "$conns" "$WS_SECONDS")
      ws_best[$name.$conns]=$(python3 -c "print(max(${ws_best[$name.$conns]}, ${rate:-0}))")
    done
  done
done
# One connection again with each server and the load generator sharing
# one CPU (taskset, the same for python). A ping-pong on one connection
# waits on two wake-ups a message; on the 2-vCPU VM a wake-up of the
# other, halted vCPU (the host runs guests without halt polling) costs
# more than either server's work on a message, so unpinned, the rate
# above is mostly where the scheduler put the two threads. Pinned, it is
# the servers' own cost a message.
if command -v taskset >/dev/null 2>&1; then
  all_cpus=$(taskset -pc $$ | sed 's/.*: //')
  for name in "${ws_names[@]}"; do
    ws_best[$name.pinned]=0
    taskset -a -pc 0 "${ws_pid_of[$name]}" >/dev/null
  done
  for _ in $(seq "$ROUNDS"); do
    for name in "${ws_names[@]}"; do
      rate=$(taskset -c 0 target/release/examples/ws_load "ws://127.0.0.1:${ws_port_of[$name]}/" 1 "$WS_SECONDS")
      ws_best[$name.pinned]=$(python3 -c "print(max(${ws_best[$name.pinned]}, ${rate:-0}))")
    done
  done
  for name in "${ws_names[@]}"; do
    taskset -a -pc "$all_cpus" "${ws_pid_of[$name]}" >/dev/null
  done
fi
if [ -n "${ws_best[python.1]:-}" ]; then
  if [ -n "${ws_best[python.pinned]:-}" ]; then
    for shape in closure events; do
      ratio "WebSocket echo, 1 conn, one CPU for both ends, http_serve $shape vs python" \
        "${ws_best[$shape.pinned]}" "python" "${ws_best[python.pinned]}" msg/s higher
    done
  fi
  for conns in 1 100; do
    for shape in closure events; do
      ratio "WebSocket echo, $conns conn(s), http_serve $shape vs python websockets" \
        "${ws_best[$shape.$conns]}" "python" "${ws_best[python.$conns]}" msg/s higher
    done
  done
fi
# What each server spends a message on 1 connection, from `perf stat -p`
# over the middle of a run (software counters, so a VM without a PMU has
# them): context switches and CPU time, which a busy machine inflates
# less than it moves the rates (docs/ARCHITECTURE.md, "Measuring").
# Sets ws_cs and ws_cpu (µs).
ws_cost() {
  local name=$1 window
  window=$(python3 -c "print(max($WS_SECONDS - 1, 0.5))")
  target/release/examples/ws_load "ws://127.0.0.1:${ws_port_of[$name]}/" 1 "$WS_SECONDS" >"$WS_DIR/rate" &
  local load=$!
  sleep 0.4
  perf stat -x, -e context-switches,task-clock -p "${ws_pid_of[$name]}" -- sleep "$window" \
    2>"$WS_DIR/perf" >/dev/null || true
  wait "$load" || true
  read -r ws_cs ws_cpu < <(python3 - "$WS_DIR/perf" "$(cat "$WS_DIR/rate")" "$window" <<'PY'
import sys
counts = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "", 1).isdigit():
        counts[f[2]] = float(f[0])
messages = float(sys.argv[2] or 0) * float(sys.argv[3])
if messages and "context-switches" in counts and "task-clock" in counts:
    print(f"{counts['context-switches'] / messages:.2f} {counts['task-clock'] * 1000 / messages:.1f}")
else:
    print("0 0")
PY
)
}
if command -v perf >/dev/null 2>&1 && [ -n "${ws_best[python.1]:-}" ]; then
  declare -A ws_cs_of ws_cpu_of
  for name in "${ws_names[@]}"; do
    ws_cost "$name"
    ws_cs_of[$name]=$ws_cs
    ws_cpu_of[$name]=$ws_cpu
  done
  for shape in closure events; do
    if [ "${ws_cpu_of[$shape]}" != 0 ] && [ "${ws_cpu_of[python]}" != 0 ]; then
      ratio "WebSocket 1 conn, CPU a msg, $shape vs python" \
        "${ws_cpu_of[$shape]}" "python" "${ws_cpu_of[python]}" µs lower
      ratio "WebSocket 1 conn, switches a msg, $shape" \
        "${ws_cs_of[$shape]}" "python" "${ws_cs_of[python]}" cs lower
    fi
  done
fi
for name in "${ws_names[@]}"; do
  kill "${ws_pid_of[$name]}" 2>/dev/null || true
  wait "${ws_pid_of[$name]}" 2>/dev/null || true
done

# WebSocket (issue 20): echo of small text messages (32 bytes) on 1 and on
# 100 connections, round trips per second, netsh's http_serve beside a
# python3-websockets echo server (bench/ws_echo.py), what a user would
# otherwise start (target: >= 2x). netsh runs both shapes of a route:
#   - closure: `#{websocket: |ws| loop { … ws.recv() … ws.send(m) }}`, a
#     thread per connection;
#   - events:  `#{on_message: |ws, m| ws.send(m)}`, the server's workers.
# The load generator is examples/ws_load.rs (tokio-tungstenite, one
# thread), run against each server alternately, best of $ROUNDS.
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
for name in "${ws_names[@]}"; do
  kill "${ws_pid_of[$name]}" 2>/dev/null || true
  wait "${ws_pid_of[$name]}" 2>/dev/null || true
done
if [ -n "${ws_best[python.1]:-}" ]; then
  for conns in 1 100; do
    for shape in closure events; do
      ratio "WebSocket echo, $conns conn(s), http_serve $shape vs python websockets" \
        "${ws_best[$shape.$conns]}" "python" "${ws_best[python.$conns]}" msg/s higher
    done
  done
fi

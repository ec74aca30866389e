# HTTP (issue 20): requests per second of a Rhai JSON handler,
# `|req| #{ok: true, n: req.query.n}`, served by `http_serve`, beside
#   - its ceiling: the same handler on a bare hyper server with a bare Rhai
#     engine (examples/http_rhai.rs, the same hyper-util auto builder): what
#     netsh's own code costs is the gap to it (target: >= 0.9x);
#   - the same handler written for python3-aiohttp (bench/http_aiohttp.py),
#     what a user would otherwise start (target: >= 1.0x);
#   - and the ceiling with the one thing netsh must add, hyper's header
#     read timeout (a timer per request, against slowloris clients), to
#     say what that part of the gap is.
# wrk is the load generator (one thread, 64 connections, keep-alive), run
# against the three servers alternately, best of $ROUNDS.
# Then memory: 10,000 idle keep-alive connections (each has made one
# request; bench/hold_http.py) held by http_serve: resident memory per
# connection (target: < 16 KiB) and the thread count (target: flat).
need wrk:wrk

HTTP_SECONDS=${HTTP_SECONDS:-4}
HTTP_PYTHON=/usr/bin/python3
[ -x "$HTTP_PYTHON" ] || HTTP_PYTHON=python3
HTTP_DIR="$WORK/http"
mkdir -p "$HTTP_DIR"
# Built every time (a no-op when current): the ceiling as the code is now.
cargo build --release --quiet --example http_rhai

JSON_HANDLER='|req| #{ok: true, n: req.query.n}'
# header_timeout is also how long a keep-alive connection may idle: long
# enough here for 10,000 connections to be opened and counted.
HTTP_NETSH="let s = http_serve(\"127.0.0.1:0\", $JSON_HANDLER, #{quiet: true, header_timeout: 600000}); print(s.port); s.wait()"

# Starts server $1 in the background; sets $http_pid and $http_port.
start_http() {
  local out="$HTTP_DIR/port.$1"
  rm -f "$out"
  case $1 in
    netsh) "$NETSH" -e "$HTTP_NETSH" >"$out" & ;;
    ceiling) target/release/examples/http_rhai 0 >"$out" & ;;
    ceiling_timer) target/release/examples/http_rhai 0 timer >"$out" & ;;
    aiohttp) "$HTTP_PYTHON" bench/http_aiohttp.py 0 >"$out" & ;;
  esac
  http_pid=$!
  for _ in $(seq 400); do [ -s "$out" ] && break; sleep 0.05; done
  http_port=$(head -1 "$out")
  wait_listen "$http_port"
}

# Requests per second wrk gets from port $1.
wrk_rate() {
  wrk -t1 -c64 -d"${HTTP_SECONDS}s" "http://127.0.0.1:$1/?n=5" 2>/dev/null \
    | awk '/Requests\/sec/ { print $2 }'
}

http_status() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

if ! "$HTTP_PYTHON" -c 'import aiohttp' 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
  echo "installing: python3-aiohttp" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiohttp) >/dev/null 2>&1 || true
fi
declare -A http_port_of http_pid_of http_best
http_names=(netsh ceiling ceiling_timer)
if "$HTTP_PYTHON" -c 'import aiohttp' 2>/dev/null; then
  http_names+=(aiohttp)
else
  echo "python3-aiohttp is not installed (apt-get install python3-aiohttp): that comparison is skipped"
fi
for name in "${http_names[@]}"; do
  start_http "$name"
  http_port_of[$name]=$http_port
  http_pid_of[$name]=$http_pid
  http_best[$name]=0
  # The answer must be the same JSON from each.
  echo "$name answers: $(curl -s --noproxy '*' "http://127.0.0.1:$http_port/?n=5")"
done
for _ in $(seq "$ROUNDS"); do
  for name in "${http_names[@]}"; do
    rate=$(wrk_rate "${http_port_of[$name]}")
    http_best[$name]=$(python3 -c "print(max(${http_best[$name]}, ${rate:-0}))")
  done
done
for name in "${http_names[@]}"; do
  kill "${http_pid_of[$name]}" 2>/dev/null || true
  wait "${http_pid_of[$name]}" 2>/dev/null || true
done
ratio "JSON handler req/s, http_serve vs bare hyper+Rhai" "${http_best[netsh]}" "ceiling" "${http_best[ceiling]}" req/s higher
ratio "JSON handler req/s, ceiling with a header timer" "${http_best[ceiling_timer]}" "ceiling" "${http_best[ceiling]}" req/s higher "timer"
if [ -n "${http_best[aiohttp]:-}" ]; then
  ratio "JSON handler req/s, http_serve vs aiohttp" "${http_best[netsh]}" "aiohttp" "${http_best[aiohttp]}" req/s higher
fi

# --- 10,000 idle keep-alive connections
start_http netsh
rss_before=$(http_status "$http_pid" VmRSS)
threads_before=$(http_status "$http_pid" Threads)
idle_n=$(( $(ulimit -n) - 500 ))
((idle_n > 10000)) && idle_n=10000
((idle_n < 10000)) && echo "note: the open-file limit ($(ulimit -n)) allows $idle_n idle connections, not 10,000"
rm -f "$HTTP_DIR/held"
# Its stdin stays open (a fifo nobody writes) until it is killed.
mkfifo "$HTTP_DIR/hold.in"
"$HTTP_PYTHON" bench/hold_http.py "$http_port" "$idle_n" <"$HTTP_DIR/hold.in" >"$HTTP_DIR/held" &
hold_pid=$!
exec {hold_fd}>"$HTTP_DIR/hold.in"
for _ in $(seq 18000); do [ -s "$HTTP_DIR/held" ] && break; sleep 0.01; done
held=$(awk '{ print $2 }' "$HTTP_DIR/held" 2>/dev/null)
held=${held:-0}
sleep 1
rss_after=$(http_status "$http_pid" VmRSS)
threads_after=$(http_status "$http_pid" Threads)
exec {hold_fd}>&-
kill "$hold_pid" "$http_pid" 2>/dev/null || true
wait "$hold_pid" "$http_pid" 2>/dev/null || true
per=$(python3 -c "print(($rss_after - $rss_before) / max($held, 1))")
echo "idle keep-alive on http_serve: $held held, RSS $rss_before → $rss_after KiB, threads $threads_before → $threads_after"
ratio "idle keep-alive connection, RSS (KiB each)" "$per" "limit" 16 KiB lower
ratio "threads holding $held connections" "$threads_after" "before" "$threads_before" threads lower

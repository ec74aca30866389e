#!/bin/bash
# Instructions per request of an HTTP server, counted by callgrind: exact
# and load-proof, unlike a rate on a shared 2-vCPU machine.
#
#   bench/callgrind_http.sh [N] [SERVER COMMAND...]
#
# The server prints its port on the first line of its stdout. It runs
# under callgrind; a client sends 200 keep-alive requests on one
# connection (warm-up: connection set up, caches filled), the counters are
# zeroed, N more requests are sent (default 1000), and the counts are
# dumped: their total over N is the figure, the server's threads summed.
# Without a command it measures `http_serve` running the JSON handler of
# bench/parts/http.sh and then its ceiling, examples/http_rhai.rs (both
# release builds). Rank where the instructions go with
#   callgrind_annotate --inclusive=yes --tree=both FILE
set -eu
cd "$(dirname "$0")/.."
n=${1:-1000}
[ $# -gt 0 ] && shift
out=${CALLGRIND_OUT:-$(mktemp -d)}
python=/usr/bin/python3
[ -x "$python" ] || python=python3

client() { # PORT COUNT: COUNT GETs of /?n=5, one at a time
  "$python" - "$1" "$2" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"GET /?n=5 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: cg\r\nAccept: */*\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            if not head.startswith("HTTP/1.1 200"):
                sys.exit("bad answer: " + head)
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                break
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        buf += chunk
PY
}

measure() { # NAME COMMAND...
  local name=$1; shift
  rm -f "$out/$name".*
  valgrind --tool=callgrind --callgrind-out-file="$out/$name.%p" "$@" >"$out/$name.port" 2>"$out/$name.log" &
  local pid=$!
  # Up to 5 minutes: a server starting under valgrind beside a build
  # took more than one.
  for _ in $(seq 3000); do [ -s "$out/$name.port" ] && break; sleep 0.1; done
  local port
  port=$(head -1 "$out/$name.port")
  if [ -z "$port" ]; then
    echo "$name: no port printed (see $out/$name.log)" >&2
    kill "$pid" 2>/dev/null || true
    return 1
  fi
  client "$port" 200
  callgrind_control -z "$pid" >/dev/null
  client "$port" "$n"
  callgrind_control -d "$pid" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local file total
  file=$(ls "$out/$name.$pid".* | head -1)
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  echo "$name: $((total / n)) instructions per request ($file)"
}

if [ $# -gt 0 ]; then
  measure server "$@"
else
  cargo build --release --quiet --bin netsh --example http_rhai
  measure netsh target/release/netsh -e \
    'let s = http_serve("127.0.0.1:0", |req| #{ok: true, n: req.query.n}, #{quiet: true}); print(s.port); s.wait()'
  measure ceiling target/release/examples/http_rhai 0
fi

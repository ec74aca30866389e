# Static files from http_serve (issue 20), on loopback, against nginx and
# `python3 -m http.server` serving the same folder:
#  - a 1 KiB file at 64 connections, requests/s by wrk (best of the rounds;
#    targets: >= 10x python's http.server, >= 0.5x nginx);
#  - a 1 GiB file downloaded by curl to /dev/null (target: >= 0.9x nginx),
#    and the CPU time the server spent sending it.
# nginx runs with one worker per core, sendfile and keep-alive, as a
# production nginx would; python's server is the one a user would start.
need nginx:nginx curl:curl wrk:wrk

if command -v nginx >/dev/null && command -v curl >/dev/null && command -v wrk >/dev/null; then
  STATIC_ROUNDS=${STATIC_ROUNDS:-3}
  STATIC_SECONDS=${STATIC_SECONDS:-5}
  if [ -d /dev/shm ]; then STATIC_DIR=$(mktemp -d /dev/shm/netsh-static.XXXXXX); else STATIC_DIR="$WORK/static"; mkdir -p "$STATIC_DIR"; fi
  trap 'rm -rf "$WORK" "$STATIC_DIR"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
  mkdir -p "$STATIC_DIR/site" "$STATIC_DIR/nginx"
  # nginx's workers run as another user: they must be able to read the site.
  chmod 755 "$STATIC_DIR" "$STATIC_DIR/site"
  STATIC_MB=1024
  head -c $((STATIC_MB << 20)) /dev/urandom >"$STATIC_DIR/site/big.bin"
  head -c 1024 /dev/urandom >"$STATIC_DIR/site/small.bin"

  # netsh binds port 0 and prints the port it got.
  "$NETSH" -e "let s = http_serve(\"127.0.0.1:0\", \"$STATIC_DIR/site\", #{quiet: true}); print(s.port); s.wait()" \
    >"$STATIC_DIR/netsh.port" 2>"$STATIC_DIR/netsh.err" &
  netsh_static_pid=$!
  for _ in $(seq 500); do [ -s "$STATIC_DIR/netsh.port" ] && break; sleep 0.01; done
  netsh_port=$(head -1 "$STATIC_DIR/netsh.port")

  # python's http.server takes a port on its command line: one below 32768, retried if taken.
  python_pid=
  for _ in $(seq 20); do
    python_port=$((20000 + RANDOM % 12768))
    /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$STATIC_DIR/site" "$python_port" >/dev/null 2>&1 &
    python_pid=$!
    if wait_listen "$python_port" 2>/dev/null && kill -0 "$python_pid" 2>/dev/null; then break; fi
    kill "$python_pid" 2>/dev/null || true
    python_pid=
  done

  # nginx needs a fixed port in its config too.
  nginx_pid=
  for _ in $(seq 20); do
    nginx_port=$((20000 + RANDOM % 12768))
    cat >"$STATIC_DIR/nginx/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $STATIC_DIR/nginx/nginx.pid;
error_log $STATIC_DIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $STATIC_DIR/nginx/body;
  proxy_temp_path $STATIC_DIR/nginx/proxy;
  fastcgi_temp_path $STATIC_DIR/nginx/fastcgi;
  uwsgi_temp_path $STATIC_DIR/nginx/uwsgi;
  scgi_temp_path $STATIC_DIR/nginx/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$nginx_port; root $STATIC_DIR/site; }
}
CONF
    nginx -e "$STATIC_DIR/nginx/error.log" -c "$STATIC_DIR/nginx/nginx.conf" -p "$STATIC_DIR/nginx" &
    nginx_pid=$!
    if wait_listen "$nginx_port" 2>/dev/null && kill -0 "$nginx_pid" 2>/dev/null; then break; fi
    kill "$nginx_pid" 2>/dev/null || true
    nginx_pid=
  done

  if [ -z "$netsh_port" ] || [ -z "$nginx_pid" ] || [ -z "$python_pid" ]; then
    echo "a server would not start (netsh: $(cat "$STATIC_DIR/netsh.err"); nginx ${nginx_pid:-no}; python ${python_pid:-no}); static comparisons skipped" >&2
  fi
  # Every server must answer with the file itself, or its figures mean nothing.
  for port in "$netsh_port" "${nginx_port:-}" "${python_port:-}"; do
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$port/small.bin" || true)
    if [ "$got" != "200 1024" ]; then
      echo "the server on port $port answered '$got' for small.bin; static comparisons skipped" >&2
      nginx_pid=
    fi
  done
  if [ -z "$netsh_port" ] || [ -z "$nginx_pid" ] || [ -z "$python_pid" ]; then
    :
  else
    # Requests/s of wrk on a URL: the best of the rounds, the peers taking turns.
    wrk_rate() {
      wrk -t1 -c64 -d"${STATIC_SECONDS}s" "$1" 2>/dev/null | awk '/^Requests\/sec:/ { print $2 }'
    }
    best_rates() {
      local url name best_netsh=0 best_peer=0 r
      for _ in $(seq "$STATIC_ROUNDS"); do
        r=$(wrk_rate "http://127.0.0.1:$netsh_port/small.bin"); best_netsh=$(python3 -c "print(max($best_netsh, ${r:-0}))")
        r=$(wrk_rate "$1"); best_peer=$(python3 -c "print(max($best_peer, ${r:-0}))")
      done
      echo "$best_netsh $best_peer"
    }
    read -r n_py py <<<"$(best_rates "http://127.0.0.1:$python_port/small.bin")"
    ratio "1 KiB file, 64 conns (wrk) vs python3 http.server" "$n_py" "python" "$py" req/s higher
    read -r n_ng ng <<<"$(best_rates "http://127.0.0.1:$nginx_port/small.bin")"
    ratio "1 KiB file, 64 conns (wrk) vs nginx" "$n_ng" "nginx" "$ng" req/s higher

    # The 1 GiB file, the two servers taking turns each round: the best
    # rate, and the least CPU the server spent on it (utime + stime of
    # its processes from /proc), which waiting for a core does not
    # inflate. The file is on tmpfs, so always in the page cache.
    server_ticks() {
      local t=0 p
      for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
      done
      echo "$t"
    }
    big_round() { # port pid... -> "seconds cpu-seconds"
      local port=$1 c0 c1 t
      shift
      c0=$(server_ticks "$@")
      t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/big.bin")
      c1=$(server_ticks "$@")
      echo "$t $(python3 -c "print(($c1 - $c0) / $(getconf CLK_TCK))")"
    }
    best_netsh_big=inf best_nginx_big=inf cpu_netsh_big=inf cpu_nginx_big=inf
    for _ in $(seq "$STATIC_ROUNDS"); do
      read -r t c <<<"$(big_round "$netsh_port" "$netsh_static_pid")"
      best_netsh_big=$(python3 -c "print(min(float('$best_netsh_big'), $t))"); cpu_netsh_big=$(python3 -c "print(min(float('$cpu_netsh_big'), $c))")
      read -r t c <<<"$(big_round "$nginx_port" "$nginx_pid")"
      best_nginx_big=$(python3 -c "print(min(float('$best_nginx_big'), $t))"); cpu_nginx_big=$(python3 -c "print(min(float('$cpu_nginx_big'), $c))")
    done
    static_rate() { python3 -c "print($STATIC_MB / $1)"; }
    ratio "1 GiB by curl vs nginx" "$(static_rate "$best_netsh_big")" "nginx" "$(static_rate "$best_nginx_big")" MB/s higher
    ratio "1 GiB by curl: server CPU vs nginx" "$cpu_netsh_big" "nginx" "$cpu_nginx_big" s lower
  fi
  for pid in "$netsh_static_pid" "${nginx_pid:-}" "${python_pid:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$STATIC_DIR"
fi

# Relays (issue 18): netsh's forward() beside socat's fork and no relay.
#  - one iperf3 stream for 5 s through forward, through
#    `socat TCP-LISTEN:…,fork,reuseaddr TCP:…`, and direct (no relay);
#  - short connections (connect, one line, one reply, close) per second
#    through forward vs socat's fork (examples/short_load, 32 at a time,
#    one thread);
#  - 256 MiB over TLS terminated by forward vs socat OPENSSL-LISTEN, in
#    front of the same plain HTTP server (nginx), downloaded by the same
#    client (curl -k), rounds alternating; the suite each negotiated is
#    printed; and, for context, the same client reading the file from
#    nginx serving TLS itself, no relay (not a ceiling: on the 2-vCPU VM
#    nginx's own TLS measured slower than forward in front of it);
#  - TLS short connections (a full handshake, one line, its echo, close)
#    per second through forward vs socat OPENSSL-LISTEN's fork, in front
#    of the same echo server (short_load tls-rate, 32 at a time);
#  - 10,000 idle connections held through forward: resident memory per
#    connection and the thread count before and after.
# Best of $ROUNDS (iperf3: of RELAY_IPERF_ROUNDS, default 4, 5 s each: one
# run to the next varies by a third, direct and relayed alike).
need iperf3:iperf3 socat:socat openssl:openssl nginx:nginx curl:curl

RELAY_DIR="$WORK/relay"
mkdir -p "$RELAY_DIR"
IPERF_ROUNDS=${RELAY_IPERF_ROUNDS:-4}
# 10,000 relayed connections need 20,000 descriptors in the forward alone.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Always asked: cargo does nothing when it is fresh, and an older build
# lacks the TLS mode.
cargo build --release --quiet --example short_load
[ -x target/release/examples/echo_tokio ] || cargo build --release --quiet --example echo_tokio
LOAD=target/release/examples/short_load

# Starts `netsh forward` from 127.0.0.1:0 to $1 (options $2); sets $fwd_pid, $fwd_port.
start_forward() {
  rm -f "$RELAY_DIR/fwd.port"
  "$NETSH" -e "let f = forward(\"127.0.0.1:0\", \"$1\", #{quiet: true${2:+, $2}}); print(f.port); f.wait()" \
    >"$RELAY_DIR/fwd.port" 2>"$RELAY_DIR/fwd.err" &
  fwd_pid=$!
  for _ in $(seq 500); do [ -s "$RELAY_DIR/fwd.port" ] && break; sleep 0.01; done
  fwd_port=$(head -1 "$RELAY_DIR/fwd.port")
  wait_listen "$fwd_port"
}

# Starts `socat` listening on a free port with fork, to $@ (its second
# address); sets $socat_pid, $socat_port.
start_socat() {
  local listen=$1; shift
  socat_port=$(free_port)
  socat "$listen:$socat_port,bind=127.0.0.1,fork,reuseaddr$LISTEN_EXTRA" "$@" 2>/dev/null &
  socat_pid=$!
  wait_listen "$socat_port"
}

stop() { kill "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }

# One iperf3 run (5 s) to port $1, in Gbit/s (0 when it fails).
iperf_once() {
  iperf3 -c 127.0.0.1 -p "$1" -t 5 -J 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)' 2>/dev/null || echo 0
}

if command -v iperf3 >/dev/null && command -v socat >/dev/null; then
  # --- iperf3 through forward, through socat, direct
  iperf_port=$(free_port)
  iperf3 -s -p "$iperf_port" -B 127.0.0.1 >/dev/null 2>&1 &
  iperf_pid=$!
  wait_listen "$iperf_port"
  start_forward "127.0.0.1:$iperf_port"
  LISTEN_EXTRA= start_socat TCP-LISTEN "TCP:127.0.0.1:$iperf_port"
  # Rounds interleaved, the best of each: the machine's load drifts. The
  # order turns round each round, so no one always runs after the same.
  g_direct=0 g_netsh=0 g_socat=0
  for round in $(seq "$IPERF_ROUNDS"); do
    order=(direct netsh socat)
    ((round % 2)) || order=(socat netsh direct)
    ((round % 3)) || order=(netsh socat direct)
    for who in "${order[@]}"; do
      case $who in
        direct) g_direct=$(python3 -c "print(max($g_direct, $(iperf_once "$iperf_port")))") ;;
        netsh) g_netsh=$(python3 -c "print(max($g_netsh, $(iperf_once "$fwd_port")))") ;;
        socat) g_socat=$(python3 -c "print(max($g_socat, $(iperf_once "$socat_port")))") ;;
      esac
    done
  done
  stop "$fwd_pid" "$socat_pid" "$iperf_pid"
  ratio "iperf3 1 stream 5 s, forward vs socat fork" "$g_netsh" "socat" "$g_socat" Gbit/s higher
  ratio "iperf3 1 stream 5 s, forward vs no relay" "$g_netsh" "direct" "$g_direct" Gbit/s higher

  # --- short connections per second
  echo_port_file="$RELAY_DIR/echo.port"
  target/release/examples/echo_tokio 0 >"$echo_port_file" &
  echo_pid=$!
  for _ in $(seq 500); do [ -s "$echo_port_file" ] && break; sleep 0.01; done
  echo_port=$(head -1 "$echo_port_file")
  start_forward "127.0.0.1:$echo_port"
  LISTEN_EXTRA= start_socat TCP-LISTEN "TCP:127.0.0.1:$echo_port"
  best_rate() {
    local best=0 r
    for _ in $(seq "$ROUNDS"); do
      r=$("$LOAD" rate "$1" 2 32)
      best=$(python3 -c "print(max($best, $r))")
    done
    echo "$best"
  }
  c_netsh=$(best_rate "$fwd_port")
  c_socat=$(best_rate "$socat_port")
  c_direct=$(best_rate "$echo_port")
  stop "$socat_pid" "$fwd_pid"
  ratio "short connections/s, forward vs socat fork" "$c_netsh" "socat" "$c_socat" conn/s higher
  ratio "short connections/s, forward vs no relay" "$c_netsh" "direct" "$c_direct" conn/s higher

  # --- 10,000 idle connections through forward
  start_forward "127.0.0.1:$echo_port"
  status() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
  rss_before=$(status "$fwd_pid" VmRSS)
  threads_before=$(status "$fwd_pid" Threads)
  rm -f "$RELAY_DIR/held"
  # The forward holds two descriptors per connection: where the hard limit
  # on open files is lower than 20,000 (containers), fewer are held.
  idle_n=$(( $(ulimit -n) / 2 - 200 ))
  ((idle_n > 10000)) && idle_n=10000
  ((idle_n < 10000)) && echo "note: the open-file limit ($(ulimit -n)) allows $idle_n idle connections, not 10,000"
  "$LOAD" hold "$fwd_port" "$idle_n" >"$RELAY_DIR/held" &
  hold_pid=$!
  for _ in $(seq 18000); do [ -s "$RELAY_DIR/held" ] && break; sleep 0.01; done
  held=$(awk '{ print $2 }' "$RELAY_DIR/held" 2>/dev/null)
  held=${held:-0}
  rss_after=$(status "$fwd_pid" VmRSS)
  threads_after=$(status "$fwd_pid" Threads)
  stop "$hold_pid" "$fwd_pid"
  per=$(python3 -c "print(($rss_after - $rss_before) / max($held, 1))")
  echo "idle through forward: $held held, RSS $rss_before → $rss_after KiB, threads $threads_before → $threads_after"
  ratio "idle relayed connection, RSS (KiB each)" "$per" "limit" 16 KiB lower
  ratio "threads holding $held connections" "$threads_after" "before" "$threads_before" threads lower

  # --- TLS terminated: forward vs socat OPENSSL-LISTEN in front of the
  # same plain HTTP server (nginx, sendfile), read by the same client
  # (curl -k): curl reads 16 KiB records as fast as OpenSSL decrypts, where
  # socat's client (8 KiB reads) was the limit of both relays.
  TLS_MB=256
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$RELAY_DIR/key.pem" -out "$RELAY_DIR/cert.pem" 2>/dev/null
  if command -v nginx >/dev/null && command -v curl >/dev/null; then
    # nginx's workers may run as another user: the site must be readable.
    if [ -d /dev/shm ]; then TLS_SITE=$(mktemp -d /dev/shm/netsh-relay.XXXXXX); else TLS_SITE=$(mktemp -d); fi
    trap 'rm -rf "$WORK" "$TLS_SITE"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
    mkdir -p "$TLS_SITE/site" "$TLS_SITE/nginx"
    chmod 755 "$TLS_SITE" "$TLS_SITE/site"
    head -c $((TLS_MB << 20)) /dev/urandom >"$TLS_SITE/site/payload.bin"
    chmod 644 "$TLS_SITE/site/payload.bin"
    # Starts nginx on a free port below 32768 (its config names the port),
    # plain or with TLS ($1 = ssl); sets $nginx_pid, $nginx_port.
    start_nginx() {
      local ssl=${1:-} conf
      nginx_pid=
      for _ in $(seq 20); do
        nginx_port=$((20000 + RANDOM % 12768))
        conf="listen 127.0.0.1:$nginx_port;"
        [ -n "$ssl" ] && conf="listen 127.0.0.1:$nginx_port ssl; ssl_certificate $RELAY_DIR/cert.pem; ssl_certificate_key $RELAY_DIR/key.pem; ssl_protocols TLSv1.3;"
        cat >"$TLS_SITE/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $TLS_SITE/nginx/nginx.pid;
error_log $TLS_SITE/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TLS_SITE/nginx/body;
  proxy_temp_path $TLS_SITE/nginx/proxy;
  fastcgi_temp_path $TLS_SITE/nginx/fastcgi;
  uwsgi_temp_path $TLS_SITE/nginx/uwsgi;
  scgi_temp_path $TLS_SITE/nginx/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  server { $conf root $TLS_SITE/site; }
}
CONF
        nginx -e "$TLS_SITE/nginx/error.log" -c "$TLS_SITE/nginx/nginx.conf" -p "$TLS_SITE/nginx" &
        nginx_pid=$!
        if wait_listen "$nginx_port" 2>/dev/null && kill -0 "$nginx_pid" 2>/dev/null; then return 0; fi
        kill "$nginx_pid" 2>/dev/null || true
        nginx_pid=
      done
      return 1
    }
    # MB/s of one download by curl from port $1.
    tls_speed() {
      curl -sk -o /dev/null -w '%{speed_download}' "https://127.0.0.1:$1/payload.bin" \
        | python3 -c 'import sys; print(float(sys.stdin.read() or 0) / 1e6)'
    }
    # The whole file, intact, and the suite the client and the relay agreed on.
    tls_check() {
      curl -sk -o "$RELAY_DIR/got.bin" "https://127.0.0.1:$1/payload.bin" \
        && cmp -s "$RELAY_DIR/got.bin" "$TLS_SITE/site/payload.bin" \
        && curl -vsk -o /dev/null "https://127.0.0.1:$1/payload.bin" 2>&1 \
          | grep -o 'SSL connection using.*' | sed "s/^/  $2: /"
    }
    if start_nginx; then
      start_forward "127.0.0.1:$nginx_port" "tls: #{cert: \"$RELAY_DIR/cert.pem\", key: \"$RELAY_DIR/key.pem\"}"
      LISTEN_EXTRA=",cert=$RELAY_DIR/cert.pem,key=$RELAY_DIR/key.pem,verify=0" \
        start_socat OPENSSL-LISTEN "TCP:127.0.0.1:$nginx_port"
      if tls_check "$fwd_port" forward && tls_check "$socat_port" socat; then
        # Rounds alternate between the two relays; the best of each counts.
        t_netsh=0 t_socat=0
        for _ in $(seq "$ROUNDS"); do
          t_netsh=$(python3 -c "print(max($t_netsh, $(tls_speed "$fwd_port")))")
          t_socat=$(python3 -c "print(max($t_socat, $(tls_speed "$socat_port")))")
        done
        ratio "TLS terminated ${TLS_MB} MiB (curl), forward vs socat" "$t_netsh" "socat" "$t_socat" MB/s higher
      else
        echo "TLS relay comparison skipped: a check round did not deliver the bytes intact"
        t_netsh=
      fi
      stop "$fwd_pid" "$socat_pid" "$nginx_pid"
      # For context: nginx serves the file over TLS itself, to the same client.
      if [ -n "${t_netsh:-}" ] && start_nginx ssl && tls_check "$nginx_port" "nginx TLS"; then
        t_direct=0
        for _ in $(seq "$ROUNDS"); do
          t_direct=$(python3 -c "print(max($t_direct, $(tls_speed "$nginx_port")))")
        done
        stop "$nginx_pid"
        ratio "TLS ${TLS_MB} MiB, forward vs no relay (nginx TLS)" "$t_netsh" "direct" "$t_direct" MB/s higher
      else
        stop "${nginx_pid:-}"
      fi
    else
      echo "TLS relay comparison skipped: nginx would not start"
    fi
    rm -rf "$TLS_SITE"
  else
    echo "TLS relay comparison skipped: nginx or curl missing"
  fi

  # --- TLS short connections: forward vs socat OPENSSL-LISTEN fork, same echo server
  start_forward "127.0.0.1:$echo_port" "tls: #{cert: \"$RELAY_DIR/cert.pem\", key: \"$RELAY_DIR/key.pem\"}"
  LISTEN_EXTRA=",cert=$RELAY_DIR/cert.pem,key=$RELAY_DIR/key.pem,verify=0" \
    start_socat OPENSSL-LISTEN "TCP:127.0.0.1:$echo_port"
  best_tls_rate() {
    local best=0 r
    for _ in $(seq "$ROUNDS"); do
      r=$("$LOAD" tls-rate "$1" 2 32 "$RELAY_DIR/cert.pem")
      best=$(python3 -c "print(max($best, $r))")
    done
    echo "$best"
  }
  h_netsh=$(best_tls_rate "$fwd_port")
  h_socat=$(best_tls_rate "$socat_port")
  stop "$fwd_pid" "$socat_pid" "$echo_pid"
  ratio "TLS short connections/s, forward vs socat fork" "$h_netsh" "socat" "$h_socat" conn/s higher
else
  echo "relay comparisons skipped: iperf3 or socat missing"
fi
rm -rf "$RELAY_DIR"

# Relays (issue 18): netsh's forward() beside socat's fork and no relay.
#  - one iperf3 stream for 5 s through forward, through
#    `socat TCP-LISTEN:…,fork,reuseaddr TCP:…`, and direct (no relay);
#  - short connections (connect, one line, one reply, close) per second
#    through forward vs socat's fork (examples/short_load, 32 at a time,
#    one thread);
#  - 256 MiB over TLS terminated by forward vs socat OPENSSL-LISTEN, in
#    front of the same plain sender (socat), read by the same client
#    (socat OPENSSL); and the same client reading the file from socat
#    OPENSSL-LISTEN itself, no relay: the ceiling any relay can reach
#    while the client and the sender share the machine;
#  - TLS short connections (a full handshake, one line, its echo, close)
#    per second through forward vs socat OPENSSL-LISTEN's fork, in front
#    of the same echo server (short_load tls-rate, 32 at a time);
#  - 10,000 idle connections held through forward: resident memory per
#    connection and the thread count before and after.
# Best of $ROUNDS (iperf3: of RELAY_IPERF_ROUNDS, default 2, 5 s each).
need iperf3:iperf3 socat:socat openssl:openssl

RELAY_DIR="$WORK/relay"
mkdir -p "$RELAY_DIR"
IPERF_ROUNDS=${RELAY_IPERF_ROUNDS:-2}
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

# Best of $IPERF_ROUNDS iperf3 runs to port $1, in Gbit/s.
iperf_best() {
  local best=0 r
  for _ in $(seq "$IPERF_ROUNDS"); do
    r=$(iperf3 -c 127.0.0.1 -p "$1" -t 5 -J 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)' 2>/dev/null || echo 0)
    best=$(python3 -c "print(max($best, $r))")
  done
  echo "$best"
}

if command -v iperf3 >/dev/null && command -v socat >/dev/null; then
  # --- iperf3 through forward, through socat, direct
  iperf_port=$(free_port)
  iperf3 -s -p "$iperf_port" -B 127.0.0.1 >/dev/null 2>&1 &
  iperf_pid=$!
  wait_listen "$iperf_port"
  start_forward "127.0.0.1:$iperf_port"
  LISTEN_EXTRA= start_socat TCP-LISTEN "TCP:127.0.0.1:$iperf_port"
  g_direct=$(iperf_best "$iperf_port")
  g_netsh=$(iperf_best "$fwd_port")
  g_socat=$(iperf_best "$socat_port")
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

  # --- TLS terminated: forward vs socat OPENSSL-LISTEN, same sender and client
  TLS_MB=256
  head -c $((TLS_MB << 20)) /dev/urandom >"$RELAY_DIR/payload.bin"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$RELAY_DIR/key.pem" -out "$RELAY_DIR/cert.pem" 2>/dev/null
  sender_port=$(free_port)
  # The file second: each forked child opens it afresh (first, it would be
  # opened once and its offset shared by every child).
  socat -U "TCP-LISTEN:$sender_port,bind=127.0.0.1,fork,reuseaddr" "OPEN:$RELAY_DIR/payload.bin,rdonly" 2>/dev/null &
  sender_pid=$!
  wait_listen "$sender_port"
  start_forward "127.0.0.1:$sender_port" "tls: #{cert: \"$RELAY_DIR/cert.pem\", key: \"$RELAY_DIR/key.pem\"}"
  LISTEN_EXTRA=",cert=$RELAY_DIR/cert.pem,key=$RELAY_DIR/key.pem,verify=0" \
    start_socat OPENSSL-LISTEN "TCP:127.0.0.1:$sender_port"
  tls_read() { socat -u "OPENSSL:127.0.0.1:$1,verify=0" "CREATE:$RELAY_DIR/got.bin"; }
  if tls_read "$fwd_port" && cmp -s "$RELAY_DIR/got.bin" "$RELAY_DIR/payload.bin" \
    && tls_read "$socat_port" && cmp -s "$RELAY_DIR/got.bin" "$RELAY_DIR/payload.bin"; then
    export -f tls_read
    export RELAY_DIR
    t_netsh=$(best_time bash -c "tls_read $fwd_port")
    t_socat=$(best_time bash -c "tls_read $socat_port")
    ratio "TLS terminated 256 MiB, forward vs socat" "$(python3 -c "print($TLS_MB / $t_netsh)")" \
      "socat" "$(python3 -c "print($TLS_MB / $t_socat)")" MB/s higher
  else
    echo "TLS relay comparison skipped: a check round did not deliver the bytes intact"
  fi
  stop "$fwd_pid" "$socat_pid" "$sender_pid"
  if [ -n "${t_netsh:-}" ]; then
    # The ceiling: socat serves the file over TLS itself, read by the same client.
    socat_port=$(free_port)
    socat -U "OPENSSL-LISTEN:$socat_port,bind=127.0.0.1,fork,reuseaddr,cert=$RELAY_DIR/cert.pem,key=$RELAY_DIR/key.pem,verify=0" \
      "OPEN:$RELAY_DIR/payload.bin,rdonly" 2>/dev/null &
    socat_pid=$!
    wait_listen "$socat_port"
    t_direct=$(best_time bash -c "tls_read $socat_port")
    stop "$socat_pid"
    ratio "TLS 256 MiB, forward vs no relay (ceiling)" "$(python3 -c "print($TLS_MB / $t_netsh)")" \
      "direct" "$(python3 -c "print($TLS_MB / $t_direct)")" MB/s higher
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

# The cost of permission checks (issue 22) on the hot paths, netsh against
# itself: the same work without a flag (nothing enforced: one atomic load
# per check) and with --allow-net granting it (every check runs), in
# alternate rounds, best of each. Target: under 2% (ratio ≥ 0.98×).
#  - a send in an echo loop: 20,000 send_line/recv_line round trips on one
#    connection to a socat echo;
#  - 1,000 small sequential fetches from a local nginx (each hop checked).
need socat:socat nginx:nginx valgrind:valgrind

# Best of $PERM_ROUNDS, alternating the two commands given as two
# NUL-free argument lists separated by "--": prints "A B" seconds.
alternate_best() {
  python3 - "${PERM_ROUNDS:-9}" "$@" <<'PY'
import subprocess, sys, time
rounds, rest = int(sys.argv[1]), sys.argv[2:]
cut = rest.index("--")
cmds = [rest[:cut], rest[cut + 1:]]
best = [float("inf"), float("inf")]
for r in range(rounds):
    for i in (r % 2, 1 - r % 2):
        t = time.perf_counter()
        subprocess.run(cmds[i], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best[i] = min(best[i], time.perf_counter() - t)
print(f"{best[0]:.6f} {best[1]:.6f}")
PY
}

if command -v socat >/dev/null; then
  echo_port=$(free_port)
  socat "TCP-LISTEN:$echo_port,bind=127.0.0.1,reuseaddr,fork" PIPE &
  perm_socat=$!
  wait_listen "$echo_port"
  loop="let c = connect(\"127.0.0.1:$echo_port\"); for i in 0..20000 { c.send_line(\"hello\"); c.recv_line(); } c.close()"
  read -r t_plain t_granted < <(alternate_best "$NETSH" -e "$loop" -- "$NETSH" "--allow-net=127.0.0.1:$echo_port" -e "$loop")
  ratio "echo loop, 20,000 sends, checks on" "$t_granted" "no-flag" "$t_plain" s lower "--allow-net"
  # The same in instructions (see the fetch figure below for why).
  if command -v valgrind >/dev/null; then
    per_send() {
      local a b
      a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" -e "let c = connect(\"127.0.0.1:$echo_port\"); for i in 0..3000 { c.send_line(\"hello\"); c.recv_line(); }" 2>&1 | awk '/Collected/ {print $4}')
      b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" -e "let c = connect(\"127.0.0.1:$echo_port\"); for i in 0..1000 { c.send_line(\"hello\"); c.recv_line(); }" 2>&1 | awk '/Collected/ {print $4}')
      echo $(((a - b) / 2000))
    }
    i_plain=$(per_send "$NETSH")
    i_granted=$(per_send "$NETSH" "--allow-net=127.0.0.1:$echo_port")
    ratio "a send in an echo loop, instructions" "$i_granted" "no-flag" "$i_plain" instr lower "--allow-net"
  fi
  kill "$perm_socat" 2>/dev/null || true
fi

if command -v nginx >/dev/null; then
  PERM_DIR=$(mktemp -d "$WORK/perm.XXXXXX")
  mkdir -p "$PERM_DIR/site" "$PERM_DIR/nginx"
  head -c 1024 /dev/urandom >"$PERM_DIR/site/small.bin"
  perm_nginx=
  for _ in $(seq 20); do
    nginx_port=$((20000 + RANDOM % 12768))
    cat >"$PERM_DIR/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $PERM_DIR/nginx/nginx.pid;
error_log $PERM_DIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $PERM_DIR/nginx/body;
  proxy_temp_path $PERM_DIR/nginx/proxy;
  fastcgi_temp_path $PERM_DIR/nginx/fastcgi;
  uwsgi_temp_path $PERM_DIR/nginx/uwsgi;
  scgi_temp_path $PERM_DIR/nginx/scgi;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$nginx_port; root $PERM_DIR/site; }
}
CONF
    nginx -e "$PERM_DIR/nginx/error.log" -c "$PERM_DIR/nginx/nginx.conf" -p "$PERM_DIR/nginx" &
    perm_nginx=$!
    if wait_listen "$nginx_port" 2>/dev/null && kill -0 "$perm_nginx" 2>/dev/null; then break; fi
    kill "$perm_nginx" 2>/dev/null || true
    perm_nginx=
  done
  if [ -n "$perm_nginx" ]; then
    many="let u = \"http://127.0.0.1:$nginx_port/small.bin\"; let n = 0; for i in 0..1000 { n += fetch(u).bytes.len() } n"
    read -r t_plain t_granted < <(alternate_best "$NETSH" -e "$many" -- "$NETSH" "--allow-net=127.0.0.1:$nginx_port" -e "$many")
    ratio "1,000 fetches, checks on" "$t_granted" "no-flag" "$t_plain" s lower "--allow-net"
    # Wall time on a shared 2-core machine moves by more than 2% from run to
    # run; instructions do not. Callgrind counts netsh's own instructions per
    # fetch (300 fetches minus 100, so start-up cancels out), with and without
    # the checks: the cost of the checks, to the instruction.
    if command -v valgrind >/dev/null; then
      per_fetch() {
        local a b
        a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" -e "let u = \"http://127.0.0.1:$nginx_port/small.bin\"; for i in 0..300 { fetch(u); }" 2>&1 | awk '/Collected/ {print $4}')
        b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" -e "let u = \"http://127.0.0.1:$nginx_port/small.bin\"; for i in 0..100 { fetch(u); }" 2>&1 | awk '/Collected/ {print $4}')
        echo $(((a - b) / 200))
      }
      i_plain=$(per_fetch "$NETSH")
      i_granted=$(per_fetch "$NETSH" "--allow-net=127.0.0.1:$nginx_port")
      ratio "a fetch, instructions, checks on" "$i_granted" "no-flag" "$i_plain" instr lower "--allow-net"
    fi
    kill "$perm_nginx" 2>/dev/null || true
  else
    echo "nginx would not start; the fetch cost is not measured" >&2
  fi
fi

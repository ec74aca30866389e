# Downloads (issue 8), from a local nginx on 127.0.0.1:
#  - a 1 GiB file to /dev/null and to a tmpfs file: netsh vs curl vs wget
#    (best of 3 each; netsh also computes the SHA-256 while it streams,
#    and once more with `hash: false`, doing what curl and wget do);
#  - peak RSS of netsh during those downloads;
#  - 1,000 small sequential fetches in one netsh script vs one curl process
#    given the same 1,000 URLs (it reuses the connection; target ≥ 1.0×)
#    vs 1,000 curl runs.
need nginx:nginx curl:curl wget:wget

if command -v nginx >/dev/null && command -v curl >/dev/null && command -v wget >/dev/null; then
  FETCH_ROUNDS=${FETCH_ROUNDS:-3}
  # tmpfs when there is one, so the disk is not what is measured.
  if [ -d /dev/shm ]; then FETCH_DIR=$(mktemp -d /dev/shm/netsh-fetch.XXXXXX); else FETCH_DIR="$WORK/fetch"; mkdir -p "$FETCH_DIR"; fi
  trap 'rm -rf "$WORK" "$FETCH_DIR"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
  mkdir -p "$FETCH_DIR/site" "$FETCH_DIR/nginx"
  FETCH_MB=1024
  head -c $((FETCH_MB << 20)) /dev/urandom >"$FETCH_DIR/site/big.bin"
  head -c 1024 /dev/urandom >"$FETCH_DIR/site/small.bin"

  # nginx needs a fixed port in its config: one below 32768, retried if taken.
  nginx_pid=
  for _ in $(seq 20); do
    nginx_port=$((20000 + RANDOM % 12768))
    cat >"$FETCH_DIR/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $FETCH_DIR/nginx/nginx.pid;
error_log $FETCH_DIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $FETCH_DIR/nginx/body;
  proxy_temp_path $FETCH_DIR/nginx/proxy;
  fastcgi_temp_path $FETCH_DIR/nginx/fastcgi;
  uwsgi_temp_path $FETCH_DIR/nginx/uwsgi;
  scgi_temp_path $FETCH_DIR/nginx/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$nginx_port; root $FETCH_DIR/site; }
}
CONF
    nginx -e "$FETCH_DIR/nginx/error.log" -c "$FETCH_DIR/nginx/nginx.conf" -p "$FETCH_DIR/nginx" &
    nginx_pid=$!
    if wait_listen "$nginx_port" 2>/dev/null && kill -0 "$nginx_pid" 2>/dev/null; then break; fi
    kill "$nginx_pid" 2>/dev/null || true
    nginx_pid=
  done
  if [ -z "$nginx_pid" ]; then
    echo "nginx would not start; the fetch comparisons are skipped" >&2
  else
    big="http://127.0.0.1:$nginx_port/big.bin"
    small="http://127.0.0.1:$nginx_port/small.bin"
    out="$FETCH_DIR/out.bin"
    fetch_rate() { python3 -c "print($FETCH_MB / $1)"; }
    fetch_best() { ROUNDS=$FETCH_ROUNDS best_time "$@"; }

    t_netsh_null=$(fetch_best "$NETSH" -e "fetch(\"$big\", \"/dev/null\", #{progress: false})")
    t_curl_null=$(fetch_best curl -s -o /dev/null "$big")
    t_wget_null=$(fetch_best wget -q -O /dev/null "$big")
    ratio "1 GiB to /dev/null vs curl" "$(fetch_rate "$t_netsh_null")" "curl" "$(fetch_rate "$t_curl_null")" MB/s higher
    ratio "1 GiB to /dev/null vs wget" "$(fetch_rate "$t_netsh_null")" "wget" "$(fetch_rate "$t_wget_null")" MB/s higher
    # Without the SHA-256 netsh does the same work as curl and wget.
    t_nohash_null=$(fetch_best "$NETSH" -e "fetch(\"$big\", \"/dev/null\", #{progress: false, hash: false})")
    ratio "1 GiB to /dev/null, hash: false vs curl" "$(fetch_rate "$t_nohash_null")" "curl" "$(fetch_rate "$t_curl_null")" MB/s higher

    t_netsh_file=$(fetch_best sh -c "rm -f '$out'; '$NETSH' -e 'fetch(\"$big\", \"$out\", #{progress: false})'")
    t_curl_file=$(fetch_best sh -c "rm -f '$out'; curl -s -o '$out' '$big'")
    t_wget_file=$(fetch_best sh -c "rm -f '$out'; wget -q -O '$out' '$big'")
    ratio "1 GiB to a tmpfs file vs curl" "$(fetch_rate "$t_netsh_file")" "curl" "$(fetch_rate "$t_curl_file")" MB/s higher
    ratio "1 GiB to a tmpfs file vs wget" "$(fetch_rate "$t_netsh_file")" "wget" "$(fetch_rate "$t_wget_file")" MB/s higher
    t_nohash_file=$(fetch_best sh -c "rm -f '$out'; '$NETSH' -e 'fetch(\"$big\", \"$out\", #{progress: false, hash: false})'")
    ratio "1 GiB to a tmpfs file, hash: false vs curl" "$(fetch_rate "$t_nohash_file")" "curl" "$(fetch_rate "$t_curl_file")" MB/s higher
    rm -f "$out"

    rss_null=$(peak_rss_mb "$NETSH" -e "fetch(\"$big\", \"/dev/null\", #{progress: false})")
    rss_file=$(peak_rss_mb "$NETSH" -e "fetch(\"$big\", \"$out\", #{progress: false})")
    rss_curl=$(peak_rss_mb curl -s -o /dev/null "$big")
    rm -f "$out"
    echo "peak RSS, 1 GiB download: netsh ${rss_null} MB to /dev/null, ${rss_file} MB to a file; curl ${rss_curl} MB (target < 64 MB)"

    # 1,000 small fetches. curl given all the URLs in one config file keeps
    # one connection open, as netsh's shared client does.
    for _ in $(seq 1000); do printf 'url = "%s"\noutput = "/dev/null"\n' "$small"; done >"$FETCH_DIR/urls.curl"
    printf '#!/bin/sh\nfor i in $(seq 1000); do curl -s -o /dev/null "%s"; done\n' "$small" >"$FETCH_DIR/many-curls.sh"
    # A tenth of a second each, and noisy on a shared machine: best of 10.
    t_netsh_loop=$(ROUNDS=10 best_time "$NETSH" -e "let u = \"$small\"; let n = 0; for i in 0..1000 { n += fetch(u).bytes.len() } n")
    t_curl_one=$(ROUNDS=10 best_time curl -s -K "$FETCH_DIR/urls.curl")
    t_curl_many=$(ROUNDS=1 best_time sh "$FETCH_DIR/many-curls.sh")
    ratio "1,000 fetches vs one curl, 1,000 URLs" "$t_netsh_loop" "curl" "$t_curl_one" s lower
    ratio "1,000 fetches vs 1,000 curl runs" "$t_netsh_loop" "curl×1000" "$t_curl_many" s lower

    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  rm -rf "$FETCH_DIR"
fi

# File upload (issue 4), 1 GiB of random bytes over 127.0.0.1:
#  - raw send_file to a receiver writing to /dev/null, vs `nc` and `socat`
#    sending the same file, and as a fraction of iperf3's loopback rate;
#  - framed, verified upload to disk (SHA-256 both sides, fsync, rename)
#    vs raw nc to disk (then fsync);
#  - peak RSS of the netsh sender and receiver.
need nc:netcat-openbsd socat:socat iperf3:iperf3 ss:iproute2

XFER_FILE="$WORK/upload-1g.bin"
XFER_MB=1024
head -c $((XFER_MB << 20)) /dev/urandom >"$XFER_FILE"

mb_per_s() { python3 -c "print($XFER_MB / $1)"; }

if command -v nc >/dev/null && command -v socat >/dev/null; then
  # One receiver for every round: nc -k accepts the next sender after each EOF.
  sink_port=$(free_port)
  nc -lk 127.0.0.1 "$sink_port" >/dev/null </dev/null &
  sink_pid=$!
  wait_listen "$sink_port"

  t_zero=$(best_time "$NETSH" -e "send_file(\"127.0.0.1:$sink_port\", \"$XFER_FILE\", #{raw: true, progress: false, hash: true})")
  t_nohash=$(best_time "$NETSH" -e "send_file(\"127.0.0.1:$sink_port\", \"$XFER_FILE\", #{raw: true, progress: false})")
  t_copy=$(best_time "$NETSH" -e "send_file(\"127.0.0.1:$sink_port\", \"$XFER_FILE\", #{raw: true, progress: false, hash: false, zero_copy: false})")
  t_nc=$(best_time sh -c "nc -N 127.0.0.1 $sink_port < '$XFER_FILE'")
  t_socat=$(best_time socat -u "FILE:$XFER_FILE" "TCP:127.0.0.1:$sink_port")
  kill "$sink_pid" 2>/dev/null || true
  wait "$sink_pid" 2>/dev/null || true

  # Raw mode by default is nc's job exactly: bytes only. `hash: true` also
  # computes the SHA-256 on the side, which costs a core.
  r_zero=$(mb_per_s "$t_zero"); r_copy=$(mb_per_s "$t_copy"); r_nohash=$(mb_per_s "$t_nohash")
  ratio "raw 1 GiB to /dev/null vs nc" "$r_nohash" "nc" "$(mb_per_s "$t_nc")" MB/s higher
  ratio "raw 1 GiB to /dev/null vs socat" "$r_nohash" "socat" "$(mb_per_s "$t_socat")" MB/s higher
  ratio "raw 1 GiB, hash: true vs nc" "$r_zero" "nc" "$(mb_per_s "$t_nc")" MB/s higher
  ratio "raw: sendfile vs read/write" "$r_nohash" "rd/wr" "$r_copy" MB/s higher

  if command -v iperf3 >/dev/null; then
    iperf_port=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$iperf_port" >/dev/null 2>&1 &
    wait_listen "$iperf_port"
    iperf_mb=$(iperf3 -c 127.0.0.1 -p "$iperf_port" -n "${XFER_MB}M" -J 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8 / 2**20)')
    wait 2>/dev/null || true
    python3 -c "print(f'of iperf3 loopback ({$iperf_mb:.0f} MB/s): raw send_file {$r_nohash / $iperf_mb:.0%}, with sha256 {$r_zero / $iperf_mb:.0%}; nc {$(mb_per_s "$t_nc") / $iperf_mb:.0%}, socat {$(mb_per_s "$t_socat") / $iperf_mb:.0%}')"
  fi

  # To disk, until the data is durable: netsh framed (returns after the
  # receiver's SHA-256 check, fsync and rename) vs nc then `sync FILE`.
  disk_port=$(free_port)
  "$NETSH" -e "let s = serve_files(\"127.0.0.1:$disk_port\", \"$WORK/in\", #{overwrite: true}); s.wait(1000000)" >/dev/null 2>&1 &
  server_pid=$!
  wait_listen "$disk_port"
  t_framed=$(best_time "$NETSH" -e "send_file(\"127.0.0.1:$disk_port\", \"$XFER_FILE\", #{progress: false})")
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$WORK/in"

  cat >"$WORK/nc-to-disk.sh" <<'SH'
port=$1 out=$2 file=$3
rm -f "$out"
nc -l 127.0.0.1 "$port" >"$out" </dev/null &
receiver=$!
until ss -Hltn "sport = :$port" | grep -q .; do sleep 0.005; done
nc -N 127.0.0.1 "$port" <"$file"
wait "$receiver"
sync "$out"
SH
  nc_port=$(free_port)
  t_ncdisk=$(best_time bash "$WORK/nc-to-disk.sh" "$nc_port" "$WORK/nc-out.bin" "$XFER_FILE")
  rm -f "$WORK/nc-out.bin"
  ratio "1 GiB to disk: framed+verified vs raw nc+sync" "$(mb_per_s "$t_framed")" "nc" "$(mb_per_s "$t_ncdisk")" MB/s higher

  # Peak memory of each side of one framed 1 GiB upload.
  rss_port=$(free_port)
  peak_rss_mb "$NETSH" -e "let s = serve_files(\"127.0.0.1:$rss_port\", \"$WORK/in\"); s.wait(1, 600000)" >"$WORK/rss-receiver" &
  rss_pid=$!
  wait_listen "$rss_port"
  rss_sender=$(peak_rss_mb "$NETSH" -e "send_file(\"127.0.0.1:$rss_port\", \"$XFER_FILE\", #{progress: false})")
  wait "$rss_pid" || true
  rm -rf "$WORK/in"
  rss_raw=$(
    port=$(free_port)
    nc -l 127.0.0.1 "$port" >/dev/null </dev/null &
    wait_listen "$port"
    peak_rss_mb "$NETSH" -e "send_file(\"127.0.0.1:$port\", \"$XFER_FILE\", #{raw: true, progress: false})"
  )
  echo "peak RSS, framed 1 GiB: sender ${rss_sender} MB, receiver $(cat "$WORK/rss-receiver") MB; raw sender ${rss_raw} MB (target < 64 MB)"
fi
rm -f "$XFER_FILE"

# Seeing the wire under load: `capture` and tcpdump both watch one port
# while 1 GiB crosses it on loopback (nc to nc), with the same filter. Each
# must keep every packet the kernel hands it. Printed: the packets each
# kept, the kernel's drop counters (PACKET_STATISTICS), and the data the
# client's segments cover (1 GiB when none is missing; retransmissions,
# which loopback has under load, counted apart).
need nc:netcat-openbsd tcpdump:tcpdump

CAP_FILE="$WORK/capture-1g.bin"
truncate -s 1G "$CAP_FILE"

if command -v nc >/dev/null; then
  port=$(free_port)
  "$NETSH" -e "
    let r = capture(#{port: $port, stats: true});
    let end = 0;
    let sent = 0;
    for p in r.packets {
      if p.dst.ends_with(\":$port\") && p.len > 0 {
        sent += p.len;
        if p.seq + p.len - 1 > end { end = p.seq + p.len - 1 }
      }
    }
    \`\${r.packets.len()} \${r.dropped} \${end} \${sent - end}\`
  " >"$WORK/capture.out" 2>"$WORK/capture.err" &
  netsh_pid=$!
  tcpdump_pid=
  if command -v tcpdump >/dev/null; then
    tcpdump -i lo -n -s 176 -w /dev/null "tcp port $port" 2>"$WORK/tcpdump.err" &
    tcpdump_pid=$!
  fi
  sleep 1
  nc -l 127.0.0.1 "$port" >/dev/null </dev/null &
  sink=$!
  wait_listen "$port"
  start=$(date +%s.%N)
  nc -N 127.0.0.1 "$port" <"$CAP_FILE"
  wait "$sink"
  elapsed=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
  sleep 0.3
  kill -INT "$netsh_pid" $tcpdump_pid
  wait "$netsh_pid" $tcpdump_pid || true
  read -r seen dropped covered resent <"$WORK/capture.out" || true
  echo "1 GiB over lo in ${elapsed} s, watched by netsh capture and tcpdump at once:"
  echo "  netsh:   kept ${seen:-?} packets, kernel dropped ${dropped:-?} (target 0); data covered ${covered:-?} of 1073741824 bytes, ${resent:-?} bytes retransmitted"
  [ -s "$WORK/capture.err" ] && sed 's/^/  netsh said: /' "$WORK/capture.err"
  if [ -n "$tcpdump_pid" ]; then
    t_seen=$(awk '/packets captured/ {print $1}' "$WORK/tcpdump.err")
    t_filter=$(awk '/received by filter/ {print $1}' "$WORK/tcpdump.err")
    t_dropped=$(awk '/dropped by kernel/ {print $1}' "$WORK/tcpdump.err")
    echo "  tcpdump: kept ${t_seen:-?} packets, kernel dropped ${t_dropped:-?}; its filter received ${t_filter:-?} (loopback shows each packet twice)"
    if [ -n "${seen:-}" ] && [ -n "${t_seen:-}" ]; then
      ratio "capture 1 GiB on lo: packets kept vs tcpdump" "$seen" "tcpdump" "$t_seen" packets higher
    fi
  fi
fi

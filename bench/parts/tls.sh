# TLS (issue 10): 1 GiB over a TLS connection on 127.0.0.1, netsh to netsh
# vs socat to socat (OPENSSL ↔ OPENSSL-LISTEN). The netsh sender is
# send_file raw over #{tls: …} (the transfer's async path); the netsh
# receiver reads the TLS Conn with read(1 MiB) until end of stream (the
# script's own read path) and drops the bytes, as socat's receiver writes
# them to /dev/null. (recv_file would also hash every byte, which socat
# does not.) A second line sends from netsh to socat's receiver, so the
# sender is compared alone. Each round times the whole pair, from the
# receiver's start until it has read the last byte and exited; a netsh
# receiver's byte count is checked, a socat receiver's exit status. Same
# certificate (made here with openssl).
need socat:socat openssl:openssl ss:iproute2

TLS_DIR="$WORK/tls"
mkdir -p "$TLS_DIR"
TLS_MB=1024
head -c $((TLS_MB << 20)) /dev/urandom >"$TLS_DIR/payload.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null

# One round for one tool: start the receiver, wait until it listens, send,
# wait for the receiver to finish.
cat >"$TLS_DIR/round.sh" <<'SH'
set -e
sender=$1 receiver=$2 dir=$3 netsh=$4
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
count="$dir/count.$$"
rm -f "$count"
if [ "$receiver" = netsh ]; then
  "$netsh" -e "let c = listen(\"127.0.0.1:$port\", #{tls: #{cert: \"$dir/cert.pem\", key: \"$dir/key.pem\"}}).accept();
    let n = 0; loop { let b = c.read(1048576); if b.len() == 0 { break } n += b.len(); } print(n)" >"$count" 2>/dev/null &
else
  socat -u "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$dir/cert.pem,key=$dir/key.pem,verify=0" \
    OPEN:/dev/null &
fi
pid=$!
until ss -Hltn "sport = :$port" | grep -q .; do sleep 0.005; done
if [ "$sender" = netsh ]; then
  "$netsh" -e "send_file(\"127.0.0.1:$port\", \"$dir/payload.bin\", #{tls: #{ca: \"$dir/cert.pem\"}, raw: true, progress: false})" >/dev/null
else
  socat -u "FILE:$dir/payload.bin" "OPENSSL:127.0.0.1:$port,cafile=$dir/cert.pem,commonname=localhost"
fi
wait "$pid"   # socat's receiver fails (and so does this round) on an error
if [ "$receiver" = netsh ]; then
  # A round that did not move every byte must not count as a fast one.
  got=$(cat "$count")
  rm -f "$count"
  [ "$got" = "$(stat -c %s "$dir/payload.bin")" ] || { echo "$sender -> netsh: $got bytes arrived" >&2; exit 1; }
fi
SH

round() { bash "$TLS_DIR/round.sh" "$1" "$2" "$TLS_DIR" "$NETSH"; }
if command -v socat >/dev/null && command -v openssl >/dev/null \
  && round netsh netsh && round socat socat && round netsh socat; then
  # Best of 3: a gigabyte per round is long enough to be steady.
  saved_rounds=$ROUNDS
  ROUNDS=3
  t_netsh=$(best_time bash "$TLS_DIR/round.sh" netsh netsh "$TLS_DIR" "$NETSH")
  t_socat=$(best_time bash "$TLS_DIR/round.sh" socat socat "$TLS_DIR" "$NETSH")
  t_sender=$(best_time bash "$TLS_DIR/round.sh" netsh socat "$TLS_DIR" "$NETSH")
  ROUNDS=$saved_rounds
  mbs() { python3 -c "print($TLS_MB / $1)"; }
  ratio "TLS 1 GiB loopback, netsh ↔ netsh vs socat" "$(mbs "$t_netsh")" "socat" "$(mbs "$t_socat")" MB/s higher
  ratio "TLS 1 GiB, netsh sender → socat vs socat" "$(mbs "$t_sender")" "socat" "$(mbs "$t_socat")" MB/s higher
else
  echo "TLS comparison skipped: socat or openssl missing, or a check round failed (see above)"
fi
rm -rf "$TLS_DIR"

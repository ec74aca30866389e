# TLS (issue 10): 1 GiB over a TLS connection on 127.0.0.1, netsh to netsh
# (send_file raw over #{tls: …} into recv_file raw on a TLS listener) vs
# socat to socat (OPENSSL ↔ OPENSSL-LISTEN), both writing into a file on
# /dev/shm, so neither waits for a disk. Each round times the whole pair,
# from the receiver's start until it has written the last byte and exited.
# Same certificate (made here with openssl), same loopback, same sink.
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
tool=$1 dir=$2 netsh=$3
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=/dev/shm/netsh-bench-tls
rm -rf "$out" && mkdir -p "$out"
if [ "$tool" = netsh ]; then
  "$netsh" -e "recv_file(listen(\"127.0.0.1:$port\", #{tls: #{cert: \"$dir/cert.pem\", key: \"$dir/key.pem\"}}), \"$out\", #{raw: true, name: \"out.bin\"})" >/dev/null 2>&1 &
else
  socat -u "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$dir/cert.pem,key=$dir/key.pem,verify=0" "CREATE:$out/out.bin" &
fi
receiver=$!
until ss -Hltn "sport = :$port" | grep -q .; do sleep 0.005; done
if [ "$tool" = netsh ]; then
  "$netsh" -e "send_file(\"127.0.0.1:$port\", \"$dir/payload.bin\", #{tls: #{ca: \"$dir/cert.pem\"}, raw: true, progress: false})" >/dev/null
else
  socat -u "FILE:$dir/payload.bin" "OPENSSL:127.0.0.1:$port,cafile=$dir/cert.pem,commonname=localhost"
fi
wait "$receiver"
size=$(stat -c %s "$out/out.bin" 2>/dev/null || echo 0)
rm -rf "$out"
# A round that did not move every byte must not count as a fast one.
[ "$size" = "$(stat -c %s "$dir/payload.bin")" ] || { echo "$tool: received $size bytes" >&2; exit 1; }
SH

if command -v socat >/dev/null && command -v openssl >/dev/null \
  && bash "$TLS_DIR/round.sh" netsh "$TLS_DIR" "$NETSH" && bash "$TLS_DIR/round.sh" socat "$TLS_DIR" "$NETSH"; then
  # Best of 3: a gigabyte per round is long enough to be steady.
  saved_rounds=$ROUNDS
  ROUNDS=3
  t_netsh=$(best_time bash "$TLS_DIR/round.sh" netsh "$TLS_DIR" "$NETSH")
  t_socat=$(best_time bash "$TLS_DIR/round.sh" socat "$TLS_DIR" "$NETSH")
  ROUNDS=$saved_rounds
  ratio "TLS 1 GiB loopback, netsh ↔ netsh vs socat" \
    "$(python3 -c "print($TLS_MB / $t_netsh)")" "socat" "$(python3 -c "print($TLS_MB / $t_socat)")" MB/s higher
else
  echo "TLS comparison skipped: socat or openssl missing, or a check round failed (see above)"
fi
rm -rf "$TLS_DIR"

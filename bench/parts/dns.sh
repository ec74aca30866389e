# dns(): one question, and 10,000 at once, against a local unbound,
# side by side with dig (issue 19). The server is started here from a
# generated config on 127.0.0.1, on a free port below 32768.
need unbound:unbound dig:bind9-dnsutils dnsperf:dnsperf
UB="$WORK/unbound"
mkdir -p "$UB"
{
  echo '$ORIGIN bench.test.'
  echo '@ 3600 IN SOA ns1 admin 1 7200 3600 1209600 300'
  echo '@ 3600 IN NS ns1'
  echo 'ns1 300 IN A 10.0.0.53'
  for i in $(seq 0 9999); do echo "n$i 300 IN A 10.$((i / 256 % 256)).$((i % 256)).1"; done
} > "$UB/bench.zone"
for i in $(seq 0 9999); do echo "n$i.bench.test A"; done > "$UB/names.txt"
# The same names for netsh, one a line: both tools read their list from a file.
cut -d' ' -f1 "$UB/names.txt" > "$UB/names_only.txt"
DNS_PORT=$(python3 -c '
import random, socket
for _ in range(100):
    p = random.randint(20000, 32767)
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", p)); s.close()
        print(p); break
    except OSError: pass')
cat > "$UB/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $DNS_PORT
  do-daemonize: no
  use-syslog: no
  logfile: ""
  chroot: ""
  username: ""
  directory: "$UB"
  pidfile: ""
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "bench.test." transparent
auth-zone:
  name: "bench.test."
  zonefile: "$UB/bench.zone"
  for-downstream: yes
  for-upstream: no
remote-control:
  control-enable: no
CONF
unbound -d -c "$UB/unbound.conf" >/dev/null 2>&1 &
UB_PID=$!
for _ in $(seq 200); do
  [ "$(dig +short @127.0.0.1 -p "$DNS_PORT" n1.bench.test A 2>/dev/null)" = "10.0.1.1" ] && break
  sleep 0.05
done
S="127.0.0.1:$DNS_PORT"

ours=$(best_time "$NETSH" -e "dns(\"n1.bench.test\", \"A\", #{server: \"$S\"}).answers[0].data")
theirs=$(best_time dig +short @127.0.0.1 -p "$DNS_PORT" n1.bench.test A)
ratio "one question, process start included" "$ours" "dig +short" "$theirs" s lower

MANY="let names = read_file(\"$UB/names_only.txt\").split(\"\\n\"); names.retain(|n| n != \"\");
let rs = dns_many(names, \"A\", #{server: \"$S\", concurrency: 200});
let ok = rs.filter(|r| r.rcode == \"NOERROR\" && r.answers.len() == 1).len();
if ok != 10000 { throw \`only \${ok} of 10000 answered\` }"
"$NETSH" -e "$MANY" || echo "dns_many did not get every answer" >&2
ours=$(best_time "$NETSH" -e "$MANY")
theirs=$(ROUNDS=1 best_time dig @127.0.0.1 -p "$DNS_PORT" +short -f "$UB/names.txt")
ratio "10,000 names: dns_many vs dig -f" "$ours" "dig -f" "$theirs" s lower
python3 -c "print(f'{\"  rate\":<44} netsh {10000/$ours:>12.0f} q/s     dig -f {10000/$theirs:>12.0f} q/s')"
if command -v dnsperf >/dev/null 2>&1; then
  dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$UB/names.txt" -n 1 2>/dev/null | grep -E "Queries per second" | sed 's/^/  dnsperf: /'
fi
kill "$UB_PID" 2>/dev/null || true
wait "$UB_PID" 2>/dev/null || true

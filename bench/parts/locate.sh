# ping() and traceroute() (issue 19), beside iputils ping and traceroute -n.
# Both need root: ping at a 1 ms interval (as iputils), traceroute a raw
# socket and the namespace lab (client, three routers, server) built here.
need ping:iputils-ping traceroute:traceroute
if [ "$(id -u)" != 0 ]; then
  echo "locate: skipped (ping at 1 ms and the namespace lab need root)"
  return 0
fi

# The median RTT of 1,000 echo requests to 127.0.0.1, 1 ms apart.
ours=$("$NETSH" -e 'let p = ping("127.0.0.1", #{count: 1000, interval: 1});
  if p.received != 1000 { throw `lost ${1000 - p.received}` }
  let t = p.replies.map(|r| r.ms); t.sort(); t[500]')
theirs=$(ping -n -c 1000 -i 0.001 127.0.0.1 | python3 -c '
import re, statistics, sys
t = [float(m.group(1)) for m in re.finditer(r"time=([0-9.]+)", sys.stdin.read())]
assert len(t) == 1000, f"iputils got {len(t)} replies"
print(sorted(t)[500])')
ratio "ping 127.0.0.1 x1000 at 1 ms: median RTT" "$ours" "iputils ping" "$theirs" ms lower

# The lab: four links in a line, 10.91.1.0/24 … 10.91.4.0/24.
LAB="nlb$$"
lab_down() { for n in c r1 r2 r3 s; do ip netns del "$LAB$n" 2>/dev/null || true; done; }
trap 'lab_down; rm -rf "$WORK"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
ns=(c r1 r2 r3 s)
for n in "${ns[@]}"; do ip netns add "$LAB$n"; ip -n "$LAB$n" link set lo up; done
for i in 0 1 2 3; do
  a=$LAB${ns[$i]}; b=$LAB${ns[$((i + 1))]}; net=$((i + 1))
  ip -n "$a" link add right type veth peer name left netns "$b"
  ip -n "$a" addr add "10.91.$net.1/24" dev right; ip -n "$b" addr add "10.91.$net.2/24" dev left
  ip -n "$a" link set right up; ip -n "$b" link set left up
done
for r in r1 r2 r3 s; do
  ip netns exec "$LAB$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
done
ip -n "${LAB}c" route add default via 10.91.1.2
ip -n "${LAB}s" route add default via 10.91.4.1
ip -n "${LAB}r1" route add 10.91.3.0/24 via 10.91.2.2; ip -n "${LAB}r1" route add 10.91.4.0/24 via 10.91.2.2
ip -n "${LAB}r2" route add 10.91.1.0/24 via 10.91.2.1; ip -n "${LAB}r2" route add 10.91.4.0/24 via 10.91.3.2
ip -n "${LAB}r3" route add 10.91.1.0/24 via 10.91.3.1; ip -n "${LAB}r3" route add 10.91.2.0/24 via 10.91.3.1
NETSH_ABS=$(realpath "$NETSH")
ours=$(best_time ip netns exec "${LAB}c" "$NETSH_ABS" -e 'traceroute("10.91.4.2").len()')
theirs=$(best_time ip netns exec "${LAB}c" traceroute -n 10.91.4.2)
ratio "traceroute across the lab (4 hops, 3 queries)" "$ours" "traceroute -n" "$theirs" s lower
lab_down

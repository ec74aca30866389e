# Port scan of all 65,535 loopback TCP ports: netsh `scan` against
# `nmap -sT -T5` (an unprivileged connect scan, the same technique) and
# `nc -z` (one blocking connect after another), best of 3 each, and the
# open ports each one found (they should be the same).
need nmap:nmap nc:netcat-openbsd

# Open ports as one sorted line, from each tool's own output.
netsh_open() { "$NETSH" -e 'scan("127.0.0.1", 1..65536).map(|p| p.to_string()).reduce(|a, p| a + " " + p, "")'; }
nmap_open() { nmap -sT -p- -T5 -n 127.0.0.1 | awk -F/ '/^[0-9]+\/tcp +open/ {print $1}' | sort -n | xargs; }
nc_open() { nc -z -v 127.0.0.1 1-65535 2>&1 | awk '/succeeded/ {print $4}' | sort -n | xargs; }

ours=$(ROUNDS=3 best_time "$NETSH" -e 'scan("127.0.0.1", 1..65536)')
if command -v nmap >/dev/null; then
  theirs=$(ROUNDS=3 best_time nmap -sT -p- -T5 -n 127.0.0.1)
  ratio "scan 65535 ports on 127.0.0.1 vs nmap -sT -T5" "$ours" "nmap" "$theirs" s lower
fi
if command -v nc >/dev/null; then
  theirs=$(ROUNDS=3 best_time nc -z 127.0.0.1 1-65535)
  ratio "scan 65535 ports on 127.0.0.1 vs nc -z" "$ours" "nc" "$theirs" s lower
fi
found_netsh=$(netsh_open | xargs)
echo "open ports: netsh $found_netsh"
for tool in nmap nc; do
  if command -v "$tool" >/dev/null; then
    found=$("${tool}_open")
    same=$([ "$found" = "$found_netsh" ] && echo "same" || echo "DIFFERENT (a listener may have come or gone between runs)")
    printf '            %-5s %s  (%s)\n' "$tool" "$found" "$same"
  fi
done

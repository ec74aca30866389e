# Port scan of all 65,535 loopback TCP ports: netsh `scan` vs `nmap -sT`
# (an unprivileged connect scan, the same technique).
need nmap:nmap
if command -v nmap >/dev/null; then
  ours=$(best_time "$NETSH" -e 'scan("127.0.0.1", 1..65536)')
  theirs=$(best_time nmap -sT -p1-65535 -T5 -n -Pn 127.0.0.1)
  ratio "scan 65535 ports on 127.0.0.1 vs nmap -sT -T5" "$ours" "nmap" "$theirs" s lower
  echo "open ports: netsh $("$NETSH" -e 'scan("127.0.0.1", 1..65536)')"
  echo "            nmap  $(nmap -sT -p1-65535 -T5 -n -Pn 127.0.0.1 | awk '/^[0-9]+\/tcp/ {split($1,a,"/"); printf "%s ", a[1]}')"
fi

# Port scan of all 65,535 loopback TCP ports: netsh `scan` against
# `nmap -sT -T5` (an unprivileged connect scan, the same technique) and
# `nc -z` (one blocking connect after another), best of $ROUNDS (default 5) each, and the
# open ports each one found. Three listeners of our own make sure there is
# something to find; on a shared machine other listeners may come and go
# between the runs, so differences are printed rather than hidden.
need nmap:nmap nc:netcat-openbsd

python3 -c '
import socket, sys, time
held = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held), flush=True)
time.sleep(600)
' >"$WORK/scan-listeners" &
scan_listeners=$!
while [ ! -s "$WORK/scan-listeners" ]; do sleep 0.05; done
echo "our listeners: $(cat "$WORK/scan-listeners")"

# Open ports as one sorted line, from each tool's own output.
netsh_open() { "$NETSH" -e 'scan("127.0.0.1", 1..65536).map(|p| p.to_string()).reduce(|a, p| a + " " + p, "")' | xargs; }
nmap_open() { nmap -sT -p- -T5 -n 127.0.0.1 | awk -F/ '/^[0-9]+\/tcp +open/ {print $1}' | sort -n | xargs; }
nc_open() { nc -z -v 127.0.0.1 1-65535 2>&1 | awk '/succeeded/ {print $4}' | sort -n | xargs; }
# What one list has that the other lacks.
only_in() { comm -23 <(tr ' ' '\n' <<<"$1" | sort) <(tr ' ' '\n' <<<"$2" | sort) | sort -n | xargs; }

ours=$(best_time "$NETSH" -e 'scan("127.0.0.1", 1..65536)')
if command -v nmap >/dev/null; then
  theirs=$(best_time nmap -sT -p- -T5 -n 127.0.0.1)
  ratio "scan 65535 ports on 127.0.0.1 vs nmap -sT -T5" "$ours" "nmap" "$theirs" s lower
fi
if command -v nc >/dev/null; then
  theirs=$(best_time nc -z 127.0.0.1 1-65535)
  ratio "scan 65535 ports on 127.0.0.1 vs nc -z" "$ours" "nc" "$theirs" s lower
fi
found_netsh=$(netsh_open)
echo "open ports: netsh $found_netsh"
for tool in nmap nc; do
  if command -v "$tool" >/dev/null; then
    found=$("${tool}_open")
    if [ "$found" = "$found_netsh" ]; then
      printf '            %-5s the same\n' "$tool"
    else
      printf '            %-5s differs: only %s found [%s], only netsh found [%s]\n' \
        "$tool" "$tool" "$(only_in "$found" "$found_netsh")" "$(only_in "$found_netsh" "$found")"
    fi
  fi
done
kill "$scan_listeners" 2>/dev/null || true

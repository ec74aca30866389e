# Cold start and idle memory (issue: foundation).
# `netsh -e '1'` against `python3 -c 'import socket'`, the REPL people use today.
need python3:python3
ours=$(best_time "$NETSH" -e '1')
py=$(best_time /usr/bin/python3 -c 'import socket')
ratio "cold start: netsh -e '1' vs python3 import socket" "$ours" "python3" "$py" s lower
rss=$(peak_rss_mb "$NETSH" -e 'sleep(300)')
echo "idle netsh peak RSS: ${rss} MB (target < 30 MB)"

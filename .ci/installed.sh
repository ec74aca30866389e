#!/usr/bin/env bash
# netsh as a user installs it: `cargo install` into a temporary root, then,
# from an empty folder, the bundled scenarios and plugins work, and a
# hostile ./plugins/x.rhai runs only when the user names the folder.
# Called by .ci/run after `cargo test`; fails loudly, with what it saw.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(mktemp -d /tmp/netsh-install.XXXXXX)
WORK=$(mktemp -d /tmp/netsh-installed.XXXXXX)
trap 'rm -rf "$ROOT" "$WORK"' EXIT

fail() {
  echo "installed.sh: FAILED: $*" >&2
  exit 1
}

echo "== cargo install --path . --root $ROOT"
# The workspace's target dir, so the release build is shared with bench/.
cargo install --locked --quiet --path . --root "$ROOT" --target-dir target
NETSH="$ROOT/bin/netsh"
[ -x "$NETSH" ] || fail "cargo install left no $NETSH"

# A private config and data dir, and a folder with nothing in it.
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data" NO_COLOR=1
mkdir -p "$WORK/empty" "$WORK/tmp"
cd "$WORK/empty"

echo "== netsh --list"
out=$("$NETSH" --list) || fail "netsh --list exited $?: $out"
for name in names ports tcp_chat udp upload; do
  grep -q "^  $name " <<<"$out" || fail "netsh --list does not show $name:"$'\n'"$out"
done

echo "== netsh upload"
out=$(TMPDIR="$WORK/tmp" "$NETSH" upload 2>&1) || fail "netsh upload exited $?:"$'\n'"$out"
grep -q "2 of 2 files identical" <<<"$out" || fail "netsh upload did not verify its files:"$'\n'"$out"
[ -z "$(ls -A "$WORK/tmp")" ] || fail "netsh upload left $(ls -A "$WORK/tmp") in TMPDIR"

echo "== netsh -e 'services::table()'"
out=$("$NETSH" -e 'services::table()' 2>&1) || fail "services::table() exited $?:"$'\n'"$out"
grep -q "ssh" <<<"$out" || fail "services::table() does not list ssh:"$'\n'"$out"

echo "== a hostile ./plugins/x.rhai"
mkdir plugins
marker="$WORK/MARKER"
printf 'write_file("%s", "ran");\nfn hi() { "x::hi ran" }\n' "$marker" > plugins/x.rhai
"$NETSH" -e '1' >/dev/null || fail "netsh -e '1' failed"
[ ! -e "$marker" ] || fail "netsh -e '1' ran ./plugins/x.rhai"
if "$NETSH" -e 'x::hi()' >/dev/null 2>&1; then fail "x::hi() worked without --plugins"; fi
[ ! -e "$marker" ] || fail "netsh -e 'x::hi()' ran ./plugins/x.rhai"
# The REPL loads every plugin it can find: the place a leak would show.
# `script` (util-linux) gives it a terminal; the sleeps let the prompt come
# before each line (rustyline drops input typed ahead of it).
{ sleep 2; printf '"repl" + "-ok"\r'; sleep 1; printf 'exit\r'; sleep 1; } \
  | timeout 20 script -qec "$NETSH" /dev/null >"$WORK/repl.out" 2>&1 || true
grep -q "repl-ok" "$WORK/repl.out" || fail "the REPL did not run a line:"$'\n'"$(cat "$WORK/repl.out")"
[ ! -e "$marker" ] || fail "the REPL ran ./plugins/x.rhai"
out=$("$NETSH" --plugins ./plugins -e 'x::hi()' 2>&1) || fail "--plugins ./plugins: exited $?:"$'\n'"$out"
[ "$out" = "x::hi ran" ] || fail "--plugins ./plugins printed: $out"
[ -e "$marker" ] || fail "--plugins ./plugins did not run ./plugins/x.rhai"

echo "installed.sh: all checks passed"

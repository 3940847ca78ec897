#!/usr/bin/env bash
# Keeps the enclave under systemd (nec01-enclave.service): starts it with run.sh, then
# stays in the foreground while it runs and exits non-zero once it is gone, so
# Restart=always relaunches it. nitro-cli itself returns as soon as the enclave boots.
#
# usage: enclave/watch.sh [run.sh options]    run and watch
#        enclave/watch.sh --terminate         stop the enclave if it runs (ExecStopPost)
set -euo pipefail

name=${NEC01_ENCLAVE_NAME:-nec01}
interval=${NEC01_WATCH_INTERVAL:-5}
here=$(cd "$(dirname "$0")" && pwd)

log() {
  printf 'nec01 watch: %s\n' "$*" >&2
}

command -v nitro-cli >/dev/null 2>&1 || { log 'nitro-cli is not installed'; exit 1; }
command -v node >/dev/null 2>&1 || { log 'node is not installed (it reads the nitro-cli JSON)'; exit 1; }

# 0: an enclave of this name is RUNNING; 1: none; 2: nitro-cli or its output failed.
state() {
  local out
  out=$(nitro-cli describe-enclaves 2>/dev/null) || return 2
  printf '%s' "$out" | node -e '
    let text = ""
    process.stdin.on("data", (d) => (text += d)).on("end", () => {
      let list
      try { list = JSON.parse(text) } catch { process.exit(2) }
      if (!Array.isArray(list)) process.exit(2)
      const up = list.some((e) => e && e.EnclaveName === process.argv[1] && e.State === "RUNNING")
      process.exit(up ? 0 : 1)
    })' "$name"
}

terminate() {
  if nitro-cli terminate-enclave --enclave-name "$name" >/dev/null 2>&1; then
    log "terminated enclave $name"
  fi
}

if [ "${1:-}" = '--terminate' ]; then
  terminate
  exit 0
fi

# A leftover enclave of the same name (this script was killed) would make run.sh fail.
if state; then
  log "replacing a running enclave named $name"
  terminate
fi

trap 'terminate; exit 0' TERM INT
"$here/run.sh" "$@"

failures=0
while :; do
  # sleep in the background so a TERM from systemd is handled at once.
  sleep "$interval" &
  wait $! || true
  if state; then
    failures=0
    continue
  else
    rc=$?
  fi
  if [ "$rc" -eq 1 ]; then
    log "enclave $name is gone; exiting so systemd restarts it"
    exit 1
  fi
  failures=$((failures + 1))
  log "nitro-cli describe-enclaves failed ($failures in a row)"
  if [ "$failures" -ge 3 ]; then
    terminate
    exit 1
  fi
done

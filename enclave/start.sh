#!/bin/sh
# Entrypoint inside the enclave. The enclave has no network, only vsock to the parent
# (CID 3), so this script wires the two bridges the service needs and then becomes it:
#   out:    node → 127.0.0.1:1080 → vsock 3:1080 → parent's CONNECT proxy → relays (TLS end to end)
#   health: parent's 127.0.0.1:8765 → vsock 16:8765 → here → 127.0.0.1:8765 (serve --health-port)
# The NEC signatures (builder, launcher, release) come the "out" way too: the service asks
# the parent's proxy for them (--parent-signatures), since baking them in would change PCRs.
# The enclave's init runs this as root from / and ignores WORKDIR and USER: root is used
# only for the loopback interface and /dev/nsm, then socat and node drop to NEC01_USER.
# Everything here and every variable it reads is part of the image, so of PCR2.
set -eu

APP_DIR=${NEC01_APP_DIR:-/app}
RUN_AS=${NEC01_USER:-node}
NEC01_T=${NEC01_T:-prod}

log() {
  printf 'nec01 start: %s\n' "$*" >&2
}

die() {
  log "$*"
  exit 1
}

# Runs a command as RUN_AS with no capabilities left, or as is when not root.
unprivileged() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid="$RUN_AS" --regid="$RUN_GID" --init-groups \
      --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
  else
    "$@"
  fi
}

# A bridge that dies is restarted: without it the service is cut off from the relays.
keep_running() {
  while :; do
    if unprivileged "$@"; then status=0; else status=$?; fi
    log "$1 exited with status $status; restarting in 1 s"
    sleep 1
  done
}

cd "$APP_DIR" || die "cannot cd to $APP_DIR"

# The enclave kernel starts with lo down and without an address; docker already has both.
if ! ip -o link show dev lo | grep -q '[<,]UP[,>]'; then
  ip link set dev lo up || die 'cannot bring up lo'
fi
if ! ip -o -4 addr show dev lo | grep -q ' 127\.0\.0\.1/'; then
  ip addr add 127.0.0.1/8 dev lo || die 'cannot add 127.0.0.1/8 to lo'
fi

RUN_GID=''
if [ "$(id -u)" -eq 0 ]; then
  RUN_GID=$(id -g "$RUN_AS" 2>/dev/null) || die "user $RUN_AS does not exist in the image"
  # The attestation device is root-only by default; the service needs it.
  if [ -e /dev/nsm ]; then
    chown "$RUN_AS" /dev/nsm || die 'cannot hand /dev/nsm to the service user'
  fi
  HOME=$(getent passwd "$RUN_AS" | cut -d: -f6)
  export HOME
fi

keep_running socat TCP-LISTEN:1080,bind=127.0.0.1,fork,reuseaddr VSOCK-CONNECT:3:1080 &
keep_running socat VSOCK-LISTEN:8765,fork,reuseaddr TCP:127.0.0.1:8765 &

# Give the outbound bridge a moment to listen so the first relay connection does not race it.
tries=0
while [ "$tries" -lt 50 ] && ! ss -Hltn 'sport = :1080' | grep -q .; do
  tries=$((tries + 1))
  sleep 0.1
done

log "starting nec01 serve as $RUN_AS (t=$NEC01_T)"
if [ "$(id -u)" -eq 0 ]; then
  exec setpriv --reuid="$RUN_AS" --regid="$RUN_GID" --init-groups \
    --inh-caps=-all --bounding-set=-all --no-new-privs -- \
    node dist/src/cli.js serve --proxy http://127.0.0.1:1080 --parent-signatures --health-port 8765 --t "$NEC01_T"
fi
exec node dist/src/cli.js serve --proxy http://127.0.0.1:1080 --parent-signatures --health-port 8765 --t "$NEC01_T"

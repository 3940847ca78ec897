#!/usr/bin/env bash
# Starts build/enclave.eif on this parent instance (docs/deploy.md). Resources and the CID
# come from the environment so systemd units and people use the same script.
#
# usage: enclave/run.sh [--debug] [--eif FILE]
#   NEC01_CPUS (default 2), NEC01_MEMORY_MIB (default 2048), NEC01_CID (default 16),
#   NEC01_ENCLAVE_NAME (default nec01)
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: enclave/run.sh [--debug] [--eif FILE]

  --eif FILE   enclave image (default build/enclave.eif of this checkout)
  --debug      debug mode: console access, and PCR0/1/2 all zeros in every attestation,
               so every NEC-01 client rejects the service. For troubleshooting only.

environment: NEC01_CPUS (2), NEC01_MEMORY_MIB (2048), NEC01_CID (16), NEC01_ENCLAVE_NAME (nec01)
USAGE
}

die() {
  printf 'enclave/run.sh: %s\n' "$*" >&2
  exit 1
}

usage_error() {
  printf 'enclave/run.sh: %s (try --help)\n' "$*" >&2
  exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
eif="$root/build/enclave.eif"
debug=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --debug) debug=1; shift ;;
    --eif) [ "$#" -ge 2 ] || usage_error '--eif needs a file'; eif=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

cpus=${NEC01_CPUS:-2}
memory=${NEC01_MEMORY_MIB:-2048}
cid=${NEC01_CID:-16}
name=${NEC01_ENCLAVE_NAME:-nec01}
# Digits only, no leading zero, at most 10 digits: what passes is a number the shell's
# arithmetic and nitro-cli read the same way (07 would be octal to one and decimal to the other).
for pair in "NEC01_CPUS=$cpus" "NEC01_MEMORY_MIB=$memory" "NEC01_CID=$cid"; do
  case "${pair#*=}" in
    ''|0*|*[!0-9]*|???????????*) usage_error "${pair%%=*} must be a positive integer (digits, no leading zero), got '${pair#*=}'" ;;
  esac
done
# CIDs 0-3 are reserved (hypervisor, local, host/parent) and a CID is 32 bits; the parent's
# health bridge (nec01-vsock-health.service) dials NEC01_CID, so keep the two in step.
if [ "$cid" -lt 4 ] || [ "$cid" -gt 4294967294 ]; then usage_error "NEC01_CID must be 4..4294967294, got $cid"; fi
case "$name" in
  ''|*[!A-Za-z0-9._-]*) usage_error "NEC01_ENCLAVE_NAME may hold letters, digits, '.', '_' and '-' only" ;;
esac

command -v nitro-cli >/dev/null 2>&1 || die 'nitro-cli is not installed (Amazon Linux 2023: sudo dnf install -y aws-nitro-enclaves-cli; see docs/deploy.md)'
[ -r "$eif" ] || die "no enclave image at $eif (build it with enclave/build.sh)"

args=(run-enclave --enclave-name "$name" --eif-path "$eif" --cpu-count "$cpus" --memory "$memory" --enclave-cid "$cid")
if [ "$debug" -eq 1 ]; then
  cat >&2 <<'WARNING'
################################################################################
##  WARNING: DEBUG MODE                                                       ##
##  A debug-mode enclave's attestations carry PCR0, PCR1 and PCR2 as all      ##
##  zeros. EVERY NEC-01 client REJECTS them (check "debug"), whatever PCRs    ##
##  it pins: a debug enclave's console is open to the parent and its          ##
##  measurements prove nothing. Never run a published service like this.      ##
################################################################################
WARNING
  args+=(--debug-mode)
fi

exec nitro-cli "${args[@]}"

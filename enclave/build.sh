#!/usr/bin/env bash
# Builds the enclave image reproducibly and turns it into build/enclave.eif, writing the
# PCRs clients pin to build/pcrs.json (nitro-cli's own JSON output, as `nec01 verify
# --pcrs` reads it). Same commit + same nitro-cli version → same PCR0/1/2 on any machine
# (docs/reproducible-build.md).
#
# usage: enclave/build.sh [--sign-key FILE --sign-cert FILE] [--allow-dirty] [--tag NAME]
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: enclave/build.sh [--sign-key FILE --sign-cert FILE] [--allow-dirty] [--tag NAME]

  --sign-key FILE       sign the EIF with this P-384 private key (PEM); adds PCR8
                        (env NEC01_SIGN_KEY; alias --signing-key)
  --sign-cert FILE      the matching builder certificate (PEM), from `nec01 builder-cert`;
                        both or neither (env NEC01_SIGN_CERT; alias --signing-cert)
  --allow-dirty         build from a work tree with uncommitted changes (the PCRs then
                        match no commit: never publish them)
  --tag NAME            docker image name (default nec01-enclave:<commit>)

Writes build/enclave.eif, build/pcrs.json and build/build-info.txt.
USAGE
}

die() {
  printf 'enclave/build.sh: %s\n' "$*" >&2
  exit 1
}

usage_error() {
  printf 'enclave/build.sh: %s (try --help)\n' "$*" >&2
  exit 2
}

signing_key=${NEC01_SIGN_KEY:-}
signing_cert=${NEC01_SIGN_CERT:-}
allow_dirty=0
tag=''
while [ "$#" -gt 0 ]; do
  case "$1" in
    --sign-key|--signing-key) [ "$#" -ge 2 ] || usage_error "$1 needs a file"; signing_key=$2; shift 2 ;;
    --sign-cert|--signing-cert) [ "$#" -ge 2 ] || usage_error "$1 needs a file"; signing_cert=$2; shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    --tag) [ "$#" -ge 2 ] || usage_error '--tag needs a name'; tag=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

if [ -n "$signing_key" ] && [ -z "$signing_cert" ]; then usage_error '--sign-key needs --sign-cert'; fi
if [ -n "$signing_cert" ] && [ -z "$signing_key" ]; then usage_error '--sign-cert needs --sign-key'; fi
for f in "$signing_key" "$signing_cert"; do
  if [ -n "$f" ] && [ ! -r "$f" ]; then die "cannot read $f"; fi
done

command -v git >/dev/null 2>&1 || die 'git is required (the commit time is the build timestamp)'
command -v docker >/dev/null 2>&1 || die 'docker is not installed (Amazon Linux 2023: sudo dnf install -y docker && sudo systemctl enable --now docker)'
docker buildx version >/dev/null 2>&1 || die 'docker buildx is missing (install the docker-buildx plugin; BuildKit >= 0.13 is needed for rewrite-timestamp)'
command -v nitro-cli >/dev/null 2>&1 || die 'nitro-cli is not installed (Amazon Linux 2023: sudo dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel; see docs/deploy.md)'

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel) || die 'not inside the nec01 git checkout'
cd "$root"

commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  if [ "$allow_dirty" -eq 1 ]; then
    printf 'enclave/build.sh: WARNING: uncommitted changes: these PCRs match no commit; do not publish them\n' >&2
  else
    die 'the work tree has uncommitted changes: commit them (PCRs must match a commit) or pass --allow-dirty'
  fi
fi
# The build context (enclave/Dockerfile.dockerignore, kept equal to this list by
# test/enclave-files.test.ts) takes whole folders: a file git does not track there, even an
# ignored one (a stray src/*.ts is compiled in), changes PCR2 although the commit is clean.
context=(package.json package-lock.json tsconfig.json relays.json operator.json nec01 src enclave/start.sh)
stray=$(git ls-files --others -- "${context[@]}")
if [ -n "$stray" ]; then
  listed=$(printf '%s\n' "$stray" | head -n 5 | tr '\n' ' ')
  if [ "$allow_dirty" -eq 1 ]; then
    printf 'enclave/build.sh: WARNING: untracked files in the build context (%s): these PCRs match no commit; do not publish them\n' "${listed% }" >&2
  else
    die "untracked files in the build context would enter the image: ${listed% } (remove them, or pass --allow-dirty)"
  fi
fi

SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
image=${tag:-nec01-enclave:${commit:0:12}}
mkdir -p build

printf 'enclave/build.sh: building %s from %s (SOURCE_DATE_EPOCH=%s)\n' "$image" "$commit" "$SOURCE_DATE_EPOCH" >&2
# linux/amd64: the NSM addon ships x86_64 builds only, and the instance types in
# docs/deploy.md are x86_64. No provenance/SBOM attestations: they embed build times.
docker buildx build \
  --platform linux/amd64 \
  --file enclave/Dockerfile \
  --build-arg SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
  --provenance=false \
  --sbom=false \
  --output "type=docker,name=${image},rewrite-timestamp=true" \
  .

sign_args=()
if [ -n "$signing_key" ]; then
  sign_args=(--private-key "$signing_key" --signing-certificate "$signing_cert")
fi

raw=build/nitro-cli-build.out
nitro-cli build-enclave --docker-uri "$image" --output-file build/enclave.eif "${sign_args[@]}" >"$raw" \
  || die "nitro-cli build-enclave failed (its output: $raw; logs: /var/log/nitro_enclaves/)"
# nitro-cli prints progress lines before the JSON: keep the JSON object only.
sed -n '/^{/,$p' "$raw" >build/pcrs.json
grep -q '"PCR0"' build/pcrs.json || die "no PCR0 in the nitro-cli output ($raw)"

{
  printf 'commit %s\n' "$commit"
  printf 'source_date_epoch %s\n' "$SOURCE_DATE_EPOCH"
  printf 'image %s\n' "$image"
  printf 'image_id %s\n' "$(docker image inspect --format '{{.Id}}' "$image")"
  printf 'nitro_cli %s\n' "$(nitro-cli --version 2>&1 | head -n 1)"
  printf 'docker %s\n' "$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)"
  printf 'buildx %s\n' "$(docker buildx version 2>&1 | head -n 1)"
  if [ -n "$signing_cert" ]; then printf 'signed_with %s\n' "$signing_cert"; fi
} >build/build-info.txt

printf '\nPCRs of build/enclave.eif (commit %s):\n' "${commit:0:12}"
grep -o '"PCR[0-9]*": *"[0-9a-f]*"' build/pcrs.json | sed 's/"//g; s/: */ /; s/^/  /'
cat <<NEXT

Publish build/pcrs.json with the commit. Clients pin these values:
  nec01 verify --pcrs build/pcrs.json EVENT.json
  nec01 fetch <npub> --pcrs build/pcrs.json
Anyone can rebuild commit ${commit:0:12} with enclave/build.sh and compare.
Run it with enclave/run.sh (never --debug for a published service).
NEXT
if [ -n "$signing_cert" ]; then
  cat <<SIGNED

Signed with $signing_cert (PCR8). Delete the key now (NEC-03), then sign the build and
the release as Nostr events (docs/necs.md):
  nec01 sign build --cert $signing_cert --t prod --repo <URL>
  nec01 sign release build/pcrs.json --t prod --repo <URL> --publish
SIGNED
fi

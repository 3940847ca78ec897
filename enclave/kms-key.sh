#!/usr/bin/env bash
# The KMS key that seals the enclave's identity, and its key policy (docs/identity.md).
# The policy is built by src/kms/policy.ts itself (from dist/: npm run build first), so the
# script, the KMS stand-in and the tests all mean the same document:
#   enclave statement: the parent's role may Decrypt and GenerateDataKey only with an
#     attestation whose PCR0 (kms:RecipientAttestation:ImageSha384), and any PCR given with
#     --pcr (kms:RecipientAttestation:PCR<n>), match this build
#   admin statement: everything except Decrypt, CreateGrant, Encrypt, GenerateDataKey* and
#     ReEncrypt*, so the admin can neither read a sealed key nor forge one; with --lock it
#     is left out for good
#
# usage: enclave/kms-key.sh create --admin ARN [--region REGION]
#        enclave/kms-key.sh policy --key ARN --role ARN (--admin ARN | --lock --i-understand-this-is-irreversible)
#                                  [--pcrs FILE] [--pcr N]... [--print]
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: enclave/kms-key.sh create --admin ARN [--region REGION]
       enclave/kms-key.sh policy --key ARN --role ARN (--admin ARN | --lock --i-understand-this-is-irreversible)
                                 [--pcrs FILE] [--pcr N]... [--print]

create   makes a symmetric KMS key whose policy has only the admin statement (nobody can
         seal or unseal with it yet) and prints its ARN: put it in operator.json as
         {"kms": {"key": "ARN"}}, commit, and build the image (enclave/build.sh).
policy   sets the key policy for the image just built: the enclave statement names its
         PCR0 (and every --pcr N: 1, 2 or 8) from build/pcrs.json.

  --admin ARN    the key administrator (IAM role or user ARN); must be who runs this script
  --role ARN     the parent instance's IAM role: its credentials are what the enclave signs with
  --region R     the key's region (default: the aws CLI's)
  --key ARN      the key, as create printed it
  --pcrs FILE    nitro-cli's measurements (default build/pcrs.json of this checkout)
  --pcr N        also require PCR N (1: kernel, 2: application, 8: signing certificate)
  --lock         no admin statement: NOBODY can ever change this policy again, not even
                 the account root, and the key can move to a new build only through the
                 upgrade hand-over (issue 16). Needs --i-understand-this-is-irreversible.
  --print        print the policy and call nothing
USAGE
}

die() {
  printf 'enclave/kms-key.sh: %s\n' "$*" >&2
  exit 1
}

usage_error() {
  printf 'enclave/kms-key.sh: %s (try --help)\n' "$*" >&2
  exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
policy_js="$root/dist/src/kms/policy.js"

# The policy document: policy.ts's enclaveKeyPolicy, or its admin statement alone ("bootstrap").
build_policy() {
  local mode=$1 role=$2 admin=$3 pcrs_file=$4 extra=$5
  [ -r "$policy_js" ] || die "no $policy_js: run npm ci && npm run build first"
  # shellcheck disable=SC2016 # the single-quoted program is JavaScript: its ${} are template literals
  node --input-type=module -e '
    import { readFileSync } from "node:fs"
    import { pathToFileURL } from "node:url"
    const [policyJs, mode, role, admin, pcrsFile, extra] = process.argv.slice(1)
    const { enclaveKeyPolicy } = await import(pathToFileURL(policyJs).href)
    const fail = (m) => { process.stderr.write(`enclave/kms-key.sh: ${m}\n`); process.exit(1) }
    let pcrs = { 0: "0".repeat(96) }
    if (mode !== "bootstrap") {
      let m
      try { m = JSON.parse(readFileSync(pcrsFile, "utf8")).Measurements } catch { fail(`${pcrsFile}: not nitro-cli build-enclave output`) }
      pcrs = {}
      for (const i of ["0", ...extra.split(",").filter((x) => x !== "")]) {
        const v = m?.[`PCR${i}`]
        if (typeof v !== "string") fail(`${pcrsFile}: no PCR${i}`)
        pcrs[i] = v.toLowerCase()
      }
    }
    try {
      const policy = enclaveKeyPolicy({ enclaveRoleArn: role, pcrs, ...(admin === "" ? {} : { adminArn: admin }) })
      if (mode === "bootstrap") policy.Statement = policy.Statement.filter((s) => s.Sid === "AdminWithoutDecrypt")
      process.stdout.write(JSON.stringify(policy, null, 2) + "\n")
    } catch (e) { fail(e.message) }
  ' "$policy_js" "$mode" "$role" "$admin" "$pcrs_file" "$extra"
}

check_arn() {
  case "$2" in
    arn:aws*:iam::[0-9]*:*) ;;
    *) usage_error "$1 must be an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME), got '$2'" ;;
  esac
}

[ "$#" -ge 1 ] || { usage >&2; exit 2; }
command=$1
shift
case "$command" in
  -h|--help) usage; exit 0 ;;
  create|policy) ;;
  *) usage_error "unknown command: $command" ;;
esac

admin='' role='' key='' region='' pcrs_file="$root/build/pcrs.json" extra='' lock=0 understood=0 print=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --admin) [ "$#" -ge 2 ] || usage_error '--admin needs an ARN'; admin=$2; shift 2 ;;
    --role) [ "$#" -ge 2 ] || usage_error '--role needs an ARN'; role=$2; shift 2 ;;
    --key) [ "$#" -ge 2 ] || usage_error '--key needs an ARN'; key=$2; shift 2 ;;
    --region) [ "$#" -ge 2 ] || usage_error '--region needs a region'; region=$2; shift 2 ;;
    --pcrs) [ "$#" -ge 2 ] || usage_error '--pcrs needs a file'; pcrs_file=$2; shift 2 ;;
    --pcr)
      [ "$#" -ge 2 ] || usage_error '--pcr needs 1, 2 or 8'
      case "$2" in 1|2|8) extra="$extra,$2" ;; *) usage_error "--pcr: 1, 2 or 8, got '$2'" ;; esac
      shift 2 ;;
    --lock) lock=1; shift ;;
    --i-understand-this-is-irreversible) understood=1; shift ;;
    --print) print=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

region_args=()
[ -z "$region" ] || region_args=(--region "$region")

if [ "$command" = create ]; then
  check_arn --admin "$admin"
  policy=$(build_policy bootstrap "$admin" "$admin" '' '')
  if [ "$print" -eq 1 ]; then printf '%s\n' "$policy"; exit 0; fi
  command -v aws >/dev/null 2>&1 || die 'the aws CLI is not installed'
  arn=$(aws kms create-key "${region_args[@]}" --description 'nec01 enclave identity (sealed Nostr key)' \
    --key-usage ENCRYPT_DECRYPT --key-spec SYMMETRIC_DEFAULT --policy "$policy" --query KeyMetadata.Arn --output text)
  printf '%s\n' "$arn"
  printf 'next: put {"kms": {"key": "%s"}} in operator.json, commit, enclave/build.sh, then enclave/kms-key.sh policy --key %s --role ROLE_ARN --admin %s\n' "$arn" "$arn" "$admin" >&2
  exit 0
fi

case "$key" in
  arn:aws*:kms:*:key/*) ;;
  *) usage_error "--key must be the key ARN that create printed, got '$key'" ;;
esac
check_arn --role "$role"
if [ "$lock" -eq 1 ]; then
  [ -z "$admin" ] || usage_error '--lock leaves no admin: not with --admin'
  [ "$understood" -eq 1 ] || usage_error '--lock is irreversible: add --i-understand-this-is-irreversible'
else
  check_arn --admin "$admin"
fi
policy=$(build_policy enclave "$role" "$admin" "$pcrs_file" "$extra")
if [ "$print" -eq 1 ]; then printf '%s\n' "$policy"; exit 0; fi
command -v aws >/dev/null 2>&1 || die 'the aws CLI is not installed'

put_args=(kms put-key-policy "${region_args[@]}" --key-id "$key" --policy-name default --policy "$policy")
if [ "$lock" -eq 1 ]; then
  cat >&2 <<'WARNING'
################################################################################
##  WARNING: LOCKING THE KEY POLICY FOREVER                                   ##
##  The new policy has no admin statement. KMS refuses such a policy unless   ##
##  --bypass-policy-lockout-safety-check is given, because afterwards NOBODY  ##
##  (not this admin, not the account root, not AWS support) can change it,    ##
##  and the key becomes unmanageable. Only an enclave with exactly these      ##
##  PCRs can ever seal or unseal with it. A new build (new PCR0) can take     ##
##  the identity over only through the upgrade hand-over (issue 16).          ##
################################################################################
WARNING
  put_args+=(--bypass-policy-lockout-safety-check)
fi
aws "${put_args[@]}"
locked=''
if [ "$lock" -eq 1 ]; then locked=', LOCKED'; fi
printf 'key policy set on %s (PCR0%s%s)\n' "$key" "${extra//,/, PCR}" "$locked"

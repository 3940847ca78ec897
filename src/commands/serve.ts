// nec01 serve: the enclave service. Without --dev it needs /dev/nsm; with --dev it runs on
// the NSM simulator, and --embedded-relay gives it a real relay on loopback.
// The steps: the flags (src/cli/serve-flags.ts), the configuration and the ports
// (serve-config.ts), then the run (serve-run.ts). This module loads only the first: the
// others are imported once the flags are right, so a usage error costs no more than node's
// start, not the service's, the NSM's and the relays' modules.
import { holdLogLines, type HeldLog } from '../log.js'
import { CliError, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { checkServeFlags, SERVE_OPTIONS, type ServeFlags } from '../cli/serve-flags.js'

export const USAGE = `usage: nec01 serve [--dev] [--relays FILE | --relay URL...] [--health-port N] [--state-dir DIR]
                   [--t prod|dev] [--proxy URL] [--embedded-relay] [options]

Runs the attested Nostr service. Without --dev it uses the Nitro Secure Module (/dev/nsm).

  --dev                  use the NSM simulator (not an enclave: t is always dev)
  --relays FILE          relay list (default: relays.json beside the package)
  --relay URL            a relay to read and write; repeatable; replaces --relays
  --embedded-relay       start a real relay on ws://127.0.0.1:7777 and use it, beside any --relay (dev)
  --embedded-port N      port of the embedded relay (default 7777)
  --health-port N        health endpoint on 127.0.0.1 (default 8765; 0 picks a free port)
  --state-dir DIR        simulator state (default ~/.nec01 or $NEC01_STATE_DIR)
  --t prod|dev           the t tag of the root event (default prod; dev with --dev)
  --proxy URL            send every relay connection through this HTTP CONNECT proxy
                         (default $NEC01_PROXY; in an enclave: http://127.0.0.1:1080)
  --margin SEC           refresh the attestation this long before it expires (default 3600)
  --name TEXT            profile name (default nec01)
  --about TEXT           profile about text
  --picture URL          profile picture
  --rate N               requests per second per sender (default 1)
  --burst N              burst per sender (default 10)
  --budget N             requests per second the service answers, all senders together
                         (default 100; strangers get what known senders leave)
  --attest-budget N      of which attest (an NSM attestation each) per second (default 5)
  --lookup-budget N      NIP-17 inbox-relay lookups per second (default 10)
  --pow N                NIP-13 bits of proof of work required of strangers (default 0:
                         none; at most 32); announced in the kind 13793 announcement, where
                         nec01 dm and attest read it and mine their requests to it
  --max-request-bytes N  drop larger requests (default 65536)
  --leaf-lifetime SEC    dev only: simulated leaf certificate lifetime (default 10800)
  --operator NPUB        dev only: the operator's key instead of operator.json (the image's
                         file, measured into PCR2; docs/operator.md)
  --repo URL             the repository the announcement names (r) and releases must name
                         (default: package.json's repository; none: no r, releases refused)
  --parent-signatures    fetch the builder, launcher and release signatures from the parent
                         (nec01 parent --signatures) through --proxy, at start and at every
                         new attestation (docs/necs.md)
  --signatures FILE      dev only: the signatures from a file (a JSON array of events)
  --sim-instance-id ID   dev only: the simulated EC2 instance id (PCR4), e.g. i-0123456789abcdef0
  --sim-builder-cert F   dev only: the simulated image is signed with this certificate (PCR8)
  --upgrade-policy FILE  dev only: the upgrade policy instead of upgrade.json (who may move
                         the key to a new build, and the cooldown; docs/upgrades.md)
  --upgrade-from NPUB    this is the new build: ask that holder for its key (its release
                         signatures from --parent-signatures or --signatures); once received,
                         the key is sealed and serve exits so the next start unseals it (outside
                         dev a sealed identity is required; in dev without one, the key is
                         served from memory for this run only)

The identity across restarts (docs/identity.md): sealed by AWS KMS to the enclave's PCRs.
  --kms-key ARN|ID       seal the key under this KMS key (default: "kms" in operator.json;
                         none: a new npub every start)
  --kms-region REGION    the key's region (default: from the ARN)
  --kms-endpoint URL     dev and tests only: a KMS stand-in instead of AWS
  --parent URL           who keeps the sealed key: the parent's service (default in an
                         enclave http://127.0.0.1:1081 through --proxy; with --dev a file in
                         the state directory)
  --embedded-kms         dev: run the KMS stand-in here, its key kept in the state directory
                         (npm start): the same npub on every start
  --new-identity REASON  give up the sealed identity and start a new one; the reason is
                         logged, the old sealed key kept aside

Logs go to standard error, one JSON object per line (NEC01_LOG_LEVEL=debug|info|warn|error);
with --dev, info lines wait until the banner is out (npm start 2>service.log keeps them apart).`

export async function main(args: string[]): Promise<number> {
  // In dev the banner is what a person reads first: info lines wait for it. On an error they
  // come out before its one line, so it stays the last one.
  const held = holdLogLines()
  try {
    return await serve(args, held)
  } finally {
    held.release()
  }
}

/** The flags, checked; null: --help was printed. Throws CliError. */
function parseServeFlags(args: string[]): ServeFlags | null {
  const parsed = parseCommandArgs('serve', USAGE, args, SERVE_OPTIONS)
  if (parsed === null) return null
  if (parsed.positionals.length > 0) throw new CliError(`unexpected argument '${parsed.positionals[0] ?? ''}' (see nec01 serve --help)`)
  return checkServeFlags(parsed.values)
}

async function serve(args: string[], held: HeldLog): Promise<number> {
  const flags = parseServeFlags(args)
  if (flags === null) return EXIT_OK
  if (!flags.dev) held.release() // an enclave's log is read by machines: nothing waits
  const { checkServeConfig } = await import('../cli/serve-config.js')
  const config = await checkServeConfig(flags)
  const { runServe } = await import('../cli/serve-run.js')
  return runServe(flags, config, held)
}

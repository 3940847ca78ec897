// Trust in people (NEC-03..05): the options checked and normalized once, before any memo
// lookup (a malformed value is an `input` verdict and two different values never share a
// memo key), and the `pcrs` checks they add.
import { isEventShape, npub, pubkeyHex } from './nostr.js'
import { checkReleaseSignature } from './release.js'
import { VerifyError, check } from './result.js'
import type { SignatureContext } from './signature.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { AttestationInfo, Check, NecTrustOptions, NostrEvent, Signers } from './types.js'

/** Release events accepted in one call: more is a caller's mistake, not a use. */
export const MAX_RELEASES = 256
/** A repository URL is short; a long `repo` is not one. */
const MAX_REPO_LENGTH = 2048

export interface NormalizedTrust {
  /** hex pubkeys; null when the option was absent */
  releaseSigners: Set<string> | null
  releaseThreshold: number
  releases: NostrEvent[]
  builder: string | null
  launcher: string | null
  repo: string | null
}

function pubkeyOption(value: unknown, name: string): string | null {
  if (value === undefined) return null
  const hex = pubkeyHex(value)
  if (hex === null) throw new VerifyError('input', `options.${name}: expected an npub or 64 hex characters`)
  return hex
}

function signersOption(value: unknown): Set<string> | null {
  if (value === undefined) return null
  if (!Array.isArray(value)) throw new VerifyError('input', 'options.releaseSigners: expected an array of npubs or hex pubkeys')
  // an empty list is a mistake, not "trust nobody": it could never be met
  if (value.length === 0) throw new VerifyError('input', 'options.releaseSigners: empty; name at least one signer')
  return new Set(value.map((v, i) => pubkeyOption(v, `releaseSigners[${i}]`)!))
}

function releasesOption(value: unknown): NostrEvent[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new VerifyError('input', 'options.releases: expected an array of Nostr events')
  if (value.length > MAX_RELEASES) throw new VerifyError('input', `options.releases: more than ${MAX_RELEASES} events`)
  value.forEach((e, i) => {
    if (!isEventShape(e)) throw new VerifyError('input', `options.releases[${i}]: not a Nostr event`)
  })
  return value as NostrEvent[]
}

/** Throws VerifyError('input') describing the first bad option. */
export function normalizeTrust(o: NecTrustOptions): NormalizedTrust {
  const releaseSigners = signersOption(o.releaseSigners)
  let releaseThreshold = 1
  if (o.releaseThreshold !== undefined) {
    if (releaseSigners === null) throw new VerifyError('input', 'options.releaseThreshold: given without releaseSigners')
    if (!Number.isSafeInteger(o.releaseThreshold) || o.releaseThreshold < 1 || o.releaseThreshold > releaseSigners.size) {
      throw new VerifyError('input', `options.releaseThreshold: expected an integer 1..${releaseSigners.size} (the distinct releaseSigners)`)
    }
    releaseThreshold = o.releaseThreshold
  }
  if (o.repo !== undefined && (typeof o.repo !== 'string' || o.repo.length === 0 || o.repo.length > MAX_REPO_LENGTH)) {
    throw new VerifyError('input', `options.repo: expected a repository URL of 1..${MAX_REPO_LENGTH} characters`)
  }
  return {
    releaseSigners,
    releaseThreshold,
    releases: releasesOption(o.releases),
    builder: pubkeyOption(o.builder, 'builder'),
    launcher: pubkeyOption(o.launcher, 'launcher'),
    repo: o.repo ?? null,
  }
}

/** True when the options name the code (PCR0/1/2 or PCR8) through people rather than hashes. */
export function trustNamesCode(trust: NormalizedTrust): boolean {
  return trust.releaseSigners !== null || trust.builder !== null
}

/** Everything in the trust options that changes a verdict, for the tee_root memo. */
export function trustKey(trust: NormalizedTrust): unknown[] {
  return [
    trust.releaseSigners === null ? null : [...trust.releaseSigners].sort(),
    trust.releaseThreshold,
    // the whole event, not its id: on a memo hit nothing is re-verified
    trust.releases.map((e) => [e.id, e.pubkey, e.created_at, e.kind, e.tags, e.content, e.sig]),
    trust.builder,
    trust.launcher,
    trust.repo,
  ]
}

/** The signatures that verified for one service: signer hex pubkeys, and the release events. */
export interface Vouchers {
  builder: string | null
  launcher: string | null
  /** release events that verified against the service (embedded ones) */
  releases: NostrEvent[]
}

function shortNpubs(pubkeys: Iterable<string>): string {
  return [...pubkeys].map((p) => npub(p)).join(', ')
}

/** Counts distinct trusted signers of matching releases; records the `pcrs` check. */
function releaseCheck(checks: Check[], signers: Set<string>, threshold: number, matched: Map<string, NostrEvent>, rejected: string[]): void {
  const trusted = [...matched.keys()].filter((p) => signers.has(p))
  const ok = trusted.length >= threshold
  const counted = `PCR0/1/2 released by ${trusted.length} of ${signers.size} trusted signer${signers.size === 1 ? '' : 's'}${trusted.length > 0 ? ` (${shortNpubs(trusted)})` : ''}, threshold ${threshold}`
  check(checks, 'pcrs', ok, ok || rejected.length === 0 ? counted : `${counted}; ${rejected.join('; ')}`)
}

function personCheck(checks: Check[], role: 'built' | 'launched', pcr: string, wanted: string, found: string | null): void {
  const ok = found === wanted
  const detail = ok
    ? `${pcr}: ${role} by the trusted ${npub(wanted)}`
    : `${pcr}: not ${role} by the trusted ${npub(wanted)} (${found === null ? `no valid ${role === 'built' ? 'build' : 'launcher'} signature` : `${role} by ${npub(found)}`})`
  check(checks, 'pcrs', ok, detail)
}

/**
 * The `pcrs` checks trust in people adds, one per option given. Release signatures the
 * caller passed are verified here against `ctx`; those that fail only do not count (they
 * come from relays, not from the service). Returns every signer whose release verified.
 */
export function trustChecks(checks: Check[], trust: NormalizedTrust, ctx: SignatureContext, vouchers: Vouchers): string[] {
  const matched = new Map<string, NostrEvent>()
  const rejected: string[] = []
  for (const e of vouchers.releases) matched.set(e.pubkey, e)
  for (const e of trust.releases) {
    const v = checkReleaseSignature(e, ctx)
    if (v.ok) matched.set(e.pubkey, e)
    else if (trust.releaseSigners?.has(e.pubkey) === true) rejected.push(`${v.signer} ${v.detail}`)
  }
  if (trust.releaseSigners !== null) releaseCheck(checks, trust.releaseSigners, trust.releaseThreshold, matched, rejected)
  if (trust.builder !== null) personCheck(checks, 'built', 'PCR8', trust.builder, vouchers.builder)
  if (trust.launcher !== null) personCheck(checks, 'launched', 'PCR4', trust.launcher, vouchers.launcher)
  return [...matched.keys()]
}

/** The attested PCRs as bytes, from the result's hex map. */
export function attestedPcrs(attestation: AttestationInfo): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  for (const [index, hex] of Object.entries(attestation.pcrs)) out.set(Number(index), hexToBytes(hex))
  return out
}

/** True when any trust option was given: the result then names who vouched. */
function trustGiven(trust: NormalizedTrust): boolean {
  return trust.releaseSigners !== null || trust.builder !== null || trust.launcher !== null || trust.releases.length > 0
}

/**
 * Runs trustChecks against an attestation and returns who vouched, or undefined when
 * nobody was asked about and no signature was offered (a plain NEC-01 verification).
 */
export function applyTrust(checks: Check[], trust: NormalizedTrust, ctx: SignatureContext, vouchers: Vouchers): Signers | undefined {
  const offered = vouchers.builder !== null || vouchers.launcher !== null || vouchers.releases.length > 0
  if (!offered && !trustGiven(trust)) return undefined
  const releasers = trustChecks(checks, trust, ctx, vouchers)
  return {
    builder: vouchers.builder === null ? null : npub(vouchers.builder),
    launcher: vouchers.launcher === null ? null : npub(vouchers.launcher),
    releasers: releasers.map((p) => npub(p)),
  }
}

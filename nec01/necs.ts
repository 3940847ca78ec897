// Entry points for the whole NEC family: a NEC-03/04/05 signature on its own, and any
// event the family defines, told apart by its kind.
import { verifyAnnouncement } from './announcement.js'
import { checkBuildSignature } from './build.js'
import { finish, normalizeAll, TEE_ROOT_TAG, verifyRootEvent, verifyTeeRoot } from './event.js'
import { ANNOUNCEMENT_KIND, BUILD_KIND, LAUNCHER_KIND, RELEASE_KIND, ROOT_KIND, successorKind } from './kinds.js'
import { checkLaunchSignature } from './launch.js'
import { isEventShape, npub, verifySignature } from './nostr.js'
import { normalizeOptions } from './options.js'
import { checkReleaseSignature } from './release.js'
import { check, failure } from './result.js'
import type { SignatureContext, SignatureVerdict } from './signature.js'
import { toUnixSeconds } from './time.js'
import type { Check, CheckId, NecVerifyOptions, NostrEvent, Signers, TeeRootOptions, VerifyResult } from './types.js'

const SIGNATURE_KINDS: Record<number, { id: CheckId; pcrs: number[] }> = {
  [BUILD_KIND]: { id: 'build', pcrs: [8] },
  [LAUNCHER_KIND]: { id: 'instance', pcrs: [4] },
  [RELEASE_KIND]: { id: 'release', pcrs: [0, 1, 2] },
}

/** True for the kinds of NEC-03/04/05 signatures, current or legacy. */
export function isSignatureKind(kind: number): boolean {
  return SIGNATURE_KINDS[successorKind(kind)] !== undefined
}

async function signatureVerdict(event: NostrEvent, ctx: SignatureContext): Promise<SignatureVerdict> {
  const kind = successorKind(event.kind)
  if (kind === BUILD_KIND) return checkBuildSignature(event, ctx)
  if (kind === LAUNCHER_KIND) return checkLaunchSignature(event, ctx)
  return checkReleaseSignature(event, ctx)
}

function signersOf(kind: number, pubkey: string): Signers {
  const who = npub(pubkey)
  return { builder: kind === BUILD_KIND ? who : null, launcher: kind === LAUNCHER_KIND ? who : null, releasers: kind === RELEASE_KIND ? [who] : [] }
}

/**
 * Verifies a builder, launcher or release signature on its own, against the caller's
 * expectations: `expectedPcrs` (PCR8, PCR4 or PCR0/1/2; `anyPcrs` only reports them),
 * `repo` and `expect` for r and t. Never throws.
 */
export async function verifyNecSignature(event: unknown, options?: NecVerifyOptions | null): Promise<VerifyResult> {
  const checks: Check[] = []
  if (!check(checks, 'input', isEventShape(event), isEventShape(event) ? 'a Nostr event object' : 'not a Nostr event object')) return finish(checks, { attestation: null })
  const ev = event as NostrEvent
  const normalized = normalizeAll(options)
  if (typeof normalized === 'string') return failure('input', normalized)
  const opts = normalizeOptions(normalized.options)
  const spec = SIGNATURE_KINDS[successorKind(ev.kind)]
  const signed = verifySignature(ev)
  check(checks, 'event', signed, signed ? 'event id and Schnorr signature valid' : 'event id or Schnorr signature invalid')
  if (!check(checks, 'kind', spec !== undefined, `kind ${ev.kind}${spec === undefined ? `, expected ${BUILD_KIND}, ${LAUNCHER_KIND} or ${RELEASE_KIND}` : ''}`)) return finish(checks, { attestation: null })
  const expect = normalized.options.expect ?? 'prod'
  const ctx: SignatureContext = {
    nowSec: toUnixSeconds(normalized.options.now),
    pcrs: opts.expectedPcrs,
    pcrSource: 'expected',
    r: normalized.trust.repo,
    t: expect === 'any' ? null : expect,
  }
  const v = await signatureVerdict(ev, ctx)
  check(checks, spec!.id, v.ok, v.detail)
  if (opts.expectedPcrs === null) {
    const which = spec!.pcrs.map((i) => `PCR${i}`).join('/')
    check(checks, 'pcrs', opts.anyPcrs, opts.anyPcrs ? `any ${which} accepted (anyPcrs)` : `no expected ${which} given: nothing compared the signed value`)
  }
  return finish(checks, { attestation: null, signers: v.ok ? signersOf(successorKind(ev.kind), ev.pubkey) : undefined })
}

/**
 * Any event of the family, by kind: a root event (23793), an announcement (13793, 63793),
 * a builder, launcher or release signature, or a carrier of a tee_root tag. Never throws.
 */
export async function verifyNecEvent(event: unknown, options?: TeeRootOptions | null): Promise<VerifyResult> {
  if (typeof event !== 'object' || event === null) return failure('input', 'not a Nostr event object')
  const e = event as Partial<NostrEvent>
  const kind = typeof e.kind === 'number' ? e.kind : NaN
  if (kind === ROOT_KIND) return verifyRootEvent(event, options)
  if (successorKind(kind) === ANNOUNCEMENT_KIND) return verifyAnnouncement(event, options)
  if (isSignatureKind(kind)) return verifyNecSignature(event, options)
  if (Array.isArray(e.tags) && e.tags.some((t) => Array.isArray(t) && t[0] === TEE_ROOT_TAG)) return verifyTeeRoot(event, options)
  return failure('input', `kind ${String(e.kind)} is no NEC event and carries no tee_root tag`)
}

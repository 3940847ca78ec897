// The holder's checks of a build that asks for its key: attested by the same trusted root,
// not debug, fresh (bound to a nonce the holder chose, and the attested key is the one
// asking), another build than any that held the key, allowed by t, and released by at
// least threshold of the policy's maintainers for exactly its PCR0/1/2, r and t.
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { tOf, verifyRootEvent } from '../../nec01/event.js'
import { ROOT_KIND } from '../../nec01/kinds.js'
import { isEventShape, npub } from '../../nec01/nostr.js'
import { checkReleaseSignature } from '../../nec01/release.js'
import type { RpcErrorCode } from '../../nec01/rpc.js'
import type { SignatureContext } from '../../nec01/signature.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { CodePcrs } from '../../nec01/upgrade.js'
import { CommandError } from '../service/commands.js'
import type { UpgradePolicy } from './policy.js'

/** Stable refusal codes; each leads the message ("UPGRADE_…: why"). */
export type UpgradeRefusal =
  | 'NO_POLICY'
  | 'STATE_UNKNOWN'
  | 'HANDED_OVER'
  | 'BAD_PARAMS'
  | 'NIP04_REFUSED'
  | 'NONCE_UNKNOWN'
  | 'NOT_ATTESTED_SENDER'
  | 'ATTESTATION_INVALID'
  | 'DEBUG'
  | 'OTHER_ROOT'
  | 'SAME_BUILD'
  | 'PROD_TO_DEV'
  | 'RELEASES_TOO_FEW'
  | 'BUSY'
  | 'NOT_PENDING'
  | 'TARGET_MISMATCH'
  | 'TOO_EARLY'
  | 'LAPSED'
  | 'NOT_ALLOWED'
  | 'STALE'
  | 'REPLAYED'
  | 'ANNOUNCE_FAILED'

export function refuse(status: RpcErrorCode, code: UpgradeRefusal, message: string): CommandError {
  return new CommandError(status, `UPGRADE_${code}: ${message}`)
}

/** Releases accepted in one request; the policy names at most 32 maintainers. */
const MAX_RELEASES = 32

export interface TargetContext {
  policy: UpgradePolicy
  trustRoot?: Uint8Array
  /** the authenticated sender of the request */
  sender: string
  /** the nonce the holder issued to that sender */
  nonce: Uint8Array
  /** the holder itself: its PCR0, t, and every PCR0 that held the key before it */
  own: { pcr0: string; t: 'prod' | 'dev'; earlier: string[] }
}

export interface Target {
  root: NostrEvent
  pcrs: CodePcrs
  t: 'prod' | 'dev'
}

/** The target's root event, verified against the nonce; its PCRs and t. */
export async function checkTargetRoot(value: unknown, ctx: TargetContext): Promise<Target> {
  if (!isEventShape(value) || value.kind !== ROOT_KIND) throw refuse('INVALID_REQUEST', 'BAD_PARAMS', `root must be a kind:${ROOT_KIND} event`)
  if (value.pubkey !== ctx.sender) throw refuse('UNAUTHORIZED', 'NOT_ATTESTED_SENDER', `the root attests ${npub(value.pubkey)}, not the sender ${npub(ctx.sender)}`)
  const result = await verifyRootEvent(value, { ...(ctx.trustRoot === undefined ? {} : { root: ctx.trustRoot }), anyPcrs: true, expect: 'any', nonce: ctx.nonce })
  if (!result.valid || result.attestation === null) {
    const failed = result.checks.find((c) => !c.ok)
    const code: UpgradeRefusal = result.reason === 'debug' ? 'DEBUG' : result.reason === 'root' ? 'OTHER_ROOT' : result.reason === 'nonce' ? 'NONCE_UNKNOWN' : 'ATTESTATION_INVALID'
    throw refuse('RESTRICTED', code, `the target's attestation: ${failed?.detail ?? 'invalid'}`)
  }
  const p = result.attestation.pcrs
  const pcrs: CodePcrs = { 0: p['0'] ?? '', 1: p['1'] ?? '', 2: p['2'] ?? '' }
  if (pcrs[0] === ctx.own.pcr0 || ctx.own.earlier.includes(pcrs[0])) throw refuse('RESTRICTED', 'SAME_BUILD', `PCR0 ${pcrs[0].slice(0, 12)}… has held this key already`)
  const t = tOf(value) ?? 'dev'
  if (ctx.own.t === 'prod' && t === 'dev' && !ctx.policy.devMayReceiveProd) throw refuse('RESTRICTED', 'PROD_TO_DEV', 'a t=dev build may not receive this t=prod key (upgrade.json: dev_may_receive_prod)')
  return { root: value, pcrs, t }
}

/** The releases that hold for the target, by distinct maintainers; at least the threshold. */
export function checkTargetReleases(value: unknown, target: Target, policy: UpgradePolicy): NostrEvent[] {
  if (!Array.isArray(value) || value.length > MAX_RELEASES) throw refuse('INVALID_REQUEST', 'BAD_PARAMS', `releases must be an array of at most ${MAX_RELEASES} events`)
  const pcrs = new Map<number, Uint8Array>([0, 1, 2].map((i) => [i, hexToBytes(target.pcrs[i as 0 | 1 | 2])]))
  const ctx: SignatureContext = { nowSec: Date.now() / 1000, pcrs, pcrSource: 'attested', r: policy.repo, t: target.t }
  const byMaintainer = new Map<string, NostrEvent>()
  const rejected: string[] = []
  for (const e of value) {
    if (!isEventShape(e) || !policy.maintainers.includes(e.pubkey)) continue
    const v = checkReleaseSignature(e, ctx)
    if (v.ok) byMaintainer.set(e.pubkey, e)
    else rejected.push(`${v.signer}: ${v.detail}`)
  }
  if (byMaintainer.size < policy.threshold) {
    const why = rejected.length === 0 ? '' : ` (${rejected.join('; ').slice(0, 400)})`
    throw refuse('RESTRICTED', 'RELEASES_TOO_FEW', `${byMaintainer.size} of the ${policy.maintainers.length} maintainers released PCR0/1/2 ${bytesToHex(pcrs.get(0)!).slice(0, 12)}… for ${policy.repo} t=${target.t}; ${policy.threshold} needed${why}`)
  }
  return [...byMaintainer.values()]
}

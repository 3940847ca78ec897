// What every NEC signature event (builder, launcher, release) must satisfy before its
// content means anything, and the context it is judged in.
import { bytesToHex } from '@noble/hashes/utils.js'
import { successorKind } from './kinds.js'
import { expirationOf, iso, npub, tagValues, verifySignature } from './nostr.js'
import type { NostrEvent } from './types.js'

export interface SignatureContext {
  /** validation time, unix seconds */
  nowSec: number
  /** PCRs the signature must match: the attested ones or the caller's; null = only report */
  pcrs: Map<number, Uint8Array> | null
  /** what `pcrs` are, for messages */
  pcrSource: 'attested' | 'expected'
  /** the announcement's (or the caller's) r and t; null = not compared */
  r: string | null
  t: string | null
}

/** The verdict on one signature event; `signer` is its npub. */
export interface SignatureVerdict {
  ok: boolean
  detail: string
  signer: string
}

export function verdict(event: NostrEvent, ok: boolean, detail: string): SignatureVerdict {
  const signer = npub(event.pubkey)
  return { ok, detail: `${ok ? '' : 'rejected: '}${detail}`, signer }
}

/** Kind (current or legacy), id and signature, NIP-40 expiration; a reason, or null when all hold. */
export function signedProblem(event: NostrEvent, kind: number, nowSec: number): string | null {
  if (successorKind(event.kind) !== kind) return `kind ${event.kind}, expected ${kind}`
  if (!verifySignature(event)) return 'event id or Schnorr signature invalid'
  const expiration = expirationOf(event)
  if (Number.isNaN(expiration)) return 'malformed expiration tag'
  if (expiration !== null && expiration <= nowSec) return `expired at ${iso(expiration)}`
  return null
}

/**
 * The signature's r or t against the context's. `required`: the signature must carry the
 * tag when the context has a value (a release); otherwise an absent tag is not compared
 * (early builder signatures have no r).
 */
export function tagProblem(event: NostrEvent, name: 'r' | 't', expected: string | null, required: boolean, fallback?: string): string | null {
  if (expected === null) return null
  const values = tagValues(event, name)
  if (values.length > 1) return `${values.length} ${name} tags`
  const value = values[0] ?? fallback
  if (value === undefined) return required ? `no ${name} tag (expected ${expected})` : null
  return value === expected ? null : `${name} is ${value}, expected ${expected}`
}

/** A PCR of the context, or the reason it cannot be compared. */
export function contextPcr(ctx: SignatureContext, index: number): Uint8Array | string | null {
  if (ctx.pcrs === null) return null
  return ctx.pcrs.get(index) ?? (ctx.pcrSource === 'attested' ? `the attestation has no PCR${index}` : `no expected PCR${index} given`)
}

export function shortHex(bytes: Uint8Array | string): string {
  const hex = typeof bytes === 'string' ? bytes : bytesToHex(bytes)
  return hex.length > 16 ? `${hex.slice(0, 12)}…` : hex
}

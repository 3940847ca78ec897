// NEC-01 events: the kind:23793 root event that wraps an attestation, and the carriers
// that hold it in a ["tee_root", <JSON>] tag. A feed of notes from one service repeats
// the same tee_root string, so a verified root is memoized and a carrier then costs one
// Schnorr verification plus a lookup.
import * as kinds from 'nostr-tools/kinds'
import { getEventHash, validateEvent, type EventTemplate } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils.js'
import { base64ToBytes, bytesToBase64 } from './encoding.js'
import { MAX_DOCUMENT_BYTES, verifyAttestation } from './attestation.js'
import { checkDelegation, TEE_CERT_TAG } from './delegation.js'
import { ROOT_KIND } from './kinds.js'
import { createLru } from './lru.js'
import { expirationOf, isEventShape, iso, tagValues, verifySignature } from './nostr.js'
import { normalizeOptions } from './options.js'
import { ATTESTATION_FAILED, VerifyError, check, failure, finish as finishChecks, notChecked } from './result.js'
import { toUnixSeconds } from './time.js'
import type { SignatureContext } from './signature.js'
import { applyTrust, attestedPcrs, normalizeTrust, trustKey, trustNamesCode, type NormalizedTrust } from './trust.js'
import type { AttestationInfo, Check, DelegationLink, Expect, NecVerifyOptions, NostrEvent, Signers, TeeRootOptions, UnsignedEvent, VerifyOptions, VerifyResult } from './types.js'

export { ROOT_KIND } from './kinds.js'
/** The tag that carries a JSON-stringified root event. */
export const TEE_ROOT_TAG = 'tee_root'
/** Upper bound for a tee_root value: a real attestation is ~4.5 KiB, base64 ~6 KiB. */
const MAX_TEE_ROOT_LENGTH = 64 * 1024
/** Memo bound: distinct (tee_root, options) pairs remembered. */
const MEMO_LIMIT = 1024
/** Longest base64 content that can hold a document the verifier accepts; longer is not decoded. */
export const MAX_CONTENT_LENGTH = Math.ceil(MAX_DOCUMENT_BYTES / 3) * 4

export interface RootEventParams {
  /** raw COSE_Sign1 attestation document */
  attestation: Uint8Array
  t: 'prod' | 'dev'
  /** unix seconds; must be the leaf certificate's notAfter or earlier */
  expiration: number
  created_at?: number
}

/** The unsigned kind:23793 template; the enclave signs it with the key the document binds. */
export function buildRootEvent(params: RootEventParams): EventTemplate {
  if (params.t !== 'prod' && params.t !== 'dev') throw new TypeError(`t must be prod or dev, got ${String(params.t)}`)
  if (!Number.isSafeInteger(params.expiration) || params.expiration <= 0) throw new TypeError('expiration must be unix seconds')
  return {
    kind: ROOT_KIND,
    created_at: params.created_at ?? Math.floor(Date.now() / 1000),
    content: bytesToBase64(params.attestation),
    tags: [['-'], ['t', params.t], ['expiration', String(params.expiration)]],
  }
}

/**
 * Adds ["tee_root", JSON(root)] to a template (the root event, or its JSON), replacing any earlier one. A carrier is
 * meant to be republished and quoted, so the NIP-70 ["-"] tag of the root never rides on it.
 */
export function withTeeRoot<T extends { tags: string[][] }>(template: T, rootEvent: NostrEvent | string): T {
  const tags = template.tags.filter((t) => t[0] !== TEE_ROOT_TAG && !(t[0] === '-' && t.length === 1))
  // A service passes the JSON it made once per root, not a re-serialisation per reply.
  tags.push([TEE_ROOT_TAG, typeof rootEvent === 'string' ? rootEvent : JSON.stringify(rootEvent)])
  return { ...template, tags }
}

interface ResultBase {
  attestation: AttestationInfo | null
  event?: NostrEvent
  signers?: Signers
  delegation?: DelegationLink[]
}

/** The result of `checks`, with the optional parts that are present (absent ones stay absent, not undefined). */
export function finish(checks: Check[], base: ResultBase): VerifyResult {
  const result = finishChecks(checks, base.attestation)
  if (base.event !== undefined) result.event = base.event
  if (base.signers !== undefined) result.signers = base.signers
  if (base.delegation !== undefined) result.delegation = base.delegation
  return result
}

function safeNow(options: VerifyOptions): number | null {
  try {
    return toUnixSeconds(options.now)
  } catch {
    return null
  }
}

/** Records the `t` check of an event that holds an attestation (root, legacy announcement). */
export function checkT(checks: Check[], event: NostrEvent, expect: Expect): void {
  const values = tagValues(event, 't')
  const t = values[0]
  if (values.length !== 1 || (t !== 'prod' && t !== 'dev')) {
    check(checks, 't', false, `expected exactly one t tag of prod or dev, found ${values.length === 0 ? 'none' : JSON.stringify(values)}`)
  } else if (expect !== 'any' && t !== expect) {
    check(checks, 't', false, `t is ${t}, expected ${expect}`)
  } else {
    check(checks, 't', true, expect === 'any' ? `t is ${t} (any accepted)` : `t is ${t}`)
  }
}

/** The single t tag when it is prod or dev, else null (the `t` check reports why). */
export function tOf(event: NostrEvent): 'prod' | 'dev' | null {
  const values = tagValues(event, 't')
  return values.length === 1 && (values[0] === 'prod' || values[0] === 'dev') ? values[0] : null
}

/**
 * Options and trust normalized up front, as verifyAttestation does: a malformed option (a
 * null publicKey, a root that is not a certificate, an empty releaseSigners) is an `input`
 * verdict, never an exception. Returns the reason when one is malformed.
 */
export function normalizeAll(options: NecVerifyOptions | null | undefined): { options: NecVerifyOptions; trust: NormalizedTrust } | string {
  try {
    normalizeOptions(options)
    const o = options ?? {}
    return { options: o, trust: normalizeTrust(o) }
  } catch (err) {
    return err instanceof VerifyError ? err.message : 'options: malformed'
  }
}

/** A verifier's input, ready: the event checked for shape, the options normalized. */
export interface VerifyInput {
  checks: Check[]
  ev: NostrEvent
  options: NecVerifyOptions
  trust: NormalizedTrust
}

/**
 * How verifyRootEvent and verifyAnnouncement begin: the `input` check of the event's shape,
 * then the options. `done` is the verdict when either is wrong.
 */
export function verifyInput(event: unknown, options: NecVerifyOptions | null | undefined): VerifyInput | { done: VerifyResult } {
  const checks: Check[] = []
  if (!check(checks, 'input', isEventShape(event), isEventShape(event) ? 'a Nostr event object' : 'not a Nostr event object (id, pubkey, created_at, kind, tags, content, sig)')) {
    return { done: finish(checks, { attestation: null }) }
  }
  const normalized = normalizeAll(options)
  if (typeof normalized === 'string') return { done: failure('input', normalized) }
  return { checks, ev: event as NostrEvent, ...normalized }
}

/**
 * The attestation checks of an event whose `content` is a base64 document bound to its
 * pubkey (a root event; a legacy announcement). With `codeByPeople` the document's own
 * `pcrs` check is left out unless PCRs were given: people decide it (trust.ts).
 * undefined when the content was not decoded (too long, not base64).
 */
export async function contentAttestation(checks: Check[], ev: NostrEvent, options: VerifyOptions, codeByPeople: boolean): Promise<AttestationInfo | null | undefined> {
  if (ev.content.length > MAX_CONTENT_LENGTH) {
    // not decoded: it could only yield a document verifyAttestation rejects for its size
    check(checks, 'input', false, `content is ${ev.content.length} characters; a document of at most ${MAX_DOCUMENT_BYTES} bytes is at most ${MAX_CONTENT_LENGTH} in base64`)
    return undefined
  }
  let doc: Uint8Array
  try {
    doc = base64ToBytes(ev.content)
  } catch {
    check(checks, 'cose', false, 'content is not base64')
    return undefined
  }
  if (options.publicKey !== undefined) {
    const expected = hexOf(options.publicKey)
    if (expected !== ev.pubkey) check(checks, 'pubkey', false, `event pubkey ${ev.pubkey} is not the expected ${expected}`)
  }
  const dropPcrs = codeByPeople && options.expectedPcrs === undefined
  // NEC-01: the document's public_key is the event's own pubkey (32-byte x-only).
  const att = await verifyAttestation(doc, { ...options, publicKey: ev.pubkey, ...(dropPcrs ? { anyPcrs: true } : {}) })
  for (const c of att.checks) if ((c.id !== 'input' || !c.ok) && !(dropPcrs && c.id === 'pcrs')) checks.push(c)
  return att.attestation
}

/**
 * The `expiration` check: one numeric tag, in the future, not after the leaf nor `limit`.
 * Without an attestation the tag is still read, but the leaf bound is not checked.
 */
export function checkExpiration(checks: Check[], ev: NostrEvent, now: number, attestation: AttestationInfo | null, limit?: { at: number; what: string }): void {
  const expiration = expirationOf(ev)
  if (expiration === null || Number.isNaN(expiration)) {
    check(checks, 'expiration', false, `expected exactly one numeric expiration tag, found ${JSON.stringify(tagValues(ev, 'expiration'))}`)
  } else if (expiration <= now) {
    check(checks, 'expiration', false, `expired at ${iso(expiration)} (now ${iso(now)})`)
  } else if (attestation === null) {
    notChecked(checks, 'expiration', `${ATTESTATION_FAILED}, so the leaf certificate's notAfter is unknown (expiration ${iso(expiration)})`)
  } else if (expiration > attestation.certificate.notAfter) {
    check(checks, 'expiration', false, `expiration ${iso(expiration)} is after the leaf certificate's notAfter ${iso(attestation.certificate.notAfter)}`)
  } else if (limit !== undefined && expiration > limit.at) {
    check(checks, 'expiration', false, `expiration ${iso(expiration)} is after ${limit.what} ${iso(limit.at)}`)
  } else {
    check(checks, 'expiration', true, `expires ${iso(expiration)}, not after the leaf certificate${limit === undefined ? '' : ` nor ${limit.what}`}`)
  }
}

/** The checks of a kind:23793 root event, without trust in people; returns the attestation. */
export async function rootChecks(checks: Check[], ev: NostrEvent, options: VerifyOptions, codeByPeople: boolean): Promise<AttestationInfo | null> {
  const now = toUnixSeconds(options.now)
  const signed = verifySignature(ev)
  check(checks, 'event', signed, signed ? 'event id and Schnorr signature valid' : 'event id or Schnorr signature invalid')
  check(checks, 'kind', ev.kind === ROOT_KIND, `kind ${ev.kind}${ev.kind === ROOT_KIND ? '' : `, expected ${ROOT_KIND}`}`)
  const isProtected = ev.tags.some((t) => t[0] === '-')
  check(checks, 'protected', isProtected, isProtected ? 'NIP-70 ["-"] tag present' : 'NIP-70 ["-"] tag missing')
  checkT(checks, ev, options.expect ?? 'prod')
  const attestation = await contentAttestation(checks, ev, options, codeByPeople)
  checkExpiration(checks, ev, now, attestation ?? null)
  return attestation ?? null
}

/** Trust in people compares attested PCRs: with no attestation, its `pcrs` check did not run. */
export function trustNotChecked(checks: Check[], trust: NormalizedTrust): void {
  if (trustNamesCode(trust) || trust.launcher !== null) notChecked(checks, 'pcrs', `${ATTESTATION_FAILED}, so there are no attested PCRs for the trusted signers to vouch for`)
}

/**
 * Full verification of a kind:23793 root event. With trust options (NecTrustOptions),
 * release signatures passed in `releases` can name the code instead of `expectedPcrs`;
 * `builder` and `launcher` cannot be met by a bare root (only an announcement carries
 * their signatures). Never throws.
 */
export async function verifyRootEvent(event: unknown, options?: NecVerifyOptions | null): Promise<VerifyResult> {
  const input = verifyInput(event, options)
  if ('done' in input) return input.done
  const { checks, ev, trust } = input
  const attestation = await rootChecks(checks, ev, input.options, trustNamesCode(trust))
  const ctx: SignatureContext = { nowSec: toUnixSeconds(input.options.now), pcrs: attestation === null ? null : attestedPcrs(attestation), pcrSource: 'attested', r: trust.repo, t: tOf(ev) }
  const signers = attestation === null ? undefined : applyTrust(checks, trust, ctx, { builder: null, launcher: null, releases: [] })
  if (attestation === null) trustNotChecked(checks, trust)
  return finish(checks, { attestation, event: ev, signers })
}

interface MemoEntry {
  result: VerifyResult
  /** the verdict holds while every certificate is valid (bounds inclusive, as RFC 5280
   * says) and the root event has not expired (expiration exclusive) */
  from: number
  until: number
  expiration: number
}

const memo = createLru<string, MemoEntry>(MEMO_LIMIT)
let memoHits = 0

/** Clears the tee_root memo (benchmarks measure cold paths). */
export function clearTeeRootMemo(): void {
  memo.clear()
  memoHits = 0
}

export function teeRootMemoStats(): { size: number; hits: number } {
  return { size: memo.size, hits: memoHits }
}

function hexOf(value: Uint8Array | string): string {
  return typeof value === 'string' ? value.toLowerCase() : bytesToHex(value)
}

function hexOrNull(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : bytesToHex(bytes)
}

/**
 * Everything in the options that changes a verdict, except `now` (the memo keeps a window).
 * Built from the normalized options, so a malformed one throws VerifyError('input') before
 * any lookup, and absent differs from empty (publicKey '' is not "no publicKey").
 */
function optionsKey(o: TeeRootOptions, trust: NormalizedTrust): string {
  const n = normalizeOptions(o)
  const pcrs = n.expectedPcrs === null ? null : [...n.expectedPcrs].sort((a, b) => a[0] - b[0]).map(([i, v]) => `${i}=${bytesToHex(v)}`)
  return JSON.stringify([
    bytesToHex(n.root),
    pcrs,
    n.anyPcrs,
    o.expect ?? 'prod',
    hexOrNull(n.publicKey),
    hexOrNull(n.nonce),
    hexOrNull(n.userData),
    trustKey(trust),
  ])
}

async function verifyRootMemo(teeRoot: string, root: unknown, options: TeeRootOptions, now: number): Promise<VerifyResult> {
  let key: string
  let trust: NormalizedTrust
  try {
    trust = normalizeTrust(options)
    key = `${optionsKey(options, trust)}\n${teeRoot}`
  } catch (err) {
    return failure('input', err instanceof VerifyError ? err.message : 'options: malformed')
  }
  // peek: only a hit still inside its window counts as a use
  const hit = memo.peek(key)
  if (hit !== undefined && now >= hit.from && now <= hit.until && now < hit.expiration) {
    memoHits++
    memo.get(key)
    // every caller gets its own copy: one that edits its result must not change the next one's
    return structuredClone(hit.result)
  }
  const result = await verifyRootEvent(root, { ...options, now })
  // Only successes are memoized: a failure may be cheap to recompute and must never be
  // mistaken for a pass, and a success is bounded by its own validity window and by every
  // signature it relied on.
  if (result.valid && result.attestation !== null && result.event !== undefined) {
    const expirations = [result.event, ...trust.releases].map((e) => expirationOf(e)).filter((e): e is number => e !== null && Number.isFinite(e))
    const path = result.attestation.chain
    memo.set(key, { result: structuredClone(result), from: path.notBefore, until: path.notAfter, expiration: Math.min(...expirations) })
  }
  return result
}

/**
 * Verifies a carrier: any event with a ["tee_root", <JSON of a kind:23793 event>] tag.
 * For a NIP-17 rumor pass `sealSigner` (the verified seal's pubkey) instead of a signature.
 * Never throws.
 */
export async function verifyTeeRoot(carrier: unknown, options?: TeeRootOptions | null): Promise<VerifyResult> {
  const checks: Check[] = []
  if (options === undefined || options === null) options = {}
  if (typeof options !== 'object') return failure('input', 'options: expected an object')
  const now = safeNow(options)
  if (now === null) return failure('input', 'options.now must be a Date or unix seconds')
  const { sealSigner, ...rootOptions } = options
  if (!validateEvent(carrier)) {
    check(checks, 'input', false, 'not a Nostr event object')
    return finish(checks, { attestation: null })
  }
  const ev = carrier as UnsignedEvent & { id?: unknown; sig?: unknown; pubkey: string }
  if (sealSigner !== undefined && typeof sealSigner !== 'string') return failure('input', 'sealSigner must be a hex pubkey')
  if (sealSigner !== undefined) {
    const idOk = ev.id === undefined || ev.id === getEventHash(ev as NostrEvent)
    check(checks, 'carrier', ev.kind === kinds.PrivateDirectMessage, `rumor kind ${ev.kind}${ev.kind === kinds.PrivateDirectMessage ? '' : `, expected ${kinds.PrivateDirectMessage}`}`)
    check(checks, 'carrier', idOk, idOk ? 'rumor id matches its content' : 'rumor id does not match its content')
    check(
      checks,
      'carrier',
      ev.pubkey === sealSigner.toLowerCase(),
      ev.pubkey === sealSigner.toLowerCase() ? 'rumor pubkey equals the seal signer' : `rumor pubkey ${ev.pubkey} is not the seal signer ${sealSigner}`,
    )
  } else {
    const signed = typeof ev.id === 'string' && typeof ev.sig === 'string' && verifySignature(ev as NostrEvent)
    check(checks, 'carrier', signed, signed ? 'carrier id and Schnorr signature valid' : 'carrier id or Schnorr signature invalid')
  }

  const teeRoots = tagValues(ev, TEE_ROOT_TAG)
  const teeRoot = teeRoots[0]
  if (teeRoots.length !== 1 || teeRoot === undefined) {
    check(checks, 'carrier', false, `expected exactly one tee_root tag, found ${teeRoots.length}`)
    return finish(checks, { attestation: null })
  }
  if (teeRoot.length > MAX_TEE_ROOT_LENGTH) {
    check(checks, 'carrier', false, `tee_root is ${teeRoot.length} characters, more than ${MAX_TEE_ROOT_LENGTH}`)
    return finish(checks, { attestation: null })
  }
  let root: unknown
  try {
    root = JSON.parse(teeRoot)
  } catch {
    check(checks, 'carrier', false, 'tee_root is not JSON')
    return finish(checks, { attestation: null })
  }
  const rootResult = await verifyRootMemo(teeRoot, root, rootOptions, now)
  checks.push(...rootResult.checks)
  const rootEvent = rootResult.event
  let delegation: DelegationLink[] | undefined
  if (rootEvent !== undefined) {
    const certs = tagValues(ev, TEE_CERT_TAG)
    if (certs.length > 0) {
      delegation = checkDelegation(checks, certs, rootEvent.pubkey, ev, now) ?? undefined
    } else {
      const same = ev.pubkey === rootEvent.pubkey
      check(checks, 'carrier', same, same ? 'carrier pubkey equals the root pubkey' : `carrier pubkey ${ev.pubkey} is not the root pubkey ${rootEvent.pubkey} (and no tee_cert chain)`)
    }
    const expiration = Number(tagValues(rootEvent, 'expiration')[0])
    const notBefore = rootResult.attestation?.certificate.notBefore
    if (notBefore === undefined) {
      notChecked(checks, 'carrier', `${ATTESTATION_FAILED}, so its validity is unknown (created_at ${iso(ev.created_at)})`)
    } else if (Number.isFinite(expiration)) {
      const inside = ev.created_at >= notBefore && ev.created_at <= expiration
      check(
        checks,
        'carrier',
        inside,
        `created_at ${iso(ev.created_at)} ${inside ? 'inside' : 'outside'} the attestation's validity ${iso(notBefore)} .. ${iso(expiration)}`,
      )
    }
  }
  return finish(checks, { attestation: rootResult.attestation, event: rootEvent, signers: rootResult.signers, delegation })
}

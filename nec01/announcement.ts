// NEC-02 service announcements (kind 13793; legacy 63793, whose content is the attestation
// itself). An announcement says: this key, attested to run this image, serves this repo
// on these relays, and carries the NEC-03/04/05 signatures of who built the image, who
// launched the host and who released the code. Each part is checked on its own.
import type { EventTemplate } from 'nostr-tools/pure'
import { checkBuildSignature } from './build.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { checkExpiration, checkT, contentAttestation, finish, rootChecks, TEE_ROOT_TAG, tOf, trustNotChecked, verifyInput } from './event.js'
import { ANNOUNCEMENT_KIND, BUILD_KIND, LAUNCHER_KIND, LEGACY_ANNOUNCEMENT_KIND, RELEASE_KIND, successorKind } from './kinds.js'
import { checkLaunchSignature } from './launch.js'
import { expirationOf, npub, parseEmbedded, tagValues, verifySignature } from './nostr.js'
import { checkReleaseSignature } from './release.js'
import { ATTESTATION_FAILED, check, notChecked } from './result.js'
import type { SignatureContext, SignatureVerdict } from './signature.js'
import { toUnixSeconds } from './time.js'
import { applyTrust, attestedPcrs, trustNamesCode, type NormalizedTrust, type Vouchers } from './trust.js'
import type { AttestationInfo, Check, NecVerifyOptions, NostrEvent, VerifyResult } from './types.js'
import { lineageTags, type LineageEntry } from './upgrade.js'

/** The tags an announcement carries its signatures in, and the p-tag marker of each signer. */
const ROLES = [
  { tag: 'build', marker: 'builder', id: 'build' },
  { tag: 'instance', marker: 'launcher', id: 'instance' },
  { tag: 'release', marker: 'releaser', id: 'release' },
] as const
/** An announcement carries one build, one instance and a few releases; more is not read. */
const MAX_RELEASES_CARRIED = 16

interface Attested {
  attestation: AttestationInfo
  /** the event holding the document: the tee_root, or the legacy announcement itself */
  holder: NostrEvent
  /** the root's expiration, which the announcement's must not pass (13793 only) */
  rootExpiration: number | null
}

/** 13793: the tee_root by the same key. Records its checks; null when there is no attestation. */
async function teeRootAttestation(checks: Check[], ev: NostrEvent, options: NecVerifyOptions, codeByPeople: boolean): Promise<Attested | null> {
  const roots = tagValues(ev, TEE_ROOT_TAG)
  if (!check(checks, 'announcement', roots.length === 1, roots.length === 1 ? 'one tee_root tag' : `expected exactly one tee_root tag, found ${roots.length}`)) return null
  const root = parseEmbedded(roots[0]!, 'tee_root')
  if (typeof root === 'string') {
    check(checks, 'announcement', false, root)
    return null
  }
  const same = root.pubkey === ev.pubkey
  check(checks, 'announcement', same, same ? 'tee_root is by the announcement key' : `tee_root is by ${npub(root.pubkey)}, not the announcement key ${npub(ev.pubkey)}`)
  const attestation = await rootChecks(checks, root, options, codeByPeople)
  // NEC-02: t must not go against the root's; an announcement without t is dev
  const t = tagValues(ev, 't')
  const rootT = tOf(root)
  const agrees = t.length <= 1 && (t[0] ?? 'dev') === rootT
  check(checks, 't', agrees, agrees ? `announcement t ${rootT} agrees with the tee_root` : `announcement t ${JSON.stringify(t)} goes against the tee_root's ${rootT ?? 'missing t'}`)
  const rootExpiration = expirationOf(root)
  return attestation === null ? null : { attestation, holder: root, rootExpiration: rootExpiration !== null && Number.isFinite(rootExpiration) ? rootExpiration : null }
}

/** 63793: the content is the document, bound to the announcement's own key. */
async function contentAttested(checks: Check[], ev: NostrEvent, options: NecVerifyOptions, codeByPeople: boolean): Promise<Attested | null> {
  checkT(checks, ev, options.expect ?? 'prod')
  const attestation = await contentAttestation(checks, ev, options, codeByPeople)
  return attestation === null || attestation === undefined ? null : { attestation, holder: ev, rootExpiration: null }
}

/** x tags equal the attested PCRs, and PCR0/1/2 are announced (NEC-02). */
function checkX(checks: Check[], ev: NostrEvent, attestation: AttestationInfo): void {
  const problems: string[] = []
  const seen = new Set<string>()
  for (const tag of ev.tags) {
    if (tag[0] !== 'x' || tag[2] === undefined || !/^PCR[0-9]{1,2}$/.test(tag[2])) continue
    const index = tag[2].slice(3)
    if (seen.has(index)) problems.push(`${tag[2]} announced twice`)
    seen.add(index)
    const attested = attestation.pcrs[String(Number(index))]
    if (attested !== tag[1]) problems.push(`x ${tag[2]} ${(tag[1] ?? '').slice(0, 12)}… is not the attested ${attested === undefined ? 'value (none)' : `${attested.slice(0, 12)}…`}`)
  }
  for (const index of ['0', '1', '2']) if (!seen.has(index)) problems.push(`no x tag for PCR${index}`)
  check(checks, 'announcement', problems.length === 0, problems.length === 0 ? `x tags (${[...seen].map((i) => `PCR${i}`).join(', ')}) equal the attested PCRs` : problems.join('; '))
}

function checkRepo(checks: Check[], ev: NostrEvent, repo: string | null): string | null {
  const r = tagValues(ev, 'r')
  if (repo === null) return r.length === 1 ? r[0]! : null
  const ok = r.length === 1 && r[0] === repo
  check(checks, 'announcement', ok, ok ? `r is ${repo}` : `r is ${r.length === 0 ? 'missing' : JSON.stringify(r)}, expected ${repo}`)
  return repo
}

/** Verifies one carried signature with its own check id; its signer, and whether it holds. */
async function carried(checks: Check[], role: (typeof ROLES)[number], json: string, ctx: SignatureContext): Promise<{ event: NostrEvent; ok: boolean } | null> {
  const event = parseEmbedded(json, `${role.tag} tag`)
  if (typeof event === 'string') {
    check(checks, role.id, false, event)
    return null
  }
  let v: SignatureVerdict
  if (role.id === 'build') v = await checkBuildSignature(event, ctx)
  else if (role.id === 'instance') v = checkLaunchSignature(event, ctx)
  else v = checkReleaseSignature(event, ctx)
  check(checks, role.id, v.ok, v.detail)
  return { event, ok: v.ok }
}

/** Every carried signature, and the p markers that must name their signers. */
async function carriedSignatures(checks: Check[], ev: NostrEvent, ctx: SignatureContext): Promise<Vouchers> {
  const vouchers: Vouchers = { builder: null, launcher: null, releases: [] }
  for (const role of ROLES) {
    const values = tagValues(ev, role.tag)
    const limit = role.id === 'release' ? MAX_RELEASES_CARRIED : 1
    if (values.length > limit) {
      check(checks, role.id, false, `${values.length} ${role.tag} tags, at most ${limit}`)
      continue
    }
    // every carried signer, valid or not: an invalid signature already fails its own check
    const carriedBy = new Set<string>()
    for (const json of values) {
      const signature = await carried(checks, role, json, ctx)
      if (signature === null) continue
      carriedBy.add(signature.event.pubkey)
      if (!signature.ok) continue
      if (role.id === 'build') vouchers.builder = signature.event.pubkey
      else if (role.id === 'instance') vouchers.launcher = signature.event.pubkey
      else vouchers.releases.push(signature.event)
    }
    // a p marker is a claim a client may show: it must come with a signature by that key
    const claimed = ev.tags.filter((t) => t[0] === 'p' && t[2] === role.marker).map((t) => t[1] ?? '')
    const unbacked = claimed.filter((p) => !carriedBy.has(p))
    if (unbacked.length > 0) check(checks, 'announcement', false, `p tag marks ${unbacked.map((p) => npub(p)).join(', ')} as ${role.marker} without a ${role.tag} signature by them`)
  }
  return vouchers
}

/**
 * Verifies a NEC-02 announcement (kind 13793, or legacy 63793): its attestation, its own
 * claims, each carried signature (`build`, `instance`, `release`), and the trust options.
 * `signers` names who built, launched and released. Never throws.
 */
export async function verifyAnnouncement(event: unknown, options?: NecVerifyOptions | null): Promise<VerifyResult> {
  const input = verifyInput(event, options)
  if ('done' in input) return input.done
  const { checks, ev, trust } = input
  const opts = input.options
  const signed = verifySignature(ev)
  check(checks, 'event', signed, signed ? 'event id and Schnorr signature valid' : 'event id or Schnorr signature invalid')
  const kindOk = successorKind(ev.kind) === ANNOUNCEMENT_KIND
  check(checks, 'kind', kindOk, kindOk ? `kind ${ev.kind}${ev.kind === LEGACY_ANNOUNCEMENT_KIND ? ` (legacy, read as ${ANNOUNCEMENT_KIND})` : ''}` : `kind ${ev.kind}, expected ${ANNOUNCEMENT_KIND}`)
  if (!kindOk) return finish(checks, { attestation: null })
  const codeByPeople = trustNamesCode(trust)
  const attested = ev.kind === LEGACY_ANNOUNCEMENT_KIND ? await contentAttested(checks, ev, opts, codeByPeople) : await teeRootAttestation(checks, ev, opts, codeByPeople)
  if (attested === null) return notAttested(checks, ev, opts, trust)
  return finishAnnouncement(checks, ev, attested, opts, trust)
}

/** With no attestation, what depends on its PCRs and its leaf did not run: say which. */
function notAttested(checks: Check[], ev: NostrEvent, opts: NecVerifyOptions, trust: NormalizedTrust): VerifyResult {
  notChecked(checks, 'announcement', `${ATTESTATION_FAILED}, so the x tags have no attested PCRs to equal`)
  checkExpiration(checks, ev, toUnixSeconds(opts.now), null)
  for (const role of ROLES) if (tagValues(ev, role.tag).length > 0) notChecked(checks, role.id, `${ATTESTATION_FAILED}, so the ${role.tag} signature has no attested PCRs to sign`)
  trustNotChecked(checks, trust)
  return finish(checks, { attestation: null })
}

async function finishAnnouncement(checks: Check[], ev: NostrEvent, attested: Attested, opts: NecVerifyOptions, trust: NormalizedTrust): Promise<VerifyResult> {
  const { attestation, holder, rootExpiration } = attested
  const nowSec = toUnixSeconds(opts.now)
  checkX(checks, ev, attestation)
  const r = checkRepo(checks, ev, trust.repo)
  checkExpiration(checks, ev, nowSec, attestation, rootExpiration === null ? undefined : { at: rootExpiration, what: "the tee_root's expiration" })
  const ctx: SignatureContext = { nowSec, pcrs: attestedPcrs(attestation), pcrSource: 'attested', r, t: tOf(holder) }
  const vouchers = await carriedSignatures(checks, ev, ctx)
  const signers = applyTrust(checks, trust, ctx, vouchers) ?? { builder: null, launcher: null, releasers: [] }
  return finish(checks, { attestation, event: holder, signers })
}

export interface AnnouncementParams {
  /** the signed kind:23793 root event (its expiration becomes the announcement's) */
  root: NostrEvent
  /** PCRs of the attestation, index → hex: PCR0/1/2 always, 4 and 8 when not zero */
  pcrs: Record<string, string>
  /** service description */
  content: string
  r: string
  t: 'prod' | 'dev'
  name?: string
  v?: string
  relays?: string[]
  /** kinds the service answers (["k", …]) */
  kinds?: number[]
  /** signed NEC-03/04/05 signatures to carry */
  build?: NostrEvent
  instance?: NostrEvent
  releases?: NostrEvent[]
  /** the builds that held this key before, oldest first (docs/upgrades.md) */
  lineage?: LineageEntry[]
  created_at?: number
}

function xTags(pcrs: Record<string, string>): string[][] {
  const tags: string[][] = []
  for (const index of [0, 1, 2, 4, 8]) {
    const hex = pcrs[String(index)]
    if (hex === undefined) {
      if (index <= 2) throw new TypeError(`PCR${index} is required`)
      continue
    }
    if (index > 2 && /^0+$/.test(hex)) continue
    tags.push(['x', hex.toLowerCase(), `PCR${index}`])
  }
  return tags
}

function signatureTags(params: AnnouncementParams): string[][] {
  const tags: string[][] = []
  const carry = (tag: string, marker: string, kind: number, e: NostrEvent | undefined): void => {
    if (e === undefined) return
    if (successorKind(e.kind) !== kind) throw new TypeError(`${tag}: kind ${e.kind}, expected ${kind}`)
    tags.push([tag, JSON.stringify(e)], ['p', e.pubkey, marker])
  }
  carry('build', 'builder', BUILD_KIND, params.build)
  carry('instance', 'launcher', LAUNCHER_KIND, params.instance)
  for (const e of params.releases ?? []) carry('release', 'releaser', RELEASE_KIND, e)
  return tags
}

/** The unsigned kind:13793 template; the service signs it with the key its root attests. */
export function buildAnnouncement(params: AnnouncementParams): EventTemplate {
  const expiration = expirationOf(params.root)
  if (expiration === null || Number.isNaN(expiration)) throw new TypeError('root: no expiration tag')
  const tags: string[][] = [['r', params.r], ['t', params.t], [TEE_ROOT_TAG, JSON.stringify(params.root)], ['expiration', String(expiration)], ...xTags(params.pcrs)]
  if (params.name !== undefined) tags.push(['name', params.name])
  if (params.v !== undefined) tags.push(['v', params.v])
  for (const relay of params.relays ?? []) tags.push(['relay', relay])
  for (const kind of params.kinds ?? []) tags.push(['k', String(kind)])
  tags.push(...signatureTags(params), ...lineageTags(params.lineage ?? []))
  return { kind: ANNOUNCEMENT_KIND, created_at: params.created_at ?? Math.floor(Date.now() / 1000), content: params.content, tags }
}


// Upgrades that keep the npub (docs/upgrades.md): the holder of a key publishes, signed
// with that key and carrying its own tee_root, "upgrade pending" (63797), "upgrade
// cancelled" (63798) and "upgraded" (63799). Each names the build it leaves (`from`, its
// attested PCR0) and the build it goes to (x tags for PCR0/1/2, and that build's root
// event in `target_root`). A client checks each event as it was when made: validation time
// is the event's own created_at, since attestations expire within hours and a lineage lasts.
import type { EventTemplate } from 'nostr-tools/pure'
import { TEE_ROOT_TAG, tOf, verifyRootEvent, verifyTeeRoot } from './event.js'
import { UPGRADE_CANCELLED_KIND, UPGRADE_PENDING_KIND, UPGRADED_KIND, RELEASE_KIND } from './kinds.js'
import { iso, npub, parseEmbedded, pubkeyHex, tagValues } from './nostr.js'
import { PCR_HEX } from './pcr.js'
import { checkReleaseSignature } from './release.js'
import { check, failure, finish } from './result.js'
import type { SignatureContext } from './signature.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { Check, Expect, NostrEvent, VerifyResult } from './types.js'

export const TARGET_ROOT_TAG = 'target_root'
/** ["lineage", <PCR0>, <id of the upgraded event that moved the key out of it>], oldest first */
export const LINEAGE_TAG = 'lineage'
/** A pending upgrade no target completed lapses this long after its activation time. */
export const PENDING_LAPSE_SEC = 7 * 24 * 3600
/** Releases a pending event carries; more is not read. */
const MAX_RELEASES_CARRIED = 16

export type UpgradeType = 'pending' | 'cancelled' | 'upgraded'
export type CancellerRole = 'operator' | 'maintainer'

/** PCR0, PCR1 and PCR2 of a build, lowercase hex. */
export interface CodePcrs {
  0: string
  1: string
  2: string
}

/** One step of a lineage: the build that held the key, and the event that moved it on. */
export interface LineageEntry {
  pcr0: string
  upgraded: string
}

function codeTags(pcrs: CodePcrs): string[][] {
  return [0, 1, 2].map((i) => {
    const hex = pcrs[i as 0 | 1 | 2].toLowerCase()
    if (!PCR_HEX.test(hex)) throw new TypeError(`PCR${i} must be 96 hex characters`)
    return ['x', hex, `PCR${i}`]
  })
}

const short = (hex: string): string => `${hex.slice(0, 12)}…`

export interface PendingParams {
  /** the holder's attested PCR0 */
  from: string
  target: CodePcrs
  /** the target's kind:23793 root, bound to the holder's nonce */
  targetRoot: NostrEvent
  releases: NostrEvent[]
  r: string
  /** the target's t */
  t: 'prod' | 'dev'
  /** hex pubkeys of the policy's maintainers, and how many must have released the target */
  maintainers: string[]
  threshold: number
  cooldownSec: number
  createdAt: number
}

/** The unsigned "upgrade pending" template; the holder signs it with tee_root. */
export function buildUpgradePending(p: PendingParams): EventTemplate {
  const activation = p.createdAt + p.cooldownSec
  const tags: string[][] = [['from', p.from], ...codeTags(p.target), ['r', p.r], ['t', p.t], [TARGET_ROOT_TAG, JSON.stringify(p.targetRoot)]]
  for (const e of p.releases) tags.push(['release', JSON.stringify(e)], ['p', e.pubkey, 'releaser'])
  for (const m of p.maintainers) tags.push(['p', m, 'maintainer'])
  tags.push(['threshold', String(p.threshold)], ['cooldown', String(p.cooldownSec)], ['activation', String(activation)], ['lapses', String(activation + PENDING_LAPSE_SEC)])
  const content = `upgrade pending: PCR0 ${short(p.from)} → PCR0 ${short(p.target[0])}, not before ${iso(activation)}; the operator or a maintainer can cancel until then`
  return { kind: UPGRADE_PENDING_KIND, created_at: p.createdAt, content, tags }
}

/** Tags an event about `pending` repeats from it: from and the target's x tags. */
function pendingCopy(pending: NostrEvent): string[][] {
  return pending.tags.filter((t) => t[0] === 'from' || t[0] === 'x')
}

export function buildUpgradeCancelled(p: { pending: NostrEvent; canceller: string; role: CancellerRole; createdAt: number }): EventTemplate {
  const tags = [['e', p.pending.id], ['p', p.canceller, p.role], ...pendingCopy(p.pending)]
  return { kind: UPGRADE_CANCELLED_KIND, created_at: p.createdAt, content: `upgrade ${p.pending.id} cancelled by the ${p.role} ${npub(p.canceller)}`, tags }
}

export function buildUpgraded(p: { pending: NostrEvent; targetRoot: NostrEvent; createdAt: number }): EventTemplate {
  const x = tagValues(p.pending, 'x')
  const tags = [['e', p.pending.id], ...pendingCopy(p.pending), ...p.pending.tags.filter((t) => t[0] === 'r' || t[0] === 't'), [TARGET_ROOT_TAG, JSON.stringify(p.targetRoot)]]
  return { kind: UPGRADED_KIND, created_at: p.createdAt, content: `upgraded to PCR0 ${x[0] ?? '?'}`, tags }
}

export function lineageTags(lineage: LineageEntry[]): string[][] {
  return lineage.map((l) => [LINEAGE_TAG, l.pcr0, l.upgraded])
}

/** The lineage tags of an announcement; malformed ones are kept as they are, for the walk to refuse. */
export function lineageOf(event: NostrEvent): LineageEntry[] {
  return event.tags.filter((t) => t[0] === LINEAGE_TAG).map((t) => ({ pcr0: t[1] ?? '', upgraded: t[2] ?? '' }))
}

/** What a verified hand-over event says. */
export interface UpgradeRecord {
  type: UpgradeType
  id: string
  holder: string
  created_at: number
  /** the holder's attested PCRs (its tee_root) and t */
  source: CodePcrs
  sourceT: 'prod' | 'dev' | null
  target: CodePcrs
  /** the target's t (pending, upgraded) */
  t: 'prod' | 'dev' | null
  /** the pending event this one is about (cancelled, upgraded) */
  pending: string | null
  /** pending: when the key may move, the cooldown, and when the request lapses */
  activation: number | null
  cooldown: number | null
  lapses: number | null
  /** pending: the release signatures that verified for the target */
  releases: NostrEvent[]
  canceller: { pubkey: string; role: CancellerRole } | null
}

export interface UpgradeVerifyOptions {
  /** trusted root (DER or PEM) of both attestations; default: AWS's */
  root?: Uint8Array | string
  /** t of both builds; default prod ('any' to accept a prod key handed to a dev build) */
  expect?: Expect
  /** the client's own release signers and threshold, on top of the holder's */
  releaseSigners?: string[]
  releaseThreshold?: number
  /** expected r */
  repo?: string
}

export interface UpgradeResult extends VerifyResult {
  upgrade: UpgradeRecord | null
}

const TYPES: Record<number, UpgradeType> = { [UPGRADE_PENDING_KIND]: 'pending', [UPGRADE_CANCELLED_KIND]: 'cancelled', [UPGRADED_KIND]: 'upgraded' }

/** Exactly one x tag per code PCR; a reason otherwise. */
export function targetOf(event: NostrEvent): CodePcrs | string {
  const out: string[] = []
  for (const i of [0, 1, 2]) {
    const values = event.tags.filter((t) => t[0] === 'x' && t[2] === `PCR${i}`).map((t) => t[1] ?? '')
    if (values.length !== 1 || !PCR_HEX.test(values[0]!)) return `expected exactly one ["x", <96 hex>, "PCR${i}"] tag, found ${values.length}`
    out.push(values[0]!)
  }
  return { 0: out[0]!, 1: out[1]!, 2: out[2]! }
}

function one(event: NostrEvent, name: string): string | null {
  const v = tagValues(event, name)
  return v.length === 1 ? v[0]! : null
}

function unixTag(event: NostrEvent, name: string): number | null {
  const v = one(event, name)
  return v !== null && /^[0-9]{1,12}$/.test(v) ? Number(v) : null
}

function codePcrs(pcrs: Record<string, string>): CodePcrs | null {
  const [a, b, c] = [pcrs['0'], pcrs['1'], pcrs['2']]
  return a === undefined || b === undefined || c === undefined ? null : { 0: a, 1: b, 2: c }
}

/** The target's root: attested with exactly the x PCRs, its t the event's, valid when the event was made. */
async function targetChecks(checks: Check[], ev: NostrEvent, target: CodePcrs, options: UpgradeVerifyOptions): Promise<'prod' | 'dev' | null> {
  const root = parseEmbedded(one(ev, TARGET_ROOT_TAG) ?? '', TARGET_ROOT_TAG)
  if (typeof root === 'string') {
    check(checks, 'upgrade', false, `expected one target_root tag holding the target's root event: ${root}`)
    return null
  }
  const t = one(ev, 't')
  const expect = options.expect ?? 'prod'
  const tOk = (t === 'prod' || t === 'dev') && tOf(root) === t && (expect === 'any' || expect === t)
  check(checks, 't', tOk, tOk ? `target t ${t}` : `target t tag ${String(t)}, its root's ${String(tOf(root))}, expected ${expect}`)
  const result = await verifyRootEvent(root, {
    ...(options.root === undefined ? {} : { root: options.root }),
    expectedPcrs: { 0: target[0], 1: target[1], 2: target[2] },
    expect: 'any',
    now: ev.created_at,
  })
  for (const c of result.checks) checks.push({ ...c, detail: `target: ${c.detail}` })
  return tOk ? (t as 'prod' | 'dev') : null
}

function releaseContext(ev: NostrEvent, target: CodePcrs, t: string | null, repo: string | undefined): SignatureContext {
  const pcrs = new Map<number, Uint8Array>([0, 1, 2].map((i) => [i, hexToBytes(target[i as 0 | 1 | 2])]))
  return { nowSec: ev.created_at, pcrs, pcrSource: 'expected', r: repo ?? one(ev, 'r'), t }
}

/** Verified releases; the holder's own threshold (its p maintainer tags) and the client's. */
function releaseChecks(checks: Check[], ev: NostrEvent, target: CodePcrs, t: string | null, options: UpgradeVerifyOptions): NostrEvent[] {
  const carried = tagValues(ev, 'release')
  if (carried.length > MAX_RELEASES_CARRIED) {
    check(checks, 'release', false, `${carried.length} release tags, at most ${MAX_RELEASES_CARRIED}`)
    return []
  }
  const ctx = releaseContext(ev, target, t, options.repo)
  const valid = new Map<string, NostrEvent>()
  for (const json of carried) {
    const e = parseEmbedded(json, 'release tag')
    if (typeof e === 'string' || e.kind !== RELEASE_KIND) {
      check(checks, 'release', false, typeof e === 'string' ? e : `release tag of kind ${e.kind}`)
      continue
    }
    const v = checkReleaseSignature(e, ctx)
    check(checks, 'release', v.ok, v.detail)
    if (v.ok) valid.set(e.pubkey, e)
  }
  const maintainers = new Set(ev.tags.filter((x) => x[0] === 'p' && x[2] === 'maintainer').map((x) => x[1] ?? ''))
  const threshold = unixTag(ev, 'threshold')
  const held = [...valid.keys()].filter((p) => maintainers.has(p)).length
  const own = threshold !== null && threshold >= 1 && held >= threshold
  check(checks, 'release', own, `${held} of the holder's ${maintainers.size} maintainers released the target, threshold ${String(threshold)}`)
  if (options.releaseSigners !== undefined) {
    const signers = new Set(options.releaseSigners.map((s) => pubkeyHex(s) ?? s))
    const wanted = options.releaseThreshold ?? 1
    const trusted = [...valid.keys()].filter((p) => signers.has(p)).length
    check(checks, 'pcrs', trusted >= wanted, `target released by ${trusted} of your ${signers.size} trusted signers, threshold ${wanted}`)
  }
  return [...valid.values()]
}

/** activation = created_at + cooldown, and the lapse PENDING_LAPSE_SEC after it. */
function timeChecks(checks: Check[], ev: NostrEvent): { activation: number; cooldown: number; lapses: number } | null {
  const [activation, cooldown, lapses] = [unixTag(ev, 'activation'), unixTag(ev, 'cooldown'), unixTag(ev, 'lapses')]
  const ok = activation !== null && cooldown !== null && cooldown > 0 && lapses !== null && activation === ev.created_at + cooldown && lapses === activation + PENDING_LAPSE_SEC
  check(checks, 'upgrade', ok, ok ? `activation ${iso(activation)}: created_at + a cooldown of ${cooldown} s` : `activation ${String(activation)} is not created_at ${ev.created_at} + cooldown ${String(cooldown)} (lapses ${String(lapses)})`)
  return ok ? { activation: activation!, cooldown: cooldown!, lapses: lapses! } : null
}

function cancellerOf(checks: Check[], ev: NostrEvent): { pubkey: string; role: CancellerRole } | null {
  const marked = ev.tags.filter((t) => t[0] === 'p' && (t[2] === 'operator' || t[2] === 'maintainer'))
  const ok = marked.length === 1 && /^[0-9a-f]{64}$/.test(marked[0]![1] ?? '')
  check(checks, 'upgrade', ok, ok ? `cancelled by the ${marked[0]![2]} ${npub(marked[0]![1]!)}` : 'expected one ["p", <hex>, "operator"|"maintainer"] tag')
  return ok ? { pubkey: marked[0]![1]!, role: marked[0]![2] as CancellerRole } : null
}

/**
 * Verifies one hand-over event on its own, as of its created_at: signed by the holder with
 * a valid tee_root whose PCR0 is `from`; the x tags; for pending and upgraded, the target's
 * root attested with those PCRs; for pending, the releases and the cooldown arithmetic.
 * Whether it fits a lineage is lineage.ts's question. Never throws.
 */
export async function verifyUpgradeEvent(event: unknown, options: UpgradeVerifyOptions = {}): Promise<UpgradeResult> {
  const kind = typeof event === 'object' && event !== null ? (event as { kind?: unknown }).kind : undefined
  const type = typeof kind === 'number' ? TYPES[kind] : undefined
  if (type === undefined) return { ...failure('kind', `kind ${String(kind)} is not a hand-over event (${Object.keys(TYPES).join(', ')})`), upgrade: null }
  const ev = event as NostrEvent
  const carrier = await verifyTeeRoot(ev, {
    ...(options.root === undefined ? {} : { root: options.root }),
    anyPcrs: true,
    expect: options.expect ?? 'prod',
    now: ev.created_at,
  })
  const checks = [...carrier.checks]
  const source = carrier.attestation === null ? null : codePcrs(carrier.attestation.pcrs)
  const from = one(ev, 'from')
  if (source !== null) check(checks, 'upgrade', from === source[0], from === source[0] ? `from is the holder's attested PCR0 ${short(source[0])}` : `from ${String(from)} is not the holder's attested PCR0 ${short(source[0])}`)
  const target = targetOf(ev)
  if (typeof target === 'string') check(checks, 'upgrade', false, target)
  const base = finish([...checks], carrier.attestation)
  if (source === null || typeof target === 'string' || !base.valid) return { ...base, upgrade: null }
  const record: UpgradeRecord = {
    type,
    id: ev.id,
    holder: ev.pubkey,
    created_at: ev.created_at,
    source,
    sourceT: carrier.event === undefined ? null : tOf(carrier.event),
    target,
    t: null,
    pending: null,
    activation: null,
    cooldown: null,
    lapses: null,
    releases: [],
    canceller: null,
  }
  await typeChecks(checks, ev, record, options)
  const result = finish(checks, carrier.attestation)
  return { ...result, ...(carrier.event === undefined ? {} : { event: carrier.event }), upgrade: result.valid ? record : null }
}

async function typeChecks(checks: Check[], ev: NostrEvent, record: UpgradeRecord, options: UpgradeVerifyOptions): Promise<void> {
  if (record.type !== 'pending') {
    const e = tagValues(ev, 'e')
    const ok = e.length === 1 && /^[0-9a-f]{64}$/.test(e[0]!)
    check(checks, 'upgrade', ok, ok ? `about the pending upgrade ${e[0]}` : `expected one e tag naming the pending event, found ${e.length}`)
    record.pending = ok ? e[0]! : null
  }
  if (record.type === 'cancelled') {
    record.canceller = cancellerOf(checks, ev)
    return
  }
  record.t = await targetChecks(checks, ev, record.target, options)
  if (record.type === 'pending') {
    const times = timeChecks(checks, ev)
    if (times !== null) Object.assign(record, times)
    record.releases = releaseChecks(checks, ev, record.target, record.t, options)
  }
}

/**
 * An upgraded event against the pending one it names: same holder, same from and target,
 * made at or after the activation and before the lapse. Records its `upgrade` checks.
 */
export function checkCompletion(checks: Check[], upgraded: UpgradeRecord, pending: UpgradeRecord | null): boolean {
  if (pending === null) return check(checks, 'upgrade', false, `the pending event ${String(upgraded.pending)} is not found or does not verify`)
  const same = pending.holder === upgraded.holder && pending.source[0] === upgraded.source[0] && [0, 1, 2].every((i) => pending.target[i as 0 | 1 | 2] === upgraded.target[i as 0 | 1 | 2])
  if (!check(checks, 'upgrade', same, same ? 'same holder, from and target as its pending event' : 'holder, from or target differ from its pending event')) return false
  const inTime = pending.activation !== null && pending.lapses !== null && upgraded.created_at >= pending.activation && upgraded.created_at < pending.lapses
  return check(checks, 'upgrade', inTime, inTime ? `made ${iso(upgraded.created_at)}, after the activation ${iso(pending.activation!)}` : `made ${iso(upgraded.created_at)}, outside ${iso(pending.activation ?? 0)} .. ${iso(pending.lapses ?? 0)}`)
}

// The builds that have held one npub, checked from what is on the relays: its announcement
// (the build holding the key now, and the lineage it claims), its hand-over events, and
// release signatures. The walk goes back from the current build through "upgraded" events,
// each checked against its "pending" one (cooldown kept, not cancelled first); the chain it
// finds must be the announced lineage, and every build on it must be released.
import { verifyAnnouncement } from './announcement.js'
import { UPGRADE_CANCELLED_KIND, UPGRADE_PENDING_KIND, UPGRADED_KIND } from './kinds.js'
import { iso, npub, parseEmbedded, tagValues } from './nostr.js'
import { checkReleaseSignature } from './release.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { tOf } from './event.js'
import { pubkeyHex } from './nostr.js'
import type { SignatureContext } from './signature.js'
import type { Check, NostrEvent, VerifyResult } from './types.js'
import { checkCompletion, lineageOf, verifyUpgradeEvent, type CodePcrs, type UpgradeRecord, type UpgradeVerifyOptions } from './upgrade.js'

export interface HistoryInput {
  /** hex pubkey of the service */
  pubkey: string
  /** its latest kind:13793 announcement, or null when none was found */
  announcement: NostrEvent | null
  /** its hand-over events (63797, 63798, 63799); others are ignored */
  events: NostrEvent[]
  /** release signatures found on relays (63794), for any build */
  releases: NostrEvent[]
  /** now, unix seconds (pending upgrades lapse) */
  now?: number
}

export interface BuildRecord {
  pcrs: CodePcrs
  t: 'prod' | 'dev' | null
  /** the upgraded event that moved the key into this build, and when; null for the first */
  handover: string | null
  heldFrom: number | null
  /** when the key moved on; null for the current build */
  heldUntil: number | null
  current: boolean
  /** npubs of the release signatures that hold for this build */
  releasers: string[]
}

export interface PendingRecord {
  id: string
  /** the build that asked to hand its key on (PCR0) */
  from: string
  target: CodePcrs
  created_at: number
  activation: number
  lapses: number
  releasers: string[]
  state: 'pending' | 'cancelled' | 'completed' | 'lapsed'
  cancelledBy: { pubkey: string; role: string } | null
}

export interface History {
  pubkey: string
  /** true when every problem list is empty */
  valid: boolean
  announcement: VerifyResult | null
  /** oldest first; the last is the current build */
  builds: BuildRecord[]
  /** every upgrade ever asked for, newest first; state 'pending' only for the current build's */
  pending: PendingRecord[]
  /** hand-over events that do not verify, with why */
  invalid: Array<{ id: string; kind: number; reason: string }>
  problems: string[]
}

function codeOf(pcrs: Record<string, string>): CodePcrs | null {
  const [a, b, c] = [pcrs['0'], pcrs['1'], pcrs['2']]
  return a === undefined || b === undefined || c === undefined ? null : { 0: a, 1: b, 2: c }
}

const short = (hex: string): string => `${hex.slice(0, 12)}…`

interface Verified {
  records: UpgradeRecord[]
  invalid: History['invalid']
}

async function verifyAll(input: HistoryInput, options: UpgradeVerifyOptions): Promise<Verified> {
  const out: Verified = { records: [], invalid: [] }
  const kinds = new Set([UPGRADE_PENDING_KIND, UPGRADE_CANCELLED_KIND, UPGRADED_KIND])
  const seen = new Set<string>()
  for (const e of input.events) {
    if (!kinds.has(e.kind) || e.pubkey !== input.pubkey || seen.has(e.id)) continue
    seen.add(e.id)
    const r = await verifyUpgradeEvent(e, options)
    if (r.upgrade !== null) out.records.push(r.upgrade)
    else out.invalid.push({ id: e.id, kind: e.kind, reason: r.checks.find((c) => !c.ok)?.detail ?? 'invalid' })
  }
  return out
}

/** Upgraded events that hold against their pending event and came before any cancellation of it. */
function completions(records: UpgradeRecord[], problems: string[]): UpgradeRecord[] {
  const byId = new Map(records.map((r) => [r.id, r]))
  const out: UpgradeRecord[] = []
  for (const u of records.filter((r) => r.type === 'upgraded')) {
    const checks: Check[] = []
    const pending = u.pending === null ? null : (byId.get(u.pending) ?? null)
    const ok = checkCompletion(checks, u, pending?.type === 'pending' ? pending : null)
    const cancelled = records.some((c) => c.type === 'cancelled' && c.pending === u.pending && c.created_at <= u.created_at)
    if (!ok) problems.push(`hand-over ${u.id} does not verify: ${checks.find((c) => !c.ok)?.detail ?? ''}`)
    else if (cancelled) problems.push(`hand-over ${u.id} completed an upgrade that had been cancelled`)
    else out.push(u)
  }
  return out
}

/** Back from the current PCR0 through completed hand-overs: oldest first. */
function walk(current: string, done: UpgradeRecord[], problems: string[]): UpgradeRecord[] {
  const chain: UpgradeRecord[] = []
  const visited = new Set([current])
  let cur = current
  for (;;) {
    const into = done.filter((u) => u.target[0] === cur)
    if (into.length === 0) break
    if (into.length > 1) problems.push(`${into.length} hand-overs into PCR0 ${short(cur)}: ${into.map((u) => u.id).join(', ')}`)
    const u = into[0]!
    chain.unshift(u)
    cur = u.source[0]
    if (visited.has(cur)) {
      problems.push(`the lineage returns to PCR0 ${short(cur)}: a cycle`)
      break
    }
    visited.add(cur)
  }
  for (const u of done) if (!chain.includes(u)) problems.push(`hand-over ${u.id} from PCR0 ${short(u.source[0])} is not on the lineage of the current build`)
  return chain
}

function compareLineage(announced: ReturnType<typeof lineageOf>, chain: UpgradeRecord[], problems: string[]): void {
  const n = Math.max(announced.length, chain.length)
  for (let i = 0; i < n; i++) {
    const a = announced[i]
    const c = chain[i]
    if (a === undefined) problems.push(`gap: hand-over ${c!.id} from PCR0 ${short(c!.source[0])} is missing from the announced lineage`)
    else if (c === undefined) problems.push(`gap: the announced lineage names PCR0 ${short(a.pcr0)} handed over in ${a.upgraded}, and no such hand-over verifies on these relays`)
    else if (a.pcr0 !== c.source[0] || a.upgraded !== c.id) problems.push(`gap: lineage entry ${i + 1} is PCR0 ${short(a.pcr0)} in ${a.upgraded}; the relays show PCR0 ${short(c.source[0])} in ${c.id}`)
  }
}

/** npubs whose release signature holds for this build (PCR0/1/2, t, and r when known). */
function releasersOf(build: BuildRecord, candidates: NostrEvent[], r: string | null, options: UpgradeVerifyOptions): string[] {
  const pcrs = new Map<number, Uint8Array>([0, 1, 2].map((i) => [i, hexToBytes(build.pcrs[i as 0 | 1 | 2])]))
  const ctx: SignatureContext = { nowSec: Math.floor(Date.now() / 1000), pcrs, pcrSource: 'expected', r: options.repo ?? r, t: build.t }
  const who = new Set<string>()
  for (const e of candidates) if (checkReleaseSignature(e, ctx).ok) who.add(e.pubkey)
  const signers = options.releaseSigners === undefined ? null : new Set(options.releaseSigners.map((s) => pubkeyHex(s) ?? s))
  return [...who].filter((p) => signers === null || signers.has(p)).map((p) => npub(p))
}

function builds(current: CodePcrs, currentT: 'prod' | 'dev' | null, chain: UpgradeRecord[]): BuildRecord[] {
  const out: BuildRecord[] = []
  const first = chain[0]
  if (first !== undefined) out.push({ pcrs: first.source, t: first.sourceT, handover: null, heldFrom: null, heldUntil: first.created_at, current: false, releasers: [] })
  chain.forEach((u, i) => {
    const next = chain[i + 1]
    const last = next === undefined
    out.push({ pcrs: last ? current : u.target, t: last ? currentT : u.t, handover: u.id, heldFrom: u.created_at, heldUntil: next?.created_at ?? null, current: last, releasers: [] })
  })
  if (out.length === 0) out.push({ pcrs: current, t: currentT, handover: null, heldFrom: null, heldUntil: null, current: true, releasers: [] })
  return out
}

function pendings(records: UpgradeRecord[], current: string, now: number): PendingRecord[] {
  return records
    .filter((r) => r.type === 'pending')
    .sort((a, b) => b.created_at - a.created_at)
    .map((p) => {
      const cancel = records.find((c) => c.type === 'cancelled' && c.pending === p.id)
      const done = records.some((u) => u.type === 'upgraded' && u.pending === p.id)
      // a build that no longer holds the key cannot complete what it asked for
      const state: PendingRecord['state'] = cancel !== undefined ? 'cancelled' : done ? 'completed' : now >= (p.lapses ?? 0) || p.source[0] !== current ? 'lapsed' : 'pending'
      return {
        id: p.id,
        from: p.source[0],
        target: p.target,
        created_at: p.created_at,
        activation: p.activation ?? 0,
        lapses: p.lapses ?? 0,
        releasers: p.releases.map((e) => npub(e.pubkey)),
        state,
        cancelledBy: cancel?.canceller ?? null,
      }
    })
}

/**
 * The history of one npub. Fails (valid false) on: no valid announcement, a hand-over event
 * that does not verify, a lineage that differs from the walk (a gap), a fork or a cycle,
 * or a build with no release signature (from `releaseSigners` when given). Never throws.
 */
export async function verifyHistory(input: HistoryInput, options: UpgradeVerifyOptions = {}): Promise<History> {
  const problems: string[] = []
  const history: History = { pubkey: input.pubkey, valid: false, announcement: null, builds: [], pending: [], invalid: [], problems }
  if (input.announcement === null) {
    problems.push(`no announcement (kind 13793) by ${npub(input.pubkey)} found`)
    return history
  }
  const trust = { ...(options.root === undefined ? {} : { root: options.root }), expect: options.expect ?? 'prod', anyPcrs: true, ...(options.repo === undefined ? {} : { repo: options.repo }) }
  const announced = await verifyAnnouncement(input.announcement, trust)
  history.announcement = announced
  const current = announced.attestation === null ? null : codeOf(announced.attestation.pcrs)
  if (!announced.valid || current === null || input.announcement.pubkey !== input.pubkey) {
    problems.push(`the announcement does not verify (${announced.reason ?? 'not by this npub'})`)
    return history
  }
  const { records, invalid } = await verifyAll(input, options)
  history.invalid = invalid
  for (const i of invalid) problems.push(`hand-over event ${i.id} (kind ${i.kind}) does not verify: ${i.reason}`)
  const chain = walk(current[0], completions(records, problems), problems)
  compareLineage(lineageOf(input.announcement), chain, problems)
  const r = tagValues(input.announcement, 'r')[0] ?? null
  const carried = tagValues(input.announcement, 'release').map((j) => parseEmbedded(j, 'release')).filter((e): e is NostrEvent => typeof e !== 'string')
  const embedded = records.flatMap((p) => p.releases)
  history.builds = builds(current, announced.event === undefined ? null : tOf(announced.event), chain)
  for (const b of history.builds) {
    b.releasers = releasersOf(b, [...input.releases, ...embedded, ...(b.current ? carried : [])], r, options)
    const needed = options.releaseThreshold ?? 1
    if (b.releasers.length < needed) problems.push(`build PCR0 ${short(b.pcrs[0])} is ${b.releasers.length === 0 ? 'unsigned: no' : `released by ${b.releasers.length} of the ${needed} needed:`} release signature${options.releaseSigners === undefined ? '' : ' from your signers'} holds for its PCR0/1/2`)
  }
  history.pending = pendings(records, current[0], input.now ?? Math.floor(Date.now() / 1000))
  history.valid = problems.length === 0
  return history
}

/** One line per build and per open pending upgrade, for a terminal or a page. */
export function historyLines(h: History): string[] {
  const lines = h.builds.map((b, i) => {
    const when = `${b.heldFrom === null ? 'first build' : `from ${iso(b.heldFrom)}`}${b.heldUntil === null ? ', holds the key now' : ` until ${iso(b.heldUntil)}`}`
    const who = b.releasers.length === 0 ? 'UNSIGNED' : `released by ${b.releasers.join(', ')}`
    return `${i + 1}. PCR0 ${b.pcrs[0]} (t=${b.t ?? '?'}) — ${when}; ${who}${b.handover === null ? '' : `; hand-over ${b.handover}`}`
  })
  for (const p of h.pending.filter((x) => x.state === 'pending')) lines.push(`pending: to PCR0 ${p.target[0]}, activation ${iso(p.activation)} (event ${p.id}; released by ${p.releasers.join(', ') || 'nobody'})`)
  return lines
}

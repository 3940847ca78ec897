// What a holder finds about itself on the relays at boot. Its hand-over events are the
// source of truth: they are signed with the key, attested, and public, so a restart can
// neither lose a pending upgrade silently nor restart its clock (the activation time is in
// the signed event and never moves), and a build that handed the key on never serves again.
import { UPGRADE_CANCELLED_KIND, UPGRADE_PENDING_KIND, UPGRADED_KIND } from '../../nec01/kinds.js'
import type { NostrEvent } from '../../nec01/types.js'
import { verifyUpgradeEvent, type LineageEntry, type UpgradeRecord } from '../../nec01/upgrade.js'
import type { RelayPool } from '../relays/pool.js'

export type HolderState =
  | { phase: 'unknown' }
  | { phase: 'idle' }
  | { phase: 'pending'; event: NostrEvent; record: UpgradeRecord }
  | { phase: 'handed_over'; upgraded: string }

/**
 * The holder's own hand-over events from the relays, and which relays answered (EOSE).
 * None answering means the state is unknown: nothing may move then.
 */
export function readOwnEvents(pool: Pick<RelayPool, 'subscribe' | 'status'>, pubkey: string, timeoutMs: number): Promise<{ events: NostrEvent[]; answered: number }> {
  return new Promise((resolve) => {
    const events: NostrEvent[] = []
    const answered = new Set<string>()
    const want = pool.status().filter((s) => s.read).length
    const timer = setTimeout(done, timeoutMs)
    const sub = pool.subscribe([{ kinds: [UPGRADE_PENDING_KIND, UPGRADE_CANCELLED_KIND, UPGRADED_KIND], authors: [pubkey] }], {
      onevent: (e) => {
        if (e.pubkey === pubkey) events.push(e)
      },
      oneose: (url) => {
        answered.add(url)
        if (answered.size >= want) done()
      },
    })
    function done(): void {
      clearTimeout(timer)
      sub.close()
      resolve({ events, answered: answered.size })
    }
  })
}

/**
 * The state those events give a holder with this PCR0: handed over when one of its
 * upgraded events verifies; pending when its latest verified pending event is neither
 * cancelled, completed nor lapsed; idle otherwise. Events are checked with `trustRoot`.
 */
export async function stateFromEvents(events: NostrEvent[], ownPcr0: string, trustRoot: Uint8Array | undefined, nowSec: number): Promise<HolderState> {
  const mine: Array<{ event: NostrEvent; record: UpgradeRecord }> = []
  const seen = new Set<string>()
  for (const event of events) {
    if (seen.has(event.id)) continue
    seen.add(event.id)
    const r = await verifyUpgradeEvent(event, { ...(trustRoot === undefined ? {} : { root: trustRoot }), expect: 'any' })
    if (r.upgrade !== null && r.upgrade.source[0] === ownPcr0) mine.push({ event, record: r.upgrade })
  }
  const upgraded = mine.find((m) => m.record.type === 'upgraded')
  if (upgraded !== undefined) return { phase: 'handed_over', upgraded: upgraded.record.id }
  const closed = new Set(mine.filter((m) => m.record.type !== 'pending').map((m) => m.record.pending))
  const open = mine
    .filter((m) => m.record.type === 'pending' && !closed.has(m.record.id) && nowSec < (m.record.lapses ?? 0))
    .sort((a, b) => b.record.created_at - a.record.created_at)[0]
  return open === undefined ? { phase: 'idle' } : { phase: 'pending', event: open.event, record: open.record }
}

/**
 * The builds that held this key before this one (PCR0 `ownPcr0`), oldest first, from the
 * "upgraded" events signed with the key: a build that was handed the key and restarted
 * announces the same lineage it was handed, with nothing kept outside the enclave.
 */
export async function lineageFromEvents(events: NostrEvent[], ownPcr0: string, trustRoot: Uint8Array | undefined): Promise<LineageEntry[]> {
  const into = new Map<string, UpgradeRecord>()
  for (const event of events) {
    if (event.kind !== UPGRADED_KIND) continue
    const r = await verifyUpgradeEvent(event, { ...(trustRoot === undefined ? {} : { root: trustRoot }), expect: 'any' })
    if (r.upgrade !== null && !into.has(r.upgrade.target[0])) into.set(r.upgrade.target[0], r.upgrade)
  }
  const lineage: LineageEntry[] = []
  const visited = new Set([ownPcr0])
  for (let u = into.get(ownPcr0); u !== undefined && !visited.has(u.source[0]); u = into.get(u.source[0])) {
    visited.add(u.source[0])
    lineage.unshift({ pcr0: u.source[0], upgraded: u.id })
  }
  return lineage
}

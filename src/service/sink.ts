// The relay pool as the publisher sends through it: refusals of our events remembered for
// health, and relays whose AUTH went unanswered for want of a root reconnected once a root
// is back. The publisher (publish.ts) knows only the RelaySink port; the pool is here.
import type { EventTemplate } from 'nostr-tools/pure'
import type { NostrEvent } from '../../nec01/types.js'
import type { Logger } from '../log.js'
import { normalizeRelayUrl, type RelayEntry } from '../relays/config.js'
import type { RelayPool } from '../relays/pool.js'
import { countUp } from './counters.js'
import { NoRootError, type RelayResult, type RelaySink } from './publish.js'

export function writeRelays(relays: RelayEntry[]): string[] {
  return relays.filter((r) => r.write).map((r) => r.url)
}

export function isWriteRelay(relays: RelayEntry[], url: string): boolean {
  return relays.some((r) => r.url === url && r.write)
}

/** The last refusal of one of our events by a relay (unix ms). */
export interface Refusal {
  at: number
  message: string
}

export interface PoolSink extends RelaySink {
  /** url → the last refusal of one of our events: health shows it beside connection errors */
  refusals: ReadonlyMap<string, Refusal>
}

/** `pool()` is null until the pool exists (it comes after the first root): nothing is sent then. */
export function createPoolSink(opts: { pool: () => RelayPool | null; counters: Record<string, number> }): PoolSink {
  const refusals = new Map<string, Refusal>()
  return {
    refusals,
    async publish(event: NostrEvent, sendOpts?: { relays?: string[] }): Promise<RelayResult[]> {
      const pool = opts.pool()
      if (pool === null) return []
      // A targeted publish goes to exactly those relays: one outside the pool is reported
      // not-in-pool by the pool, never widened to every write relay.
      const results = await pool.publish(event, sendOpts?.relays === undefined ? {} : { relays: sendOpts.relays })
      noteRefusals(results, refusals, opts.counters)
      return results
    },
  }
}

function noteRefusals(results: RelayResult[], refusals: Map<string, Refusal>, counters: Record<string, number>): void {
  for (const r of results) {
    // not-connected is already the connection's own last_error; pool-closed is shutdown;
    // not-in-pool names no relay of ours.
    if (r.ok || r.code === 'not-connected' || r.code === 'pool-closed' || r.code === 'not-in-pool') continue
    refusals.set(r.url, { at: Date.now(), message: `publish ${r.code}: ${r.message}` })
    if (r.code === 'too-large') countUp(counters, 'publish_too_large')
  }
}

export interface AuthRefusals {
  /** the pool's signAuth: signs with the service key, remembering relays refused for want of a root */
  signAuth(template: EventTemplate): Promise<NostrEvent>
  /** once a root is back: a new connection for each relay whose AUTH was refused */
  reconnect(pool: RelayPool): void
}

/**
 * The pool answers one AUTH per challenge, and a relay keeps its challenge for the whole
 * connection: an AUTH we refused to sign while there was no root would leave the relay
 * unauthenticated (events refused, DMs withheld) until the connection happened to drop.
 * So once a root is back, those relays get a new connection; `onReconnect` hears of each.
 */
export function createAuthRefusals(opts: {
  sign: (template: EventTemplate) => NostrEvent
  relays: RelayEntry[]
  onReconnect: (url: string) => void
  log: Logger
}): AuthRefusals {
  const refused = new Set<string>()
  return {
    async signAuth(template) {
      try {
        return opts.sign(template)
      } catch (err) {
        const url = normalizeRelayUrl(template.tags.find((t) => t[0] === 'relay')?.[1] ?? '')
        if (err instanceof NoRootError && url !== null) refused.add(url)
        throw err
      }
    },
    reconnect(pool) {
      for (const url of refused) {
        const entry = opts.relays.find((r) => r.url === url)
        if (entry === undefined || !pool.removeRelay(url)) continue
        opts.onReconnect(url)
        pool.addRelay(entry)
        opts.log.info('reconnecting to answer AUTH with the new attestation', { relay: url })
      }
      refused.clear()
    },
  }
}

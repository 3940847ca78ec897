// The per-request floor: what one `ping` costs the service with no relay in the way. The
// real inbox (startInbox: dedup, signature, unwrap/decrypt, rate limit, command, reply
// through the real replier and publisher: build, tee_root, sign, seal and wrap) is fed one
// request at a time through a stand-in relay source; the time runs from handing the event
// in to the reply reaching the (no-op) relay sink. Requests are built untimed beforehand.
// The machine's load drifts, so the floor is measured again right before and right after
// each saturation phase, and that phase is compared with those rounds.
import { randomUUID } from 'node:crypto'
import type { NostrEvent } from '../nec01/types.js'
import { runCommand, type CommandDeps } from '../src/service/commands.js'
import { createVarsStore } from '../src/service/vars.js'
import { startInbox, type InboxSource } from '../src/service/inbox.js'
import { UNLIMITED_BUDGETS } from '../src/service/limits.js'
import { clientKey, nip04Request, nip17Request, rpcRequest, type ClientKey } from './client-crypto.js'
import type { Transport } from './load-protocol.js'
import { SINK_URL, quietLogger, type SimulatedService } from './simulated.js'
import { compareInRounds, type Contender, type RoundsOptions } from './stats.js'

/** Senders the requests rotate over: the service's per-sender caches see a few, as under load. */
const FLOOR_SENDERS = 16
/** A request that gets no reply within this is a bug in the bench or the service. */
const REPLY_TIMEOUT_MS = 10_000
const UNLIMITED = { ratePerSec: 1e9, burst: 100_000 }
const BATCH = 15
const QUICK_BATCH = 5
const ROUNDS: RoundsOptions = { rounds: 5, minRounds: 3, warmupBatches: 1, maxMs: 10_000 }
const QUICK_ROUNDS: RoundsOptions = { rounds: 3, minRounds: 2, warmupBatches: 1, maxMs: 3000 }

/** Per-request milliseconds, one value per round, by transport. */
export type FloorRounds = Partial<Record<Transport, number[]>>

export interface Floor {
  /** rounds of the given transports, interleaved; bounded by rounds and time */
  measure(transports: readonly Transport[]): Promise<FloorRounds>
  close(): void
}

export function buildRequest(transport: Transport, key: ClientKey, service: string): NostrEvent {
  if (transport === 'rpc') return rpcRequest(key, service, randomUUID())
  if (transport === 'nip04') return nip04Request(key, service)
  return nip17Request(key, service).wrap
}

export async function startFloor(sim: SimulatedService, opts: { quick: boolean }): Promise<Floor> {
  const service = sim.identity.pubkey
  let deliver: ((event: NostrEvent, relay: string) => void) | null = null
  const source: InboxSource = {
    subscribe: (_filters, onevent) => {
      deliver = onevent
      return { close: () => undefined }
    },
    fetchLatest: async () => null,
  }
  const deps: CommandDeps = {
    nsm: sim.nsm,
    identity: sim.identity,
    facts: { version: 'bench', tee: 'simulated', t: 'dev', startedAt: Date.now(), relays: () => [SINK_URL], pcrs: () => ({}) },
    trustRoot: sim.rootDer,
    leafSeen: () => undefined,
    vars: createVarsStore(),
  }
  const counters: Record<string, number> = {}
  const inbox = startInbox({ identity: sim.identity, source, replier: sim.replier, run: (req) => runCommand(req, deps), log: quietLogger, counters, rateLimit: UNLIMITED, budgets: UNLIMITED_BUDGETS })
  const keys = Array.from({ length: FLOOR_SENDERS }, () => clientKey(service))

  let pending: (() => void) | null = null
  sim.onPublish(() => pending?.())
  const handle = (event: NostrEvent): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`floor: no reply within ${REPLY_TIMEOUT_MS} ms; service counters ${JSON.stringify(counters)}`)), REPLY_TIMEOUT_MS)
      pending = () => {
        clearTimeout(timer)
        pending = null
        resolve()
      }
      if (deliver === null) reject(new Error('floor: the inbox never subscribed'))
      else deliver(event, SINK_URL)
    })

  let next = 0
  const contender = (transport: Transport, batch: number): Contender => {
    let requests: NostrEvent[] = []
    return {
      batch,
      prepare: (n) => {
        requests = Array.from({ length: n }, () => buildRequest(transport, keys[next++ % keys.length]!, service))
      },
      op: (i) => handle(requests[i]!),
    }
  }
  const batch = opts.quick ? QUICK_BATCH : BATCH
  const rounds = opts.quick ? QUICK_ROUNDS : ROUNDS
  return {
    async measure(transports) {
      const contenders = Object.fromEntries(transports.map((t) => [t, contender(t, batch)])) as Record<Transport, Contender>
      return compareInRounds(contenders, rounds)
    },
    close() {
      sim.onPublish(null)
      inbox.close()
    },
  }
}

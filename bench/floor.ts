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
import { randomBytes } from 'node:crypto'
import * as kinds from 'nostr-tools/kinds'
import { UNLIMITED_BUDGETS } from '../src/service/limits.js'
import { keyAgreement, nip44ConversationKey, nip44Decrypt, nip44Encrypt, oneTimeKey, publicKeyHex, signEvent, verifyEvent } from '../src/crypto.js'
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
/** the NIP-17 pair: more rounds, since the ratio of the two is a target */
const OPERATION_ROUNDS: RoundsOptions = { rounds: 15, minRounds: 7, warmupBatches: 1, maxMs: 20_000 }
const QUICK_ROUNDS: RoundsOptions = { rounds: 3, minRounds: 2, warmupBatches: 1, maxMs: 3000 }

/** Per-request milliseconds, one value per round, by transport. */
export type FloorRounds = Partial<Record<Transport, number[]>>

export interface Floor {
  /** rounds of the given transports, interleaved; bounded by rounds and time */
  measure(transports: readonly Transport[]): Promise<FloorRounds>
  /** NIP-17 requests interleaved with its operations alone (nip17Operations) */
  measureNip17Operations(): Promise<{ nip17: number[]; operations: number[] }>
  close(): void
}

/** A reply rumor with its tee_root is about this size; the seal around it, encrypted, about 10 KB. */
const REPLY_RUMOR_BYTES = 7 * 1024

/**
 * One NIP-17 round's cryptography and nothing else, on the service's primitives (the fastest
 * measured for each operation, bench/libs.ts), on data of the real sizes: the request's wrap
 * and seal checked, one ECDH with a long-term key (constant time) and two layers opened;
 * the reply's seal signed and checked again, a fresh wrap key and its ECDH, two layers
 * sealed, the wrap signed. Both ECDHs on the backend the service runs (src/crypto.ts). No parsing, dedup, command or
 * publishing: what the per-request figure costs above this is the service's own.
 */
function nip17Operations(batch: number): Contender {
  const secret = new Uint8Array(randomBytes(32))
  const own = { secret, pubkey: publicKeyHex(secret) }
  const agreement = keyAgreement(secret)
  const sender = clientKey(own.pubkey)
  const rumor = JSON.stringify({ content: 'r'.repeat(REPLY_RUMOR_BYTES) })
  let wraps: string[] = []
  const check = (ok: boolean): void => {
    if (!ok) throw new Error('floor: NIP-17 operations failed')
  }
  return {
    batch,
    prepare: (n) => {
      wraps = Array.from({ length: n }, () => JSON.stringify(nip17Request(sender, own.pubkey).wrap))
    },
    op: (i) => {
      const wrap = JSON.parse(wraps[i]!) as NostrEvent
      check(verifyEvent(wrap))
      const seal = JSON.parse(nip44Decrypt(nip44ConversationKey(agreement.sharedX(wrap.pubkey)), wrap.content)) as NostrEvent
      check(verifyEvent(seal))
      // the sender's conversation key is cached by the service, as sender.nip44 is here
      nip44Decrypt(sender.nip44, seal.content)
      const reply = signEvent({ kind: kinds.Seal, created_at: 0, tags: [], content: nip44Encrypt(sender.nip44, rumor) }, own)
      check(verifyEvent(reply))
      const once = oneTimeKey()
      const wrapKey = nip44ConversationKey(once.agreement.sharedX(sender.pubkey))
      signEvent({ kind: kinds.GiftWrap, created_at: 0, tags: [['p', sender.pubkey]], content: nip44Encrypt(wrapKey, JSON.stringify(reply)) }, once)
    },
  }
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
    async measureNip17Operations() {
      const t = await compareInRounds({ nip17: contender('nip17', batch), operations: nip17Operations(batch) }, opts.quick ? QUICK_ROUNDS : OPERATION_ROUNDS)
      return { nip17: t.nip17, operations: t.operations }
    },
    close() {
      sim.onPublish(null)
      inbox.close()
    },
  }
}

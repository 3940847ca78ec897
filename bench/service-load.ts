// A load-client process: `node dist/bench/service-load.js '<LoadConfig JSON>'`, forked by
// bench/service.ts with an IPC channel. It talks to the relay over a plain websocket (no
// pool: nothing between the socket and the clock), sends `ping` over one transport from
// many sender keys, matches every reply to its request and reports counts and latencies.
//
// Latency is request sent (just before ws.send) → reply received (first thing in the
// message handler). NIP-04 and RPC replies name their request in a clear ["e", id] tag.
// A NIP-17 reply is a gift wrap: its only clear fact is the recipient (p tag), which is
// enough to wake the closed-loop sender that owns the key; the exact match (rumor e tag →
// request) and the latency are computed after the phase, so unwrapping costs no CPU while
// the service is being measured.
import * as kinds from 'nostr-tools/kinds'
import { performance } from 'node:perf_hooks'
import { randomUUID } from 'node:crypto'
import { WebSocket, type RawData } from 'ws'
import { verifyTeeRoot } from '../nec01/event.js'
import type { NostrEvent, UnsignedEvent } from '../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC, RECENT_WINDOW_SEC } from '../nec01/windows.js'
import { RPC_KIND, clientKey, nip04Request, nip17Request, replyText, rpcRequest, unwrapReply, type ClientKey } from './client-crypto.js'
import { signEvent } from '../src/crypto.js'
import type { LoadConfig, LoadMessage, LoadResult } from './load-protocol.js'
import { summarize } from './stats.js'

/** The relay accepts at most this many values in one filter array (src/embedded/client-messages.ts). */
const FILTER_VALUES = 1000
const EOSE_TIMEOUT_MS = 10_000
const CONNECT_TIMEOUT_MS = 10_000
/** an open-loop schedule that falls this far behind (client starved of CPU) stops */
const SCHEDULE_SLACK = 2
const MIN_SLEEP_MS = 1
const DRAIN_POLL_MS = 50
const PONG = 'pong'
const SUB_ID = 'bench'

/** NIP-04 connections opened at once */
const CONNECT_BATCH = 50

/** A relay connection and the hooks its messages resolve. */
type Relay = WebSocket & {
  eose?: (() => void) | null
  challenge?: (challenge: string) => void
  /** the challenge, if it came before `challenge` was set */
  lastChallenge?: string
  authed?: (ok: boolean, message: string) => void
  authId?: string
}

function signAuth(key: ClientKey, challenge: string, relay: string): NostrEvent {
  return signEvent({ kind: kinds.ClientAuth, created_at: Math.floor(Date.now() / 1000), tags: [['relay', relay], ['challenge', challenge]], content: '' }, key)
}

const now = (): number => performance.now()
const MICROS_PER_SEC = 1e6
const cpuSec = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / MICROS_PER_SEC
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface Phase {
  name: 'warmup' | 'measure'
  sent: number
  answered: number
  refused: number
  errorReplies: number
  latencies: number[]
  firstSentAt: number
  lastSentAt: number
  lastReplyAt: number
  /** nip17: wraps as they arrived, opened after the phase */
  wraps: Array<{ at: number; event: NostrEvent; key: ClientKey }>
  /** nip17: rumor id → sent time */
  rumorsSent: Map<string, number>
  /** nip17: wraps seen per key, for the provisional (closed-loop) count */
  provisional: number
}

interface Pending {
  phase: Phase
  sentAt: number
  key: ClientKey
  wake: (() => void) | null
}

function newPhase(name: Phase['name']): Phase {
  return { name, sent: 0, answered: 0, refused: 0, errorReplies: 0, latencies: [], firstSentAt: 0, lastSentAt: 0, lastReplyAt: 0, wraps: [], rumorsSent: new Map(), provisional: 0 }
}

function send(message: LoadMessage): void {
  process.send?.(message)
}

/**
 * `onMessage` is attached before the socket opens: a relay's first frame (the NIP-42
 * challenge) can ride in with the handshake and be emitted before an awaiting caller runs.
 */
async function connect(url: string, onMessage: (ws: WebSocket, data: RawData) => void): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  ws.on('message', (data) => onMessage(ws, data))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection to ${url} within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS)
    ws.once('open', () => {
      clearTimeout(timer)
      resolve()
    })
    ws.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
  return ws
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

async function run(config: LoadConfig): Promise<LoadResult> {
  const service = config.service
  const keys = Array.from({ length: config.senders }, () => clientKey(service))
  const byPubkey = new Map(keys.map((k) => [k.pubkey, k]))
  const pendingById = new Map<string, Pending>()
  const pendingByOk = new Map<string, Pending>()
  const waitingByKey = new Map<string, Pending[]>()
  let unmatched = 0
  let sample: { event: NostrEvent | UnsignedEvent; sealSigner?: string } | null = null
  let current = newPhase('warmup')
  let progressMark = config.progressEvery

  const answered = (p: Pending, at: number): void => {
    p.phase.answered++
    p.phase.latencies.push(at - p.sentAt)
    p.phase.lastReplyAt = at
    p.wake?.()
    if (p.phase.name === 'measure' && config.progressEvery > 0 && p.phase.answered >= progressMark) {
      progressMark += config.progressEvery
      send({ type: 'progress', sent: p.phase.sent, answered: p.phase.answered, elapsedSec: (at - p.phase.firstSentAt) / 1000 })
    }
  }

  const onEvent = (event: NostrEvent, at: number): void => {
    if (event.kind === kinds.GiftWrap) {
      const to = event.tags.find((t) => t[0] === 'p')?.[1]
      const key = to === undefined ? undefined : byPubkey.get(to)
      if (key === undefined) {
        unmatched++
        return
      }
      current.wraps.push({ at, event, key })
      current.provisional++
      current.lastReplyAt = at
      // the closed-loop sender owning this key has exactly one request in flight
      const queue = waitingByKey.get(key.pubkey)
      const first = queue?.shift()
      if (queue !== undefined && queue.length === 0) waitingByKey.delete(key.pubkey)
      first?.wake?.()
      return
    }
    const requestId = event.tags.find((t) => t[0] === 'e')?.[1]
    const p = requestId === undefined ? undefined : pendingById.get(requestId)
    if (p === undefined || event.pubkey !== service) {
      unmatched++
      return
    }
    pendingById.delete(requestId!)
    let text = ''
    try {
      text = replyText(p.key, event)
    } catch {
      text = ''
    }
    const isPong = event.kind === RPC_KIND ? (JSON.parse(text || '{}') as { result?: unknown }).result === PONG : text === PONG
    if (!isPong) p.phase.errorReplies++
    sample ??= { event }
    answered(p, at)
  }

  const since = Math.floor(Date.now() / 1000) - (config.transport === 'nip17' ? GIFT_WRAP_WINDOW_SEC : RECENT_WINDOW_SEC)
  const wanted = config.transport === 'rpc' ? [RPC_KIND] : config.transport === 'nip04' ? [kinds.EncryptedDirectMessage] : [kinds.GiftWrap]
  const filtersFor = (pubkeys: string[]): unknown[] =>
    chunks(pubkeys, FILTER_VALUES).map((p) => ({ kinds: wanted, '#p': p, since, ...(config.transport === 'nip17' ? {} : { authors: [service] }) }))

  const onMessage = (ws: Relay, data: RawData): void => {
    const at = now()
    let msg: unknown
    try {
      msg = JSON.parse(data.toString())
    } catch {
      return
    }
    if (!Array.isArray(msg)) return
    if (msg[0] === 'EVENT' && msg[1] === SUB_ID) onEvent(msg[2] as NostrEvent, at)
    else if (msg[0] === 'EOSE' && msg[1] === SUB_ID) ws.eose?.()
    else if (msg[0] === 'AUTH' && typeof msg[1] === 'string') {
      ws.lastChallenge = msg[1]
      ws.challenge?.(msg[1])
    }
    else if (msg[0] === 'OK') {
      if (msg[1] === ws.authId) {
        ws.authed?.(msg[2] === true, String(msg[3]))
        return
      }
      const p = pendingByOk.get(msg[1] as string)
      pendingByOk.delete(msg[1] as string)
      if (p !== undefined && msg[2] !== true) {
        p.phase.refused++
        const queue = waitingByKey.get(p.key.pubkey) ?? []
        const index = queue.indexOf(p)
        if (index >= 0) queue.splice(index, 1)
        p.wake?.()
      }
    } else if (msg[0] === 'CLOSED' && msg[1] === SUB_ID) {
      // Without the subscription no reply can arrive: every figure would read as lost.
      process.send?.({ type: 'error', message: `the relay closed the reply subscription: ${String(msg[2])}` } satisfies LoadMessage, () => process.exit(1))
    }
  }

  // The relay serves kind 4 only to the connection authenticated (NIP-42) as its author or
  // recipient, one key per connection: a NIP-04 sender gets its own connection, as a real
  // client would. Gift wraps and RPC replies are not restricted: one connection for all.
  const open = async (subscribeFor: ClientKey[], authAs: ClientKey | null): Promise<Relay> => {
    const ws = (await connect(config.relay, (socket, data) => onMessage(socket as Relay, data))) as Relay
    if (authAs !== null) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no NIP-42 challenge or OK from the relay')), EOSE_TIMEOUT_MS)
        ws.challenge = (challenge) => {
          const auth = signAuth(authAs, challenge, config.relay)
          ws.authId = auth.id
          ws.send(JSON.stringify(['AUTH', auth]))
        }
        if (ws.lastChallenge !== undefined) ws.challenge(ws.lastChallenge)
        ws.authed = (ok, message) => {
          clearTimeout(timer)
          if (ok) resolve()
          else reject(new Error(`AUTH refused: ${message}`))
        }
      })
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no EOSE for the reply subscription')), EOSE_TIMEOUT_MS)
      ws.eose = () => {
        clearTimeout(timer)
        ws.eose = null
        resolve()
      }
      ws.send(JSON.stringify(['REQ', SUB_ID, ...filtersFor(subscribeFor.map((k) => k.pubkey))]))
    })
    return ws
  }
  const connections: Relay[] = []
  const connectionOf = new Map<string, Relay>()
  if (config.transport === 'nip04') {
    for (const batch of chunks(keys, CONNECT_BATCH)) {
      const opened = await Promise.all(batch.map((k) => open([k], k)))
      batch.forEach((k, i) => connectionOf.set(k.pubkey, opened[i]!))
      connections.push(...opened)
    }
  } else {
    connections.push(await open(keys, null))
  }

  /** one request, signed and ready to go; nip17: the rumor id it will be answered by */
  interface Prepared {
    key: ClientKey
    event: NostrEvent
    rumorId: string | null
  }
  const prepare = (key: ClientKey): Prepared => {
    if (config.transport === 'nip17') {
      const { wrap, rumorId } = nip17Request(key, service)
      return { key, event: wrap, rumorId }
    }
    const event = config.transport === 'rpc' ? rpcRequest(key, service, randomUUID()) : nip04Request(key, service)
    return { key, event, rumorId: null }
  }

  const sendOne = (phase: Phase, prepared: Prepared, wake: (() => void) | null): void => {
    const { key, event, rumorId } = prepared
    let pending: Pending
    if (rumorId !== null) {
      pending = { phase, sentAt: 0, key, wake }
      const queue = waitingByKey.get(key.pubkey) ?? []
      queue.push(pending)
      waitingByKey.set(key.pubkey, queue)
      pending.sentAt = now()
      phase.rumorsSent.set(rumorId, pending.sentAt)
    } else {
      pending = { phase, sentAt: 0, key, wake }
      pendingById.set(event.id, pending)
      pending.sentAt = now()
    }
    pendingByOk.set(event.id, pending)
    if (phase.sent === 0) phase.firstSentAt = pending.sentAt
    phase.sent++
    phase.lastSentAt = pending.sentAt
    ;(connectionOf.get(key.pubkey) ?? connections[0]!).send(JSON.stringify(['EVENT', event]))
  }

  let rotor = 0
  const nextKey = (): ClientKey => keys[rotor++ % keys.length]!

  async function openLoop(phase: Phase, ratePerSec: number, seconds: number): Promise<void> {
    const total = Math.round(ratePerSec * seconds)
    const start = now()
    const hardStop = start + seconds * 1000 * SCHEDULE_SLACK
    for (let i = 0; i < total && now() < hardStop; i++) {
      const wait = start + (i * 1000) / ratePerSec - now()
      if (wait >= MIN_SLEEP_MS) await sleep(wait)
      sendOne(phase, prepare(nextKey()), null)
    }
  }

  /**
   * `concurrency` senders, each with its own keys in turn. Signed on the fly, the senders
   * share `count` (a fast one sends more); presigned, each sends its share, built before the
   * clock starts.
   */
  async function closedLoop(phase: Phase, concurrency: number, count: number, maxSec: number, presign: boolean): Promise<void> {
    const slots = Math.min(concurrency, keys.length)
    const perSlot = Math.max(1, Math.floor(keys.length / slots))
    const keyOf = (s: number, j: number): ClientKey => keys[(s + slots * (j % perSlot)) % keys.length]!
    const share = (s: number): number => Math.floor(count / slots) + (s < count % slots ? 1 : 0)
    const ready = presign ? Array.from({ length: slots }, (_, s) => Array.from({ length: share(s) }, (_, j) => prepare(keyOf(s, j)))) : null
    const deadline = now() + maxSec * 1000
    let issued = 0
    const slot = async (s: number): Promise<void> => {
      const mine = ready?.[s]
      for (let j = 0; (mine === undefined ? issued < count : j < mine.length) && now() < deadline; j++) {
        issued++
        const prepared = mine?.[j] ?? prepare(keyOf(s, j))
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, config.replyTimeoutSec * 1000)
          sendOne(phase, prepared, () => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
    }
    await Promise.all(Array.from({ length: slots }, (_, s) => slot(s)))
  }

  async function drain(phase: Phase): Promise<void> {
    const end = now() + config.drainSec * 1000
    const outstanding = (): number => phase.sent - phase.refused - (config.transport === 'nip17' ? phase.provisional : phase.answered)
    while (outstanding() > 0 && now() < end) {
      const lastActivity = Math.max(phase.lastReplyAt, phase.lastSentAt)
      if (now() - lastActivity > config.stallSec * 1000) break
      await sleep(DRAIN_POLL_MS)
    }
  }

  /** nip17: open every wrap of the phase, match rumor e tag → request, exact latency. */
  function settleWraps(phase: Phase): void {
    const matched = new Set<string>()
    for (const { at, event, key } of phase.wraps) {
      let rumor
      try {
        rumor = unwrapReply(key, event, service)
      } catch {
        unmatched++
        continue
      }
      const requestId = rumor.tags.find((t) => t[0] === 'e')?.[1]
      const sentAt = requestId === undefined ? undefined : phase.rumorsSent.get(requestId)
      if (requestId === undefined || sentAt === undefined || matched.has(requestId)) {
        unmatched++
        continue
      }
      matched.add(requestId)
      phase.answered++
      phase.latencies.push(at - sentAt)
      if (rumor.content !== PONG) phase.errorReplies++
      sample ??= { event: rumor, sealSigner: service }
    }
    phase.wraps = []
  }

  const finish = (phase: Phase): void => {
    if (config.transport === 'nip17') settleWraps(phase)
    for (const [id, p] of pendingById) if (p.phase === phase) pendingById.delete(id)
    for (const [id, p] of pendingByOk) if (p.phase === phase) pendingByOk.delete(id)
    waitingByKey.clear()
  }

  const mode = config.mode
  const warmup = current
  if (mode.kind === 'rate') await openLoop(warmup, mode.ratePerSec, mode.warmupSec)
  else await closedLoop(warmup, mode.concurrency, mode.warmupCount, mode.maxSec, false)
  await drain(warmup)
  finish(warmup)

  const measure = newPhase('measure')
  current = measure
  if (mode.kind === 'rate') await openLoop(measure, mode.ratePerSec, mode.durationSec)
  else await closedLoop(measure, mode.concurrency, mode.count, mode.maxSec, mode.presign)
  // from the first request sent: presigning happens before it
  const sendSec = measure.sent > 0 ? (now() - measure.firstSentAt) / 1000 : 0
  await drain(measure)
  finish(measure)
  for (const ws of connections) ws.close()

  let teeRoot: LoadResult['teeRoot'] = null
  if (sample !== null) {
    const s: { event: NostrEvent | UnsignedEvent; sealSigner?: string } = sample
    const v = await verifyTeeRoot(s.event, { root: config.rootPem, anyPcrs: true, expect: 'dev', ...(s.sealSigner === undefined ? {} : { sealSigner: s.sealSigner }) })
    teeRoot = { valid: v.valid, reason: v.reason }
  }
  const durationSec = Math.max(measure.lastReplyAt, measure.lastSentAt) > measure.firstSentAt ? (Math.max(measure.lastReplyAt, measure.lastSentAt) - measure.firstSentAt) / 1000 : 0
  return {
    transport: config.transport,
    mode: mode.kind,
    warmup: { sent: warmup.sent, answered: warmup.answered },
    sent: measure.sent,
    answered: measure.answered,
    lost: measure.sent - measure.answered - measure.refused,
    refusedByRelay: measure.refused,
    errorReplies: measure.errorReplies,
    unmatched,
    durationSec,
    sendSec,
    offeredPerSec: sendSec > 0 ? measure.sent / sendSec : 0,
    answeredPerSec: durationSec > 0 ? measure.answered / durationSec : 0,
    latencyMs: summarize(measure.latencies),
    teeRoot,
    cpuSec: cpuSec(),
  }
}

/** The bench may be gone already (interrupted): then there is nothing to disconnect. */
function disconnect(): void {
  if (process.connected) process.disconnect()
}

const arg = process.argv[2]
if (arg === undefined) {
  console.error("usage: node dist/bench/service-load.js '<LoadConfig JSON>' (forked by bench/service.ts)")
  process.exitCode = 2
} else {
  run(JSON.parse(arg) as LoadConfig).then(
    // disconnect only once the message is out: the bench waits for it
    (result) => process.send?.({ type: 'done', result } satisfies LoadMessage, disconnect),
    (err: unknown) => {
      process.exitCode = 1
      process.send?.({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies LoadMessage, disconnect)
    },
  )
}

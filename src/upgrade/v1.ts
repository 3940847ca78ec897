// The holder's side of a hand-over (docs/upgrades.md). Over JSON-RPC a new build asks for
// a nonce, proves itself with a root event bound to it and its release signatures, and the
// holder publishes "upgrade pending"; once the cooldown is over the new build proves itself
// again with a fresh nonce, the holder publishes "upgraded", answers with its key encrypted
// to the attested key, and retires. Every step is published before it takes effect; if no
// relay takes the event, nothing happens. One request at a time (serial), one pending
// upgrade at a time.
import { randomBytes } from 'node:crypto'
import { errorText } from '../../nec01/errors.js'
import type { EventTemplate } from 'nostr-tools/pure'
import { withTeeRoot } from '../../nec01/event.js'
import { createLru, type Lru } from '../../nec01/lru.js'
import type { NostrEvent } from '../../nec01/types.js'
import { buildUpgradeCancelled, buildUpgraded, buildUpgradePending, PENDING_LAPSE_SEC, type CancellerRole, type LineageEntry } from '../../nec01/upgrade.js'
import type { Logger } from '../log.js'
import type { CommandReply, CommandRequest, CommandSpec } from '../service/commands.js'
import { createSeenStore, type SeenStore } from '../service/dedup.js'
import { MAX_REQUEST_SKEW_SEC } from '../service/operator.js'
import type { Identity } from '../service/identity.js'
import type { Publisher } from '../service/publish.js'
import { checkPolicyFor, type UpgradePolicy } from './policy.js'
import type { HolderState } from './restore.js'
import { checkTargetReleases, checkTargetRoot, refuse, type Target } from './target.js'

/** A nonce is good for this long, once. */
export const NONCE_TTL_SEC = 120
const MAX_NONCES = 64

export interface HolderOptions {
  policy: UpgradePolicy
  identity: Pick<Identity, 'pubkey' | 'sign' | 'encryptSecretTo'>
  publisher: Pick<Publisher, 'carrier' | 'send'>
  /** the operator (operator.json), who may cancel besides the maintainers */
  operator: string | null
  trustRoot?: Uint8Array
  /** this build: its PCR0, t, and the lineage it announces */
  own: { pcr0: string; t: 'prod' | 'dev'; lineage: LineageEntry[] }
  log: Logger
  /** called once the key is handed over and the answer is on its way */
  onHandedOver: (upgraded: string) => void
  /** how long a nonce stays good (default NONCE_TTL_SEC) */
  nonceTtlSec?: number
  now?: () => number
}

export interface Holder {
  commands: Record<string, CommandSpec>
  state(): HolderState
  /** the state read from the relays at boot (restore.ts) */
  setState(state: HolderState): void
}

interface Issued {
  sender: string
  expires: number
}

function paramsOf(req: CommandRequest, keys: string[]): Record<string, unknown> {
  if (req.transport !== 'rpc') throw refuse('RESTRICTED', 'NIP04_REFUSED', 'hand-over requests go over JSON-RPC only')
  const p = req.params
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw refuse('INVALID_REQUEST', 'BAD_PARAMS', `params must be an object { ${keys.join(', ')} }`)
  const unknown = Object.keys(p).find((k) => !keys.includes(k))
  if (unknown !== undefined) throw refuse('INVALID_REQUEST', 'BAD_PARAMS', `unknown parameter '${unknown.slice(0, 32)}'`)
  return p as Record<string, unknown>
}

function statusOf(state: HolderState, policy: UpgradePolicy): Record<string, unknown> {
  const base = { phase: state.phase, cooldown_sec: policy.cooldownSec, threshold: policy.threshold, maintainers: policy.maintainers, repo: policy.repo }
  if (state.phase === 'pending') return { ...base, pending: state.event.id, target: state.record.target, activation: state.record.activation, lapses: state.record.lapses }
  if (state.phase === 'handed_over') return { ...base, upgraded: state.upgraded }
  return base
}

/** What the handlers share: the options, the hand-over state, the nonces issued, the queue. */
interface HolderCore {
  opts: HolderOptions
  state: HolderState
  nonces: Lru<string, Issued>
  /** cancel requests seen, against replays */
  cancels: SeenStore
  /** the tail of the serial queue */
  queue: Promise<unknown>
}

function nowSec(h: HolderCore): number {
  return Math.floor((h.opts.now ?? Date.now)() / 1000)
}

/** Runs fn after every request before it: one hand-over step at a time. */
function serial<T>(h: HolderCore, fn: () => Promise<T>): Promise<T> {
  const run = h.queue.then(fn, fn)
  h.queue = run.catch(() => undefined)
  return run
}

function ready(h: HolderCore): void {
  if (h.state.phase === 'unknown') throw refuse('INTERNAL', 'STATE_UNKNOWN', 'the hand-over state is not read from the relays yet: try again later')
  if (h.state.phase === 'handed_over') throw refuse('RESTRICTED', 'HANDED_OVER', `the key was handed over in ${h.state.upgraded}`)
}

/** Consumes the nonce named in the request: issued to this sender, unexpired, never used. */
function takeNonce(h: HolderCore, value: unknown, sender: string): Uint8Array {
  const hex = typeof value === 'string' ? value : ''
  const issued = h.nonces.get(hex)
  h.nonces.delete(hex)
  if (issued === undefined || issued.sender !== sender || issued.expires <= nowSec(h)) {
    throw refuse('RESTRICTED', 'NONCE_UNKNOWN', 'the nonce is unknown, used, expired or not yours: ask upgrade_challenge for a new one')
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

async function checkTarget(h: HolderCore, req: CommandRequest, p: Record<string, unknown>): Promise<Target> {
  const { opts } = h
  const nonce = takeNonce(h, p.nonce, req.sender)
  const earlier = opts.own.lineage.map((l) => l.pcr0)
  return checkTargetRoot(p.root, { policy: opts.policy, ...(opts.trustRoot === undefined ? {} : { trustRoot: opts.trustRoot }), sender: req.sender, nonce, own: { pcr0: opts.own.pcr0, t: opts.own.t, earlier } })
}

/**
 * Publishes first: a step the public record does not show must not happen. The template
 * is made for the created_at the carrier settles on, so times counted from it hold.
 */
async function announce(h: HolderCore, make: (createdAt: number) => EventTemplate, what: string): Promise<NostrEvent> {
  const { opts } = h
  try {
    const { template, root } = opts.publisher.carrier(make(nowSec(h)))
    const event = opts.identity.sign(withTeeRoot(make(template.created_at), root.teeRoot))
    const results = await opts.publisher.send(event)
    if (results.some((r) => r.ok)) return event
    opts.log.warn(`${what} not published: nothing changed`, { relays: results.map((r) => r.message) })
  } catch (err) {
    opts.log.warn(`${what} not published: nothing changed`, { error: errorText(err) })
  }
  throw refuse('INTERNAL', 'ANNOUNCE_FAILED', `the ${what} event could not be published, so nothing changed: try again`)
}

function roleOf(h: HolderCore, sender: string): CancellerRole | null {
  if (h.opts.operator !== null && sender === h.opts.operator) return 'operator'
  return h.opts.policy.maintainers.includes(sender) ? 'maintainer' : null
}

async function challenge(h: HolderCore, req: CommandRequest): Promise<CommandReply> {
  paramsOf(req, [])
  ready(h)
  const nonce = randomBytes(32).toString('hex')
  const ttl = h.opts.nonceTtlSec ?? NONCE_TTL_SEC
  h.nonces.set(nonce, { sender: req.sender, expires: nowSec(h) + ttl })
  return { result: { nonce, expires_in: ttl }, text: nonce }
}

/** A released build asks for the key: "upgrade pending" is published and the cooldown starts. */
async function request(h: HolderCore, req: CommandRequest): Promise<CommandReply> {
  const { opts } = h
  const p = paramsOf(req, ['nonce', 'root', 'releases'])
  ready(h)
  const target = await checkTarget(h, req, p)
  const releases = checkTargetReleases(p.releases, target, opts.policy)
  if (h.state.phase === 'pending') {
    const pending = h.state
    const same = [0, 1, 2].every((i) => pending.record.target[i as 0 | 1 | 2] === target.pcrs[i as 0 | 1 | 2])
    if (!same) throw refuse('RESTRICTED', 'BUSY', `an upgrade to PCR0 ${pending.record.target[0].slice(0, 12)}… is pending (${pending.event.id}); it must complete, lapse or be cancelled first`)
    // the same build asking again: the clock already runs and does not restart
    return pendingReply(pending.event.id, pending.record.activation ?? 0)
  }
  const make = (createdAt: number): EventTemplate => buildUpgradePending({
    from: opts.own.pcr0,
    target: target.pcrs,
    targetRoot: target.root,
    releases,
    r: opts.policy.repo,
    t: target.t,
    maintainers: opts.policy.maintainers,
    threshold: opts.policy.threshold,
    cooldownSec: opts.policy.cooldownSec,
    createdAt,
  })
  const event = await announce(h, make, 'upgrade pending')
  const activation = event.created_at + opts.policy.cooldownSec
  h.state = { phase: 'pending', event, record: pendingRecord(event, target, releases, activation, opts.own.pcr0) }
  opts.log.info('upgrade pending', { pending: event.id, target: target.pcrs[0], activation })
  return pendingReply(event.id, activation)
}

/** The operator or a maintainer cancels the pending upgrade, in a signed, fresh, unreplayed request. */
async function cancel(h: HolderCore, req: CommandRequest): Promise<CommandReply> {
  const p = paramsOf(req, ['pending'])
  const role = roleOf(h, req.sender)
  if (role === null) throw refuse('UNAUTHORIZED', 'NOT_ALLOWED', 'only the operator or a maintainer named in upgrade.json may cancel')
  const age = nowSec(h) - req.createdAt
  if (age > MAX_REQUEST_SKEW_SEC || age < -MAX_REQUEST_SKEW_SEC) throw refuse('UNAUTHORIZED', 'STALE', `the request was made ${age} s ago; at most ${MAX_REQUEST_SKEW_SEC} s either way`)
  const seen = h.cancels.record(req.requestId)
  if (seen === 'seen') throw refuse('UNAUTHORIZED', 'REPLAYED', 'this request was seen before')
  if (seen === 'full') throw refuse('RATE_LIMITED', 'BUSY', 'too many cancel requests; try again later')
  ready(h)
  if (h.state.phase !== 'pending') throw refuse('RESTRICTED', 'NOT_PENDING', 'no upgrade is pending')
  if (p.pending !== undefined && p.pending !== h.state.event.id) throw refuse('RESTRICTED', 'NOT_PENDING', `the pending upgrade is ${h.state.event.id}`)
  const pending = h.state.event
  const event = await announce(h, (createdAt) => buildUpgradeCancelled({ pending, canceller: req.sender, role, createdAt }), 'upgrade cancelled')
  h.opts.log.info('upgrade cancelled', { pending: h.state.event.id, by: req.sender, role, event: event.id })
  h.state = { phase: 'idle' }
  return { result: { cancelled: event.id }, text: `cancelled in ${event.id}` }
}

/** After the cooldown the new build proves itself again: "upgraded" is published and the key goes to it. */
async function complete(h: HolderCore, req: CommandRequest): Promise<CommandReply> {
  const { opts } = h
  const p = paramsOf(req, ['nonce', 'root'])
  ready(h)
  if (h.state.phase !== 'pending') throw refuse('RESTRICTED', 'NOT_PENDING', 'no upgrade is pending')
  const pending = h.state
  const now = nowSec(h)
  if (now < (pending.record.activation ?? Infinity)) throw refuse('RESTRICTED', 'TOO_EARLY', `the cooldown ends at ${pending.record.activation ?? '?'} (in ${(pending.record.activation ?? now) - now} s)`)
  if (now >= (pending.record.lapses ?? 0)) throw refuse('RESTRICTED', 'LAPSED', 'the pending upgrade lapsed: ask again')
  const target = await checkTarget(h, req, p)
  if (![0, 1, 2].every((i) => target.pcrs[i as 0 | 1 | 2] === pending.record.target[i as 0 | 1 | 2])) throw refuse('RESTRICTED', 'TARGET_MISMATCH', 'the attested PCRs are not those of the pending upgrade')
  const upgraded = await announce(h, (createdAt) => buildUpgraded({ pending: pending.event, targetRoot: target.root, createdAt }), 'upgraded')
  h.state = { phase: 'handed_over', upgraded: upgraded.id }
  opts.log.info('key handed over', { upgraded: upgraded.id, to: target.pcrs[0], pubkey: target.root.pubkey })
  const lineage = [...opts.own.lineage, { pcr0: opts.own.pcr0, upgraded: upgraded.id }]
  queueMicrotask(() => opts.onHandedOver(upgraded.id))
  return { result: { upgraded: upgraded.id, key: opts.identity.encryptSecretTo(target.root.pubkey), lineage }, text: `handed over in ${upgraded.id}` }
}

export function createUpgradeHolder(opts: HolderOptions): Holder {
  checkPolicyFor(opts.policy, opts.own.t)
  const h: HolderCore = { opts, state: { phase: 'unknown' }, nonces: createLru<string, Issued>(MAX_NONCES), cancels: createSeenStore({ ttlSec: 3 * MAX_REQUEST_SKEW_SEC }), queue: Promise.resolve() }
  const status = async (): Promise<CommandReply> => {
    const result = statusOf(h.state, opts.policy)
    return { result, text: JSON.stringify(result) }
  }
  const commands: Record<string, CommandSpec> = {
    upgrade_status: { summary: 'hand-over: the upgrade policy and any pending upgrade', example: 'upgrade_status', handler: status },
    upgrade_challenge: { summary: 'hand-over (JSON-RPC): a nonce for the new build to attest with', example: 'upgrade_challenge', handler: (req) => challenge(h, req) },
    upgrade_request: { summary: 'hand-over (JSON-RPC): a released build asks for the key; starts the cooldown', example: 'upgrade_request', handler: (req) => serial(h, () => request(h, req)) },
    upgrade_cancel: { summary: 'hand-over (JSON-RPC): the operator or a maintainer cancels the pending upgrade', example: 'upgrade_cancel', handler: (req) => serial(h, () => cancel(h, req)) },
    upgrade_complete: { summary: 'hand-over (JSON-RPC): after the cooldown, the new build takes the key', example: 'upgrade_complete', handler: (req) => serial(h, () => complete(h, req)) },
  }
  return {
    commands,
    state: () => h.state,
    setState(next) {
      h.state = next
    },
  }
}

function pendingReply(id: string, activation: number): CommandReply {
  return { result: { pending: id, activation }, text: `pending in ${id}, activation ${activation}` }
}

function pendingRecord(event: NostrEvent, target: Target, releases: NostrEvent[], activation: number, from: string): Extract<HolderState, { phase: 'pending' }>['record'] {
  return {
    type: 'pending',
    id: event.id,
    holder: event.pubkey,
    created_at: event.created_at,
    // only PCR0 of the source is the holder's concern
    source: { 0: from, 1: '', 2: '' },
    sourceT: null,
    target: target.pcrs,
    t: target.t,
    pending: null,
    activation,
    cooldown: activation - event.created_at,
    lapses: activation + PENDING_LAPSE_SEC,
    releases,
    canceller: null,
  }
}

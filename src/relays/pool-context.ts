// The relay pool's shared state: one plain object every pool-*.ts module is handed, instead of
// a closure, so each part can be read (and tested) on its own.
import type { Agent } from 'node:http'
import type { WebSocket } from 'ws'
import { HttpsProxyAgent } from 'https-proxy-agent'
import type { Subscription } from 'nostr-tools/abstract-relay'
import type { Lru } from '../../nec01/lru.js'
import { errorText } from '../../nec01/errors.js'
import { createLogger, type Logger } from '../log.js'
import type { RelayEntry } from './config.js'
import type { Nip11Result } from './nip11.js'
import type { PoolRelay } from './pool-relay.js'
import {
  RelayPoolError,
  type Filter,
  type RelayPoolOptions,
  type RelayState,
  type RelayStatus,
  type SignAuth,
  type SubscribeOptions,
} from './pool-types.js'

export const DEFAULTS = {
  connectTimeoutMs: 10_000,
  publishTimeoutMs: 10_000,
  initialBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  heartbeatMs: 30_000,
  nip11TimeoutMs: 5_000,
  maxPayload: 16 * 1024 * 1024,
  eoseTimeoutMs: 10_000,
  fetchTimeoutMs: 10_000,
}

export type OkReply = { kind: 'ok'; message: string } | { kind: 'rejected'; message: string } | { kind: 'timeout' } | { kind: 'closed' }
/** `local`: the failure was ours (the signer could not sign), not the relay's refusal. */
export type AuthOutcome = { ok: true } | { ok: false; message: string; local?: boolean }

export interface OkWaiter {
  done(reply: OkReply): void
}

/** One websocket session with a relay. */
export interface Conn {
  relay: PoolRelay | null
  ws: WebSocket | null
  ended: boolean
  /** we are closing it: let the close frame go out instead of cutting the socket */
  graceful: boolean
  connected: boolean
  openedAt: number | null
  socketError: string | null
  closeInfo: string | null
  challenge: string | null
  failedChallenge: string | null
  authed: boolean
  authPubkey: string | null
  authAttempt: Promise<AuthOutcome> | null
  challengeWaiters: Set<() => void>
  pending: Map<string, Set<OkWaiter>>
  /** pool subscription id → its nostr-tools subscription on this connection */
  subs: Map<string, Subscription>
  authRetried: Set<string>
  /** subscriptions whose REQ went out before this connection authenticated */
  sentUnauthed: Set<string>
  connectTimer: ReturnType<typeof setTimeout> | null
  heartbeat: ReturnType<typeof setInterval> | null
  awaitingPong: boolean
}

export interface RelayRec {
  entry: RelayEntry
  state: RelayState
  conn: Conn | null
  removed: boolean
  lastError: string | null
  lastErrorAt: number | null
  failures: number
  retryTimer: ReturnType<typeof setTimeout> | null
  nextRetryAt: number | null
  nip11: Nip11Result | null
  nip11Promise: Promise<void> | null
  nip11Abort: AbortController | null
  stateWaiters: Set<() => void>
}

export interface PoolSub {
  id: string
  filtersFn: () => Filter[]
  opts: SubscribeOptions
  /** explicit targets, or null for every read relay */
  targets: Set<string> | null
  /** ids delivered, oldest forgotten first (has() does not refresh) */
  seen: Lru<string, true>
  closed: boolean
  /** internal: a relay stopped serving this subscription for good or for now */
  ondone?: (url: string) => void
}

export interface PoolConfig {
  connectTimeoutMs: number
  publishTimeoutMs: number
  initialBackoffMs: number
  maxBackoffMs: number
  heartbeatMs: number
  nip11: boolean
  nip11TimeoutMs: number
  maxPayload: number
  eoseTimeoutMs: number
  authOnChallenge: boolean
}

export interface PoolContext {
  cfg: PoolConfig
  log: Logger
  /** without it the pool never authenticates */
  signAuth: SignAuth | undefined
  onStatusChange: ((status: RelayStatus) => void) | undefined
  /** for every websocket and NIP-11 request: the caller's, or ownAgent */
  agent: Agent | undefined
  /** the proxy agent the pool made itself, destroyed on close */
  ownAgent: HttpsProxyAgent<string> | undefined
  recs: Map<string, RelayRec>
  subs: Map<string, PoolSub>
  subCounter: number
  closed: boolean
  closing: Promise<void> | undefined
}

export function resolveConfig(options: Omit<RelayPoolOptions, 'relays'>): PoolConfig {
  return {
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    publishTimeoutMs: options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs,
    initialBackoffMs: options.backoff?.initialMs ?? DEFAULTS.initialBackoffMs,
    maxBackoffMs: options.backoff?.maxMs ?? DEFAULTS.maxBackoffMs,
    heartbeatMs: options.heartbeatMs ?? DEFAULTS.heartbeatMs,
    nip11: options.nip11 ?? true,
    nip11TimeoutMs: options.nip11TimeoutMs ?? DEFAULTS.nip11TimeoutMs,
    maxPayload: options.maxPayload ?? DEFAULTS.maxPayload,
    eoseTimeoutMs: options.eoseTimeoutMs ?? DEFAULTS.eoseTimeoutMs,
    authOnChallenge: options.authOnChallenge ?? true,
  }
}

/** The pool's proxy agent when it must make one (a proxy URL and no caller agent). */
function proxyAgent(options: Omit<RelayPoolOptions, 'relays'>): HttpsProxyAgent<string> | undefined {
  if (options.agent !== undefined || options.proxy === undefined) return undefined
  try {
    return new HttpsProxyAgent(options.proxy)
  } catch (err) {
    throw new RelayPoolError('pool/bad-proxy', `invalid proxy URL: ${errorText(err)}`)
  }
}

/** A pool with no relays yet; throws pool/bad-proxy for a proxy URL it cannot use. */
export function createPoolContext(options: Omit<RelayPoolOptions, 'relays'>): PoolContext {
  const log = (options.logger ?? createLogger()).child({ component: 'relay-pool' })
  const cfg = resolveConfig(options)
  const ownAgent = proxyAgent(options)
  return {
    cfg,
    log,
    signAuth: options.signAuth,
    onStatusChange: options.onStatusChange,
    agent: options.agent ?? ownAgent,
    ownAgent,
    recs: new Map(),
    subs: new Map(),
    subCounter: 0,
    closed: false,
    closing: undefined,
  }
}

export function safeCall(ctx: PoolContext, fn: () => void, what: string): void {
  try {
    fn()
  } catch (err) {
    // A throwing callback must not break the pool's bookkeeping: reported, not rethrown.
    ctx.log.error('callback threw', { callback: what, error: err })
  }
}


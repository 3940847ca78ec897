// Public shapes of the relay pool (pool.ts): options, health, publish results.
import type { Agent } from 'node:http'
import type { Event as NostrEvent, EventTemplate } from 'nostr-tools/pure'
import type { Filter } from 'nostr-tools/filter'
import type { Logger } from '../log.js'
import type { RelayEntry } from './config.js'
import type { RelayLimits } from './nip11.js'
import { CodedError } from '../../nec01/errors.js'

export type { NostrEvent, EventTemplate, Filter }

/** Signs a NIP-42 kind 22242 template with the service's key. */
export type SignAuth = (template: EventTemplate) => Promise<NostrEvent>

export interface RelayPoolOptions {
  relays: RelayEntry[]
  /** without it the pool never authenticates, and auth-required refusals are final */
  signAuth?: SignAuth
  /** authenticate as soon as a relay sends a challenge (default true); else only on auth-required */
  authOnChallenge?: boolean
  logger?: Logger
  /** http://host:port of an HTTP CONNECT proxy for every websocket and NIP-11 request */
  proxy?: string
  /** an agent for every websocket and NIP-11 request (wins over proxy) */
  agent?: Agent
  connectTimeoutMs?: number
  /** default time a publish waits for a relay's OK (connection wait included) */
  publishTimeoutMs?: number
  /** reconnect delay: doubles from initialMs up to maxMs, each with jitter */
  backoff?: { initialMs?: number; maxMs?: number }
  /** websocket ping interval; a relay missing one pong is reconnected. 0 disables. */
  heartbeatMs?: number
  /** fetch NIP-11 documents and respect their limits (default true) */
  nip11?: boolean
  nip11TimeoutMs?: number
  /** largest message accepted from a relay */
  maxPayload?: number
  /** a relay that sends no EOSE within this is treated as done with stored events */
  eoseTimeoutMs?: number
  onStatusChange?: (status: RelayStatus) => void
}

export type RelayState = 'connecting' | 'connected' | 'backoff' | 'closed'

/** Health of one relay; snake_case because it goes into health JSON as is. */
export interface RelayStatus {
  url: string
  read: boolean
  write: boolean
  state: RelayState
  connected: boolean
  authed: boolean
  auth_pubkey: string | null
  last_error: string | null
  /** unix milliseconds */
  last_error_at: number | null
  connected_since: number | null
  /** consecutive failed connections (0 while a connection is up) */
  failures: number
  next_retry_at: number | null
  /** limits from NIP-11, null until the document is fetched (or when it failed) */
  limits: RelayLimits | null
  nip11_error: string | null
  subscriptions: number
}

export type PublishCode =
  | 'ok'
  | 'rejected'
  | 'timeout'
  | 'too-large'
  | 'not-connected'
  | 'not-in-pool'
  | 'auth-failed'
  | 'connection-closed'
  | 'invalid-event'
  | 'pool-closed'

export interface PublishResult {
  url: string
  ok: boolean
  code: PublishCode
  /** the relay's OK message, or why nothing was sent */
  message: string
}

/** One entry per targeted relay, in target order. */
export type PublishReport = PublishResult[]

export interface PublishOptions {
  /** default: every write relay */
  relays?: string[]
  timeoutMs?: number
}

export interface SubscribeOptions {
  onevent: (event: NostrEvent, relayUrl: string) => void
  /** per relay, after each (re)subscription's stored events */
  oneose?: (relayUrl: string) => void
  /** a relay refused or ended the subscription (not called for disconnects: those resubscribe) */
  onclosed?: (relayUrl: string, reason: string) => void
  /** default: every read relay */
  relays?: string[]
}

export interface PoolSubscription {
  readonly id: string
  close(): void
}

export interface FetchOptions {
  relays?: string[]
  timeoutMs?: number
}

export interface RelayPool {
  status(): RelayStatus[]
  /** resolves once no relay is still making its current connection attempt (or at the timeout) */
  settle(timeoutMs?: number): Promise<RelayStatus[]>
  publish(event: NostrEvent, options?: PublishOptions): Promise<PublishReport>
  /** `filters` may be a function: it is called at every (re)subscription, so `since` can move */
  subscribe(filters: Filter[] | (() => Filter[]), options: SubscribeOptions): PoolSubscription
  /** stored events from every target relay, until each sent EOSE or the timeout */
  fetchEvents(filters: Filter[], options?: FetchOptions): Promise<NostrEvent[]>
  /** adds a relay (or changes its markers); returns its normalised URL */
  addRelay(entry: RelayEntry): string
  removeRelay(url: string): boolean
  close(): Promise<void>
}

export type RelayPoolErrorCode = 'pool/bad-relay-url' | 'pool/bad-proxy' | 'pool/closed'

export class RelayPoolError extends CodedError<RelayPoolErrorCode> {}

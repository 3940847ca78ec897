// What the bench tells a load-client process (bench/service-load.ts) and what it hears
// back over the IPC channel.
import type { LatencySummary } from './stats.js'

export const TRANSPORTS = ['rpc', 'nip04', 'nip17'] as const
export type Transport = (typeof TRANSPORTS)[number]

/** Open loop: requests leave on a fixed schedule whatever the replies do. */
export interface RateMode {
  kind: 'rate'
  ratePerSec: number
  warmupSec: number
  durationSec: number
}

/** Closed loop: `concurrency` senders, each waiting for its reply before the next request. */
export interface ClosedMode {
  kind: 'closed'
  concurrency: number
  warmupCount: number
  /** measured requests; the phase also ends at maxSec */
  count: number
  maxSec: number
  /**
   * Build and sign the measured requests before the phase's clock starts, so the load
   * client's own cryptography does not compete with the service for the cores while the
   * service is measured. Each sender then sends exactly its share of `count`.
   */
  presign: boolean
}

export interface LoadConfig {
  relay: string
  /** hex pubkey of the service */
  service: string
  transport: Transport
  mode: RateMode | ClosedMode
  /** distinct sender keys the requests rotate over */
  senders: number
  /** after the last request: wait this long at most for outstanding replies */
  drainSec: number
  /** and give up earlier when no reply came for this long */
  stallSec: number
  /** a closed-loop sender gives up on one request after this long and sends the next */
  replyTimeoutSec: number
  /** the simulator's root certificate, to verify one reply's tee_root end to end */
  rootPem: string
  /** answered requests between progress messages (0: none) */
  progressEvery: number
}

export interface LoadResult {
  transport: Transport
  mode: 'rate' | 'closed'
  warmup: { sent: number; answered: number }
  /** requests of the measured phase */
  sent: number
  answered: number
  /** no reply by the end of the drain */
  lost: number
  /** the relay refused the request (OK false) */
  refusedByRelay: number
  /** replies that are not "pong" (rate limited, errors) */
  errorReplies: number
  /** replies that matched no request of ours */
  unmatched: number
  /** first request sent → last reply received */
  durationSec: number
  /** seconds spent sending (open loop: the schedule) */
  sendSec: number
  offeredPerSec: number
  answeredPerSec: number
  latencyMs: LatencySummary
  /** one reply's tee_root, verified by nec01's verifyTeeRoot */
  teeRoot: { valid: boolean; reason: string | null } | null
  /** CPU seconds this client used, whole run (warm-up and unwrapping included) */
  cpuSec: number
}

export type LoadMessage =
  | { type: 'progress'; sent: number; answered: number; elapsedSec: number }
  | { type: 'done'; result: LoadResult }
  | { type: 'error'; message: string }

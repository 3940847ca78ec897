// The service's attestation: binds the identity into the NSM, turns attestation documents
// into kind:23793 root events, and keeps a valid one at hand. Fail closed: `current()` is
// null whenever the root is expired or was never verified, and nothing is signed then.
import { sha256 } from '@noble/hashes/sha2.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { verifyAttestation } from '../../nec01/attestation.js'
import { buildRootEvent, verifyRootEvent } from '../../nec01/event.js'
import type { AttestationInfo, NostrEvent, VerifyResult } from '../../nec01/types.js'
import type { Nsm } from '../nsm/types.js'
import type { Identity } from './identity.js'
import type { Logger } from '../log.js'
import { errorText } from '../../nec01/errors.js'

/** PCR16 is the first PCR an enclave application may extend and lock (NSM spec). */
export const IDENTITY_PCR = 16

export interface RootState {
  event: NostrEvent
  /** JSON.stringify(event): the value of every tee_root tag */
  teeRoot: string
  attestation: AttestationInfo
  /** unix seconds: the expiration tag, which is the leaf certificate's notAfter */
  expiresAt: number
  /** unix seconds: the leaf certificate's notBefore */
  notBefore: number
  /** unix seconds */
  refreshedAt: number
}

export interface RootKeeperOptions {
  nsm: Nsm
  identity: Identity
  t: 'prod' | 'dev'
  /** trust root for the self-check; undefined = the pinned AWS root */
  trustRoot?: Uint8Array
  /** our own boot PCRs 0..2 (hex), so the self-check pins exactly this image */
  expectedPcrs: Record<number, string>
  /** refresh this long before expiry (seconds) */
  marginSec: number
  /** a debug-mode module: the self-check tolerates only the `debug` failure, and t is dev */
  debug: boolean
  log: Logger
  /** clock in milliseconds (tests) */
  now?: () => number
  onRotate?: (state: RootState) => void
}

export interface RootKeeper {
  /** the valid root right now, or null (expired, never made): never sign without one */
  current(): RootState | null
  /** attest, build, sign and self-verify a new root event */
  refresh(): Promise<RootState>
  /** refresh now and keep refreshing before expiry; a failure is logged and retried with backoff */
  start(): Promise<void>
  /** a fresh document showed a leaf other than the current root's: rotate early */
  leafSeen(attestation: AttestationInfo): void
  stop(): void
}

/** Binds the identity into PCR16: extend with SHA256(pubkey), then lock (before any attestation). */
export async function bindIdentityPcr(nsm: Nsm, identity: Identity): Promise<Uint8Array> {
  const value = await nsm.extendPcr(IDENTITY_PCR, sha256(hexToBytes(identity.pubkey)))
  await nsm.lockPcr(IDENTITY_PCR)
  return value
}

/** Longest wait between polls while the NSM keeps returning the leaf of the current root. */
const POLL_INTERVAL_MS = 60_000
/** Polls never come closer than this, whatever the leaf's lifetime. */
const MIN_POLL_INTERVAL_MS = 250
const RETRY_BASE_MS = 1_000
const RETRY_CAP_MS = 60_000

function sameLeaf(a: RootState, b: RootState): boolean {
  return a.notBefore === b.notBefore && a.expiresAt === b.expiresAt
}

/** The keeper's memory, shared by the steps below. */
interface Keeper {
  opts: RootKeeperOptions
  nowMs: () => number
  state: RootState | null
  timer: NodeJS.Timeout | null
  /** consecutive failed refreshes: the backoff's exponent */
  failures: number
  stopped: boolean
  /** the refresh under way: concurrent callers share it */
  inflight: Promise<RootState> | null
}

export function createRootKeeper(opts: RootKeeperOptions): RootKeeper {
  const k: Keeper = { opts, nowMs: opts.now ?? Date.now, state: null, timer: null, failures: 0, stopped: false, inflight: null }
  return {
    current() {
      if (k.state === null) return null
      const now = Math.floor(k.nowMs() / 1000)
      return now >= k.state.notBefore && now < k.state.expiresAt ? k.state : null
    },
    refresh: () => refresh(k),
    async start() {
      k.stopped = false
      await cycle(k)
    },
    leafSeen(attestation) {
      if (k.state !== null && attestation.certificate.notAfter !== k.state.attestation.certificate.notAfter) {
        opts.log.info('leaf certificate changed; refreshing the root event', {})
        schedule(k, 0)
      }
    },
    stop() {
      k.stopped = true
      if (k.timer !== null) clearTimeout(k.timer)
      k.timer = null
    },
  }
}

function schedule(k: Keeper, delayMs: number): void {
  if (k.stopped) return
  if (k.timer !== null) clearTimeout(k.timer)
  k.timer = setTimeout(() => {
    k.timer = null
    void cycle(k)
  }, Math.max(0, delayMs))
  k.timer.unref()
}

/** One refresh, then the next one scheduled: before expiry on success, with backoff on failure. */
async function cycle(k: Keeper): Promise<void> {
  try {
    const before = k.state
    const next = await refresh(k)
    const untilExpiry = Math.max(0, next.expiresAt * 1000 - k.nowMs())
    if (before !== null && sameLeaf(next, before)) {
      // The NSM has not rotated its leaf yet: poll, and never sleep past the expiry.
      schedule(k, Math.min(pollInterval(next), untilExpiry))
    } else {
      const due = (next.expiresAt - k.opts.marginSec) * 1000 - k.nowMs()
      schedule(k, Math.min(Math.max(due, pollInterval(next)), untilExpiry))
    }
  } catch (err) {
    k.failures++
    const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(k.failures - 1, 16))
    k.opts.log.error('attestation refresh failed', { error: errorText(err), retry_ms: delay, failures: k.failures })
    schedule(k, delay)
  }
}

// A minute between polls suits 3-hour leaves; a short leaf (the simulator's
// --leaf-lifetime) would expire between two such polls, so the wait shrinks with it.
function pollInterval(s: RootState): number {
  const lifetimeMs = (s.expiresAt - s.notBefore) * 1000
  return Math.max(MIN_POLL_INTERVAL_MS, Math.min(POLL_INTERVAL_MS, Math.floor(lifetimeMs / 10)))
}

function refresh(k: Keeper): Promise<RootState> {
  if (k.inflight !== null) return k.inflight
  const { opts } = k
  k.inflight = makeRoot(opts, k.nowMs)
    .then((next) => {
      k.failures = 0
      // A document on the leaf we already use proves nothing new: keep the root that
      // every carrier so far repeats, and do not republish the announcements for it.
      if (k.state !== null && sameLeaf(next, k.state)) {
        opts.log.debug('attestation unchanged: same leaf certificate', { root_id: k.state.event.id, expires_at: k.state.expiresAt })
        return k.state
      }
      k.state = next
      opts.log.info('attestation refreshed', {
        root_id: next.event.id,
        expires_at: next.expiresAt,
        t: opts.t,
      })
      opts.onRotate?.(next)
      return next
    })
    .finally(() => {
      k.inflight = null
    })
  return k.inflight
}

/** Attest, build and sign a root event, and check both as a client would (fail closed). */
async function makeRoot(opts: RootKeeperOptions, nowMs: () => number): Promise<RootState> {
  const publicKey = hexToBytes(opts.identity.pubkey)
  const doc = await opts.nsm.attest({ publicKey })
  // Taken after the document is made, so its timestamp never lies in the check's future.
  const now = Math.floor(nowMs() / 1000)
  const verifyOptions = {
    now,
    ...(opts.trustRoot === undefined ? {} : { root: opts.trustRoot }),
    expectedPcrs: opts.expectedPcrs,
  }
  const att = await verifyAttestation(doc, { ...verifyOptions, publicKey })
  if (att.attestation === null || !selfCheckPasses(opts.debug, att)) {
    throw new Error(`own attestation failed verification: ${att.reason ?? 'unknown'}: ${att.checks.find((c) => !c.ok)?.detail ?? ''}`)
  }
  // The verifier only reports the PCR16 binding; for our own root it is a requirement.
  if (att.attestation.pcr16_binds_public_key !== true) {
    throw new Error(`own attestation does not bind the key in PCR16 (pcr16_binds_public_key: ${String(att.attestation.pcr16_binds_public_key)})`)
  }
  // The expiration is the leaf certificate's notAfter, never "now + lifetime": the NSM
  // reuses a leaf across documents, so it may expire sooner than a fresh one would.
  const expiration = att.attestation.certificate.notAfter
  const event = opts.identity.sign(buildRootEvent({ attestation: doc, t: opts.t, expiration, created_at: now }))
  const check = await verifyRootEvent(event, { ...verifyOptions, expect: opts.t })
  if (!selfCheckPasses(opts.debug, check)) {
    throw new Error(`own root event failed verification: ${check.reason ?? 'unknown'}: ${check.checks.find((c) => !c.ok)?.detail ?? ''}`)
  }
  return {
    event,
    teeRoot: JSON.stringify(event),
    attestation: att.attestation,
    expiresAt: expiration,
    notBefore: att.attestation.certificate.notBefore,
    refreshedAt: now,
  }
}

function selfCheckPasses(debug: boolean, result: VerifyResult): boolean {
  if (result.valid) return true
  // A debug enclave can never produce a root any client accepts; tolerate exactly that
  // failure so developers still see the service run, and nothing else.
  return debug && result.checks.every((c) => c.ok || c.id === 'debug')
}

// OK replies and NIP-42 AUTH on one connection: waiting for a relay's OK to an event we sent,
// and answering its challenge through the signer callback (the key never enters the pool).
import { makeAuthEvent } from 'nostr-tools/nip42'
import { isEvent } from './pool-relay.js'
import type { AuthOutcome, Conn, OkReply, OkWaiter, PoolContext, RelayRec } from './pool-context.js'
import { errorText } from '../../nec01/errors.js'
import { notifyStatus, recordError, withDeadline } from './pool-state.js'
import type { NostrEvent, SignAuth } from './pool-types.js'

/** how long an auth-required refusal waits for a challenge the relay has not sent yet */
const CHALLENGE_WAIT_MS = 3_000

/** The relay's OK for `id`: every sender waiting on it gets the reply. */
export function onOk(conn: Conn, id: string, ok: boolean, message: string): void {
  const waiters = conn.pending.get(id)
  if (!waiters) return
  conn.pending.delete(id)
  for (const w of waiters) w.done(ok ? { kind: 'ok', message } : { kind: 'rejected', message })
}

function pendingFor(conn: Conn, id: string): Set<OkWaiter> {
  let waiters = conn.pending.get(id)
  if (!waiters) {
    waiters = new Set()
    conn.pending.set(id, waiters)
  }
  return waiters
}

/** Sends an EVENT or AUTH frame and waits for the OK with that event id, up to the deadline. */
export function sendAndAwaitOk(conn: Conn, id: string, frame: string, deadline: number): Promise<OkReply> {
  const relay = conn.relay
  if (conn.ended || !conn.connected || relay === null) return Promise.resolve({ kind: 'closed' })
  const remaining = deadline - Date.now()
  if (remaining <= 0) return Promise.resolve({ kind: 'timeout' })
  return new Promise((resolve) => {
    const set = pendingFor(conn, id)
    const waiter: OkWaiter = {
      done: (reply) => {
        clearTimeout(timer)
        set.delete(waiter)
        if (set.size === 0 && conn.pending.get(id) === set) conn.pending.delete(id)
        resolve(reply)
      },
    }
    const timer = setTimeout(() => waiter.done({ kind: 'timeout' }), remaining)
    set.add(waiter)
    relay.send(frame).catch(() => waiter.done({ kind: 'closed' }))
  })
}

export function onChallenge(ctx: PoolContext, rec: RelayRec, conn: Conn, challenge: string): void {
  if (conn.ended) return
  if (challenge !== conn.challenge && conn.failedChallenge !== null && conn.failedChallenge !== challenge) {
    // A fresh challenge after a failed attempt earns one more try.
    conn.authAttempt = null
    conn.failedChallenge = null
  }
  conn.challenge = challenge
  for (const wake of [...conn.challengeWaiters]) wake()
  if (ctx.signAuth && ctx.cfg.authOnChallenge && !conn.authed && conn.authAttempt === null) {
    void authenticate(ctx, rec, conn, Date.now() + ctx.cfg.publishTimeoutMs)
  }
}

function waitChallenge(conn: Conn, deadline: number): Promise<void> {
  if (conn.challenge !== null || conn.ended) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      conn.challengeWaiters.delete(done)
      resolve()
    }
    conn.challengeWaiters.add(done)
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()))
  })
}

/** One AUTH per challenge; callers share it and each gives up at its own deadline. */
export function authenticate(ctx: PoolContext, rec: RelayRec, conn: Conn, deadline: number): Promise<AuthOutcome> {
  if (conn.authed) return Promise.resolve({ ok: true })
  const signAuth = ctx.signAuth
  if (!signAuth) return Promise.resolve({ ok: false, message: 'no signer for NIP-42 AUTH' })
  if (conn.authAttempt === null) {
    const attempt = runAuth(ctx, rec, conn, signAuth, deadline)
    conn.authAttempt = attempt
    // A relay's refusal stands for the connection (no AUTH loops); our own signer failing
    // (the service has no attestation yet) says nothing about the relay, so the next
    // auth-required may try again with the same challenge.
    void attempt.then((outcome) => {
      if (!outcome.ok && outcome.local === true && conn.authAttempt === attempt) {
        conn.authAttempt = null
        conn.failedChallenge = null
      }
    })
  }
  return withDeadline(conn.authAttempt, deadline, { ok: false, message: 'AUTH timed out' })
}

async function runAuth(ctx: PoolContext, rec: RelayRec, conn: Conn, sign: SignAuth, deadline: number): Promise<AuthOutcome> {
  await waitChallenge(conn, Math.min(deadline, Date.now() + CHALLENGE_WAIT_MS))
  const challenge = conn.challenge
  const relay = conn.relay
  if (conn.ended || relay === null) return { ok: false, message: 'connection closed' }
  if (challenge === null) return authFailed(ctx, rec, conn, null, 'the relay sent no AUTH challenge')
  let event: NostrEvent
  try {
    event = await sign(makeAuthEvent(relay.url, challenge))
  } catch (err) {
    return { ...authFailed(ctx, rec, conn, challenge, `signer failed: ${errorText(err)}`), local: true }
  }
  if (!isEvent(event)) return authFailed(ctx, rec, conn, challenge, 'signer returned a malformed event')
  const reply = await sendAndAwaitOk(conn, event.id, `["AUTH",${JSON.stringify(event)}]`, deadline)
  if (reply.kind !== 'ok') return authFailed(ctx, rec, conn, challenge, describeReply(reply))
  conn.authed = true
  conn.authPubkey = event.pubkey
  ctx.log.info('relay authenticated', { relay: rec.entry.url, pubkey: event.pubkey })
  notifyStatus(ctx, rec)
  return { ok: true }
}

function authFailed(ctx: PoolContext, rec: RelayRec, conn: Conn, challenge: string | null, message: string): { ok: false; message: string } {
  conn.failedChallenge = challenge ?? ''
  if (!conn.ended) recordError(rec, `AUTH failed: ${message}`)
  ctx.log.warn('relay AUTH failed', { relay: rec.entry.url, error: message })
  return { ok: false, message }
}

export function describeReply(reply: OkReply): string {
  switch (reply.kind) {
    case 'ok':
      return 'accepted'
    case 'rejected':
      return reply.message || 'rejected without a reason'
    case 'timeout':
      return 'no OK in time'
    case 'closed':
      return 'connection closed'
  }
}

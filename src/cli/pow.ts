// NIP-13 proof of work for a request to a service that asks strangers for it (serve --pow N,
// announced as ["pow", "N"] in its kind 13793 announcement): how many bits (--pow, else the
// announcement), and the mining, in a worker so that a long one can say so on stderr.
import { Worker } from 'node:worker_threads'
import { getPow } from 'nostr-tools/nip13'
import type { EventTemplate } from 'nostr-tools/pure'
import { ANNOUNCEMENT_KIND } from '../../nec01/kinds.js'
import type { NostrEvent } from '../../nec01/types.js'
import { MAX_POW_BITS } from '../service/limits.js'
import type { ClientSession } from './client.js'
import { CliError } from './exit.js'

/** How long the announcement may take to arrive: it only tells how much work to do. */
const ANNOUNCEMENT_TIMEOUT_MS = 5000
/** A mining that takes longer than this says so, once. */
const PROGRESS_AFTER_MS = 1000

export const POW_USAGE = `  --pow N            NIP-13 bits of proof of work to put on the request (0 to ${MAX_POW_BITS});
                     default: what the service's announcement asks for`

/**
 * The bits to mine and where the number came from; `unknown`: no --pow and no announcement
 * could be read, so none was mined and a silent service may be one that wants some.
 */
export interface PowChoice {
  bits: number
  from: 'flag' | 'announcement' | 'unknown'
}

/** --pow N, checked; undefined without the flag. Throws CliError. */
export function parsePowFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!/^[0-9]+$/.test(value) || Number(value) > MAX_POW_BITS) throw new CliError(`--pow: expected a whole number from 0 to ${MAX_POW_BITS}, got '${value.slice(0, 40)}'`)
  return Number(value)
}

/** The announcement's ["pow", "N"], at most MAX_POW_BITS (more is no service of ours: never hours of mining); no tag: 0. */
export function announcedPow(announcement: NostrEvent): number {
  const tag = announcement.tags.find((t) => t[0] === 'pow')
  if (tag === undefined || !/^[0-9]{1,3}$/.test(tag[1] ?? '')) return 0
  return Math.min(Number(tag[1]), MAX_POW_BITS)
}

/** --pow when given, else what the service's latest announcement (kind 13793) asks for. */
export async function choosePow(session: ClientSession, service: string, flag: number | undefined, timeoutSec: number): Promise<PowChoice> {
  if (flag !== undefined) return { bits: flag, from: 'flag' }
  const timeoutMs = Math.min(ANNOUNCEMENT_TIMEOUT_MS, timeoutSec * 1000)
  // the pool has checked each signature; a relay may still hand over another author's event
  const found = (await session.pool.fetchEvents([{ kinds: [ANNOUNCEMENT_KIND], authors: [service] }], { timeoutMs })).filter((e) => e.pubkey === service)
  const latest = found.sort((a, b) => b.created_at - a.created_at)[0]
  return latest === undefined ? { bits: 0, from: 'unknown' } : { bits: announcedPow(latest), from: 'announcement' }
}

/** Runs minePow in a worker; resolves to the mined template (a nonce tag, created_at now). */
async function mineInWorker(template: EventTemplate, pubkey: string, bits: number): Promise<EventTemplate> {
  const worker = new Worker(new URL('./pow-worker.js', import.meta.url), { workerData: { event: { ...template, tags: template.tags.map((t) => [...t]), pubkey }, bits } })
  try {
    const mined = await new Promise<EventTemplate>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
      worker.once('exit', (code) => reject(new Error(`the proof-of-work worker stopped (exit ${code})`)))
    })
    return { kind: mined.kind, created_at: mined.created_at, tags: mined.tags, content: mined.content }
  } finally {
    await worker.terminate()
  }
}

/**
 * `template` (to be signed by `pubkey`) with `bits` of proof of work; itself for 0 bits.
 * A mining past PROGRESS_AFTER_MS says so on stderr, and how long it took.
 */
export async function mineRequest(template: EventTemplate, pubkey: string, bits: number): Promise<EventTemplate> {
  if (bits === 0) return template
  const started = Date.now()
  let said = false
  const progress = setTimeout(() => {
    said = true
    console.error(`mining ${bits} bits of proof of work (NIP-13) for the service: about 2^${bits} hashes...`)
  }, PROGRESS_AFTER_MS)
  try {
    const mined = await mineInWorker(template, pubkey, bits)
    if (said) console.error(`mined in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    return mined
  } finally {
    clearTimeout(progress)
  }
}

/** Fails closed: a signed request without the bits it was mined for is not sent. */
export function checkPow(event: NostrEvent, bits: number): NostrEvent {
  if (getPow(event.id) < bits) throw new Error(`the request carries ${getPow(event.id)} bits of proof of work, not the ${bits} mined`)
  return event
}

/** For the no-reply message: what to try when no announcement said whether work is wanted. */
export function powHint(choice: PowChoice): string | null {
  return choice.from === 'unknown' ? 'Its announcement could not be read, so the request carries no proof of work: the service may require some; try --pow N' : null
}

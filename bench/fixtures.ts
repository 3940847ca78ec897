// The real attestation documents the verifier figures are taken on (../shared/fixtures, see
// its README): the noauth-enclaved document and every non-debug Nitro document, each with
// a validation time inside its certificates' common window (they are all expired today).
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const FIXTURES_DIR = resolve(process.env.NEC01_FIXTURES ?? join(process.cwd(), '..', 'shared', 'fixtures'))

/** The headline document: the real noauth-enclaved attestation. */
export const NOAUTH_DOC = 'noauth-enclaved-README-ca61c6e-attestation.b64'
/** Its validity window (fixtures README): 2025-04-01T13:16:05Z .. 16:16:08Z. */
const NOAUTH_WINDOW: [string, string] = ['2025-04-01T13:16:05Z', '2025-04-01T16:16:08Z']
/** What a fresh process verifies first, untimed, before the headline document (bench/fresh.ts). */
export const FRESH_WARMUP_DOC = 'marlin-2024-12-13-nondebug'
/** The two documents that share one leaf certificate: a new document on a known chain. */
export const SHARED_LEAF_PAIR = ['marlin-2024-08-07a-nondebug', 'marlin-2024-08-07b-nondebug'] as const

export interface BenchDoc {
  name: string
  bytes: Uint8Array
  base64: string
  /** validation time inside the window, unix milliseconds (the window's midpoint) */
  atMs: number
  /** one day after the window: every verifier must reject the document then */
  afterMs: number
}

interface NitroMeta {
  name: string
  debugAllZeroPCR012: boolean
  es384Verifies: boolean
  chainValidWindowUTC: [string, string]
}

const DAY_MS = 24 * 3600 * 1000

function doc(name: string, bytes: Uint8Array, window: [string, string]): BenchDoc {
  const from = Date.parse(window[0])
  const until = Date.parse(window[1])
  return { name, bytes, base64: Buffer.from(bytes).toString('base64'), atMs: Math.floor((from + until) / 2), afterMs: until + DAY_MS }
}

export function noauthDoc(): BenchDoc {
  const text = readFileSync(join(FIXTURES_DIR, 'nec01', NOAUTH_DOC), 'utf8').trim()
  return doc('noauth-enclaved ca61c6e', new Uint8Array(Buffer.from(text, 'base64')), NOAUTH_WINDOW)
}

/** Every document that must verify: not debug mode, signature intact. */
export function nitroDocs(): BenchDoc[] {
  const dir = join(FIXTURES_DIR, 'nitro')
  const metas = JSON.parse(readFileSync(join(dir, 'fixtures.json'), 'utf8')) as NitroMeta[]
  return metas
    .filter((m) => !m.debugAllZeroPCR012 && m.es384Verifies)
    .map((m) => doc(m.name, new Uint8Array(readFileSync(join(dir, `${m.name}.cose`))), m.chainValidWindowUTC))
}

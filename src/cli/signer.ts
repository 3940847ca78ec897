// Who signs what a maintainer, builder or launcher publishes: a local key (--sec or
// NEC01_SECRET, as dm and attest take it) or a NIP-46 remote signer (--bunker bunker://…),
// so nobody has to paste a key into a shell. The secret is never printed.
import { AbstractSimplePool } from 'nostr-tools/abstract-pool'
import { BunkerSigner, parseBunkerInput, type BunkerPointer } from 'nostr-tools/nip46'
import { generateSecretKey, verifyEvent, type EventTemplate } from 'nostr-tools/pure'
import WebSocket from 'ws'
import type { NostrEvent } from '../../nec01/types.js'
import { clientIdentity } from './client.js'
import { CliError, EXIT_INVALID } from './exit.js'
import { errorText } from '../../nec01/errors.js'

export const SIGNER_ARG_OPTIONS = {
  sec: { type: 'string' },
  bunker: { type: 'string' },
  'bunker-timeout': { type: 'string' },
} as const

export const SIGNER_USAGE = `signing key (one of):
  --sec KEY              nsec or hex; prefer NEC01_SECRET, which stays out of the shell history
  --bunker URL           a NIP-46 remote signer: bunker://<pubkey>?relay=wss://…&secret=…
  --bunker-timeout S     seconds to wait for the remote signer, approvals included (default 120)`

export interface SignerValues {
  sec?: string
  bunker?: string
  'bunker-timeout'?: string
}

export interface EventSigner {
  /** hex pubkey of the key that signs */
  pubkey: string
  /** 'local' or 'bunker', for messages */
  kind: 'local' | 'bunker'
  sign(template: EventTemplate): Promise<NostrEvent>
  close(): Promise<void>
}

const DEFAULT_BUNKER_TIMEOUT_SEC = 120
const CONNECT_TIMEOUT_MS = 10_000

function localSigner(secret: string): EventSigner {
  const { identity } = clientIdentity(secret)
  return { pubkey: identity.pubkey, kind: 'local', sign: async (t) => identity.sign(t), close: async () => undefined }
}

/** The remote signer's answer within the deadline, or a one-line error (exit 1). */
async function withDeadline<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CliError(`the remote signer did not answer ${what} within ${timeoutMs / 1000} s`, EXIT_INVALID)), timeoutMs)
  })
  try {
    return await Promise.race([promise, deadline])
  } catch (err) {
    if (err instanceof CliError) throw err
    // nip46 rejects with the signer's error string, or an Error
    throw new CliError(`the remote signer refused ${what}: ${errorText(err).slice(0, 200)}`, EXIT_INVALID)
  } finally {
    clearTimeout(timer)
  }
}

async function bunkerPointer(url: string): Promise<BunkerPointer> {
  // bunker:// only: a NIP-05 name would send this command to a web server to look it up
  const pointer = url.startsWith('bunker://') ? await parseBunkerInput(url) : null
  if (pointer === null) throw new CliError('--bunker: expected bunker://<64-hex pubkey>?relay=wss://…[&secret=…]')
  if (pointer.relays.length === 0) throw new CliError('--bunker: the URL names no relay (relay=wss://…)')
  return pointer
}

async function bunkerSigner(url: string, timeoutMs: number): Promise<EventSigner> {
  const pointer = await bunkerPointer(url)
  const pool = new AbstractSimplePool({
    verifyEvent,
    // Node 20 has no global WebSocket
    websocketImplementation: WebSocket as unknown as typeof globalThis.WebSocket,
    maxWaitForConnection: CONNECT_TIMEOUT_MS,
  })
  // a fresh client key for this session: the remote signer holds the real one
  const signer = BunkerSigner.fromBunker(generateSecretKey(), pointer, { pool, onauth: (authUrl) => console.error(`nec01: the remote signer asks you to approve at ${authUrl}`) })
  const close = async (): Promise<void> => {
    await signer.close()
    pool.destroy()
  }
  try {
    await withDeadline('connect', signer.connect(), timeoutMs)
    const pubkey = await withDeadline('get_public_key', signer.getPublicKey(), timeoutMs)
    if (!/^[0-9a-f]{64}$/.test(pubkey)) throw new CliError('the remote signer answered get_public_key with no pubkey', EXIT_INVALID)
    return { pubkey, kind: 'bunker', sign: (t) => withDeadline('sign_event', signer.signEvent(t), timeoutMs), close }
  } catch (err) {
    await close()
    throw err
  }
}

/** The signer the flags name; exactly one of --sec/NEC01_SECRET and --bunker. Throws CliError. */
export async function openSigner(values: SignerValues, env: NodeJS.ProcessEnv = process.env): Promise<EventSigner> {
  const secret = values.sec ?? (env.NEC01_SECRET === '' ? undefined : env.NEC01_SECRET)
  if (values.bunker !== undefined && values.sec !== undefined) throw new CliError('give --sec or --bunker, not both')
  if (values.bunker !== undefined) {
    const raw = values['bunker-timeout']
    const seconds = raw === undefined ? DEFAULT_BUNKER_TIMEOUT_SEC : Number(raw)
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new CliError(`--bunker-timeout: expected seconds, more than 0 and at most 3600, got '${raw ?? ''}'`)
    return bunkerSigner(values.bunker, seconds * 1000)
  }
  if (secret === undefined) throw new CliError('no signing key: give --bunker bunker://…, or set NEC01_SECRET (or --sec)')
  return localSigner(secret)
}

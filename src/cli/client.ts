// What the client commands (dm, attest, fetch) share: who the service is, which key we
// speak with, which relays, and waiting for one matching event with a deadline.
import { decode as nip19Decode } from 'nostr-tools/nip19'
import { generateSecretKey } from 'nostr-tools/pure'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { Filter } from 'nostr-tools/filter'
import type { NostrEvent } from '../../nec01/types.js'
import { createLogger } from '../log.js'
import { ConfigError, DEFAULT_RELAYS_FILE, loadRelayConfig, relaysFromUrls, type RelayEntry } from '../relays/config.js'
import { createRelayPool, type RelayPool } from '../relays/pool.js'
import { identityFromSecret, type Identity } from '../service/identity.js'
import { CliError, EXIT_INVALID } from './exit.js'

/** npub or 64-hex → hex pubkey */
export function parsePubkey(text: string): string {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return text.toLowerCase()
  if (text.startsWith('npub1')) {
    try {
      const decoded = nip19Decode(text)
      if (decoded.type === 'npub') return decoded.data
    } catch {
      // fall through to the error below
    }
  }
  throw new CliError(`'${text.slice(0, 80)}' is neither an npub nor a 64-character hex pubkey`)
}

/** --sec / NEC01_SECRET (nsec or hex), else a fresh throwaway key. */
export function clientIdentity(secret: string | undefined): { identity: Identity; throwaway: boolean } {
  if (secret === undefined || secret === '') return { identity: identityFromSecret(generateSecretKey()), throwaway: true }
  let bytes: Uint8Array | null = null
  if (/^[0-9a-fA-F]{64}$/.test(secret)) bytes = hexToBytes(secret.toLowerCase())
  else if (secret.startsWith('nsec1')) {
    try {
      const decoded = nip19Decode(secret)
      if (decoded.type === 'nsec') bytes = decoded.data
    } catch {
      bytes = null
    }
  }
  // Never echo the value: it is a secret key.
  if (bytes === null) throw new CliError('the secret key (--sec or NEC01_SECRET) is neither an nsec nor 64 hex characters')
  return { identity: identityFromSecret(bytes), throwaway: false }
}

export function clientRelays(urls: string[] | undefined, file: string | undefined): RelayEntry[] {
  try {
    if (urls !== undefined && urls.length > 0) return relaysFromUrls(urls).relays
    return loadRelayConfig(file ?? DEFAULT_RELAYS_FILE).relays
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message)
    throw err
  }
}

export interface ClientSession {
  identity: Identity
  pool: RelayPool
  /** resolves with the first event matching `filter` and `accept`, or null at the deadline */
  waitFor(filter: Filter, accept: (event: NostrEvent) => boolean, timeoutMs: number): Promise<NostrEvent | null>
  close(): Promise<void>
}

export function openSession(identity: Identity, relays: RelayEntry[]): ClientSession {
  const pool = createRelayPool({
    relays,
    // Quiet unless asked: the user reads the command's own output.
    logger: createLogger({ part: 'client' }, { level: process.env.NEC01_LOG_LEVEL === undefined ? 'error' : undefined }),
    signAuth: async (template) => identity.sign(template),
  })
  // Waits still open when the session closes (the request failed to send) end with it,
  // so their timers do not keep the process alive until the deadline.
  const open = new Set<(event: NostrEvent | null) => void>()
  return {
    identity,
    pool,
    waitFor(filter, accept, timeoutMs) {
      return new Promise((resolve) => {
        let done = false
        const finish = (event: NostrEvent | null): void => {
          if (done) return
          done = true
          open.delete(finish)
          clearTimeout(timer)
          sub.close()
          resolve(event)
        }
        open.add(finish)
        const timer = setTimeout(() => finish(null), timeoutMs)
        const sub = pool.subscribe([filter], {
          onevent: (event) => {
            try {
              if (accept(event)) finish(event)
            } catch {
              // a malformed event is not the reply we wait for
            }
          },
        })
      })
    },
    close: () => {
      for (const finish of [...open]) finish(null)
      return pool.close()
    },
  }
}

/**
 * Publishes a request within the command's timeout. A request that no relay took cannot be
 * answered: say so now, not as a "no reply" after waiting.
 */
export async function sendRequest(session: ClientSession, event: NostrEvent, timeoutMs: number): Promise<void> {
  const report = await session.pool.publish(event, { timeoutMs })
  if (report.some((r) => r.ok)) return
  const why = report.map((r) => `${r.url}: ${r.message}`).join('; ')
  throw new CliError(`no relay accepted the request (${why.slice(0, 300)})`, EXIT_INVALID)
}

/** `also`: one more thing to check, e.g. the proof of work (src/cli/pow.ts powHint). */
export function noReply(timeoutSec: number, also: string | null = null): CliError {
  return new CliError(`no reply within ${timeoutSec} s (is the service running and on these relays?${also === null ? '' : ` ${also}`})`, EXIT_INVALID)
}

export function parseTimeout(value: string | undefined, fallback = 30): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new CliError(`--timeout: expected seconds, more than 0 and at most 3600, got '${value}'`)
  return n
}

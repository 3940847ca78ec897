// NIP-11 relay information document: fetched once per relay so the pool knows the limits
// the relay will enforce (a message over max_message_length is dropped or kills the socket,
// so it is better not sent at all). Uses node:http(s) rather than fetch so the request can
// take the same agent (HTTP CONNECT proxy) as the websocket.
import { request as httpRequest, type Agent, type ClientRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { errorText } from '../../nec01/errors.js'

/** The limits the pool acts on; each present only when the relay states a usable value. */
export interface RelayLimits {
  max_message_length?: number
  max_subscriptions?: number
  max_filters?: number
  auth_required?: boolean
}

export type Nip11ErrorCode = 'nip11/url' | 'nip11/network' | 'nip11/timeout' | 'nip11/http' | 'nip11/too-large' | 'nip11/json'

export type Nip11Result =
  | { ok: true; document: Record<string, unknown>; limits: RelayLimits }
  | { ok: false; code: Nip11ErrorCode; message: string }

export interface Nip11Options {
  timeoutMs?: number
  /** bodies longer than this are abandoned (a relay document is a few KiB) */
  maxBytes?: number
  agent?: Agent
  /** abandons the request (the pool closing) */
  signal?: AbortSignal
}

export const NIP11_DEFAULT_TIMEOUT_MS = 5_000
export const NIP11_DEFAULT_MAX_BYTES = 64 * 1024

/** ws://host/path → http://host/path (same for wss → https), or null for anything else. */
export function nip11Url(relayUrl: string): string | null {
  try {
    const u = new URL(relayUrl)
    if (u.protocol === 'ws:') u.protocol = 'http:'
    else if (u.protocol === 'wss:') u.protocol = 'https:'
    else return null
    return u.toString()
  } catch {
    return null
  }
}

/** Never throws: every failure is a typed result. */
export function fetchRelayInfo(relayUrl: string, options: Nip11Options = {}): Promise<Nip11Result> {
  const url = nip11Url(relayUrl)
  if (url === null) return Promise.resolve(fail('nip11/url', `not a relay URL: ${relayUrl}`))
  const timeoutMs = options.timeoutMs ?? NIP11_DEFAULT_TIMEOUT_MS
  const maxBytes = options.maxBytes ?? NIP11_DEFAULT_MAX_BYTES
  const request = url.startsWith('https:') ? httpsRequest : httpRequest

  return new Promise<Nip11Result>((resolve) => {
    let settled = false
    let req: ClientRequest | undefined
    const finish = (result: Nip11Result): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req?.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => finish(fail('nip11/timeout', `no answer within ${timeoutMs} ms`)), timeoutMs)
    const signal = options.signal
    if (signal?.aborted) {
      finish(fail('nip11/network', 'aborted'))
      return
    }
    signal?.addEventListener('abort', () => finish(fail('nip11/network', 'aborted')), { once: true })
    try {
      req = request(url, {
        method: 'GET',
        headers: { Accept: 'application/nostr+json' },
        ...(options.agent ? { agent: options.agent } : {}),
      })
    } catch (err) {
      finish(fail('nip11/network', errorText(err)))
      return
    }
    req.on('error', (err) => finish(fail('nip11/network', err.message)))
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0
      if (status < 200 || status >= 300) {
        res.resume()
        finish(fail('nip11/http', `HTTP ${status}`))
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBytes) {
          finish(fail('nip11/too-large', `document over ${maxBytes} bytes`))
          return
        }
        chunks.push(chunk)
      })
      res.on('error', (err) => finish(fail('nip11/network', err.message)))
      res.on('end', () => finish(parseRelayInfo(Buffer.concat(chunks).toString('utf8'))))
    })
    req.end()
  })
}

export function parseRelayInfo(text: string): Nip11Result {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return fail('nip11/json', 'not valid JSON')
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('nip11/json', 'not a JSON object')
  const document = doc as Record<string, unknown>
  return { ok: true, document, limits: limitsOf(document) }
}

function limitsOf(document: Record<string, unknown>): RelayLimits {
  const lim = document.limitation
  if (typeof lim !== 'object' || lim === null || Array.isArray(lim)) return {}
  const l = lim as Record<string, unknown>
  const limits: RelayLimits = {}
  // Zero or nonsense is treated as "not stated": acting on it would silence the relay.
  const maxMessage = positiveInt(l.max_message_length)
  if (maxMessage !== undefined) limits.max_message_length = maxMessage
  const maxSubs = positiveInt(l.max_subscriptions)
  if (maxSubs !== undefined) limits.max_subscriptions = maxSubs
  const maxFilters = positiveInt(l.max_filters)
  if (maxFilters !== undefined) limits.max_filters = maxFilters
  if (typeof l.auth_required === 'boolean') limits.auth_required = l.auth_required
  return limits
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined
}

function fail(code: Nip11ErrorCode, message: string): Nip11Result {
  return { ok: false, code, message }
}

// The relay list (relays.json or --relay URL...) and its validation. A broken file must stop
// the service at start with one line naming the file and the problem, never half-start it.
import { FileReadError, packageFile, readBoundedFile } from '../files.js'
import { CodedError, errorText } from '../../nec01/errors.js'

export interface RelayEntry {
  /** normalised ws:// or wss:// URL (see normalizeRelayUrl) */
  url: string
  /** subscribe here (the service reads requests from it) */
  read: boolean
  /** publish here */
  write: boolean
}

export interface RelayConfig {
  relays: RelayEntry[]
}

export type ConfigErrorCode =
  | 'config/unreadable'
  | 'config/too-large'
  | 'config/json'
  | 'config/shape'
  | 'config/url'
  | 'config/duplicate'
  | 'config/no-read'
  | 'config/no-write'

export class ConfigError extends CodedError<ConfigErrorCode> {
  /** the file (or '--relay') the problem is in */
  readonly source: string
  constructor(code: ConfigErrorCode, source: string, detail: string) {
    super(code, oneLine(`${source}: ${detail}`))
    this.source = source
  }
}

/** The default relay list, shipped at the package root. */
export const DEFAULT_RELAYS_FILE = packageFile('relays.json')

/** More relays than this is a mistake, not a configuration: each one is a socket and a reconnect loop. */
export const MAX_RELAYS = 100
const MAX_URL_LENGTH = 2048
/**
 * A full list (100 relays with long URLs) is well under this. Without a bound, a wrong path
 * such as /dev/zero or a log file would hang the start or exhaust memory before any message.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024
const ENTRY_KEYS = new Set(['url', 'read', 'write'])

/**
 * The canonical form of a relay URL, or null when it is not a usable ws:// or wss:// URL.
 * Lowercase scheme and host, default port dropped, no trailing slash on the path, no
 * fragment, so "wss://Relay.Example.com:443/" and "wss://relay.example.com" are one relay.
 */
export function normalizeRelayUrl(input: string): string | null {
  if (input.length === 0 || input.length > MAX_URL_LENGTH || /\s/.test(input)) return null
  let u: URL
  try {
    u = new URL(input)
  } catch {
    return null
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return null
  if (u.hostname === '' || u.username !== '' || u.password !== '' || u.hash !== '') return null
  const path = u.pathname.replace(/\/+$/, '')
  return `${u.protocol}//${u.host}${path}${u.search}`
}

export function parseRelayConfig(text: string, source: string): RelayConfig {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new ConfigError('config/json', source, `not valid JSON: ${errorText(err)}`)
  }
  if (!isPlainObject(doc) || !Array.isArray(doc.relays)) {
    throw new ConfigError('config/shape', source, 'expected an object { "relays": [ ... ] }')
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'relays') throw new ConfigError('config/shape', source, `unknown key ${JSON.stringify(key)}`)
  }
  const list: unknown[] = doc.relays
  if (list.length === 0) throw new ConfigError('config/shape', source, 'relays: the list is empty')
  if (list.length > MAX_RELAYS) {
    throw new ConfigError('config/shape', source, `relays: too many relays (${list.length} > ${MAX_RELAYS})`)
  }
  const relays: RelayEntry[] = []
  const firstIndex = new Map<string, number>()
  list.forEach((item, i) => {
    const at = `relays[${i}]`
    if (!isPlainObject(item)) throw new ConfigError('config/shape', source, `${at}: expected an object`)
    for (const key of Object.keys(item)) {
      if (!ENTRY_KEYS.has(key)) throw new ConfigError('config/shape', source, `${at}: unknown key ${JSON.stringify(key)}`)
    }
    if (typeof item.url !== 'string') throw new ConfigError('config/shape', source, `${at}.url: expected a string`)
    const url = normalizeRelayUrl(item.url)
    if (url === null) {
      throw new ConfigError('config/url', source, `${at}.url: not a ws:// or wss:// URL: ${quote(item.url)}`)
    }
    const read = flag(item.read, `${at}.read`, source)
    const write = flag(item.write, `${at}.write`, source)
    if (!read && !write) throw new ConfigError('config/shape', source, `${at}: neither read nor write`)
    const prev = firstIndex.get(url)
    if (prev !== undefined) {
      throw new ConfigError('config/duplicate', source, `${at}.url: duplicate of relays[${prev}] (${url})`)
    }
    firstIndex.set(url, i)
    relays.push({ url, read, write })
  })
  if (!relays.some((r) => r.read)) throw new ConfigError('config/no-read', source, 'relays: no relay has "read": true')
  if (!relays.some((r) => r.write)) throw new ConfigError('config/no-write', source, 'relays: no relay has "write": true')
  return { relays }
}

export function loadRelayConfig(path: string): RelayConfig {
  let bytes: Buffer
  try {
    bytes = readBoundedFile(path, MAX_CONFIG_BYTES)
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err
    throw new ConfigError(err.code === 'too-large' ? 'config/too-large' : 'config/unreadable', path, err.code === 'too-large' ? `${err.reason}: not a relay list` : err.reason)
  }
  return parseRelayConfig(bytes.toString('utf8'), path)
}

/** `--relay URL...`: every relay is read and write; repeats collapse into one entry. */
export function relaysFromUrls(urls: string[], source = '--relay'): RelayConfig {
  if (urls.length === 0) throw new ConfigError('config/shape', source, 'no relay given')
  if (urls.length > MAX_RELAYS) throw new ConfigError('config/shape', source, `too many relays (${urls.length} > ${MAX_RELAYS})`)
  const seen = new Set<string>()
  const relays: RelayEntry[] = []
  for (const raw of urls) {
    const url = normalizeRelayUrl(raw)
    if (url === null) throw new ConfigError('config/url', source, `not a ws:// or wss:// URL: ${quote(raw)}`)
    if (seen.has(url)) continue
    seen.add(url)
    relays.push({ url, read: true, write: true })
  }
  return { relays }
}

function flag(value: unknown, at: string, source: string): boolean {
  // An omitted marker means both, as in NIP-65 relay lists.
  if (value === undefined) return true
  if (typeof value !== 'boolean') throw new ConfigError('config/shape', source, `${at}: expected true or false`)
  return value
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// Quoted and cut short, so a hostile or binary value cannot flood the one-line message.
function quote(s: string): string {
  const q = JSON.stringify(s)
  return q.length > 120 ? q.slice(0, 117) + '..."' : q
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+\s*/g, ' ')
}

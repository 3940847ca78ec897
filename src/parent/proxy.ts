// The parent instance's only way out for the enclave: an HTTP CONNECT proxy that opens
// TCP tunnels to an allowlist of relay host:port pairs and to nothing else. It answers one
// other request, when given a list: GET SIGNATURES_PATH, the enclave's NEC signatures.
//
// Trust: TLS runs end to end from the enclave to the relay (wss://). The parent sees only
// ciphertext; it can block, delay or drop a tunnel, but it can never read or forge what
// the enclave says to a relay, because it has neither the enclave's Nostr key nor the
// relay's TLS session keys. The allowlist exists so a compromised enclave image or a
// confused service cannot use the parent as an open relay into the VPC or the internet;
// it is not what makes the enclave's events trustworthy (the attestation is).
//
// The request head is parsed here rather than by node:http so every refusal is exact and
// bounded: nothing is forwarded and no upstream connection is made before the target is
// checked against the allowlist.
import { createServer, connect, isIP, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { CodedError, errorText } from '../../nec01/errors.js'
import { SIGNATURES_PATH } from './signatures.js'

/** One allowed tunnel target. host is compared case-insensitively, exactly. */
export interface AllowEntry {
  host: string
  port: number
}

/** Stable reason codes of refusals and tunnel ends; part of the log format (docs/deploy.md). */
export type RefuseReason =
  | 'bad_request' // 400: malformed request line, header or target
  | 'method_not_allowed' // 405: a method other than CONNECT
  | 'not_allowed' // 403: target not on the allowlist
  | 'head_too_large' // 431: request head larger than maxHeadBytes
  | 'too_many_tunnels' // 503: maxTunnels tunnels already open
  | 'head_timeout' // 408: no complete request head in time
  | 'connect_failed' // 502: the target refused or could not be resolved
  | 'connect_timeout' // 504: the target did not answer in time

export type CloseReason = 'client_closed' | 'target_closed' | 'idle' | 'error' | 'shutdown'

/** A tunnel was established: the target accepted the TCP connection. */
export interface OpenEvent {
  event: 'open'
  ts: string
  id: number
  client: string
  target: string
}

/** A tunnel ended; up = bytes client → target, down = bytes target → client. */
export interface CloseEvent {
  event: 'close'
  ts: string
  id: number
  client: string
  target: string
  up: number
  down: number
  ms: number
  reason: CloseReason
}

/** A request was answered with an error status and the connection closed. */
export interface RefuseEvent {
  event: 'refuse'
  ts: string
  client: string
  target: string | null
  status: number
  reason: RefuseReason
  detail?: string
}

/** The enclave fetched the signature list (GET SIGNATURES_PATH); status 200 or 503. */
export interface SignaturesEvent {
  event: 'signatures'
  ts: string
  client: string
  status: number
  /** events handed over, or the reason none could be */
  count?: number
  detail?: string
}

export type ProxyEvent = OpenEvent | CloseEvent | RefuseEvent | SignaturesEvent

export interface ParentProxyOptions {
  /** listen address; keep it on loopback: only the vsock bridge should reach it */
  host?: string
  /** listen port; 0 picks an ephemeral one */
  port?: number
  allow: readonly AllowEntry[]
  maxTunnels?: number
  /** close a tunnel after this long without a byte in either direction */
  idleTimeoutMs?: number
  /** give up on a target that does not accept the TCP connection in this time */
  connectTimeoutMs?: number
  /** a client must send its complete request head within this time */
  headTimeoutMs?: number
  /** largest accepted request head (request line and headers) */
  maxHeadBytes?: number
  log?: (event: ProxyEvent) => void
  /**
   * The signature events to hand to the enclave on GET SIGNATURES_PATH (signatures.ts), as
   * a JSON array; called on each request so a changed file needs no restart. A throw is a 503.
   */
  signatures?: () => Promise<object[]>
}

export interface ParentProxy {
  host: string
  port: number
  /** number of tunnels open or being opened */
  tunnels(): number
  /** stop listening and cut every tunnel; resolves once the listening socket is closed */
  close(): Promise<void>
}

export type ParentProxyErrorCode = 'bad_allow' | 'bad_option' | 'bad_relay_url' | 'listen_failed'

export class ParentProxyError extends CodedError<ParentProxyErrorCode> {}

export const DEFAULT_PROXY_PORT = 1080
export const DEFAULT_MAX_TUNNELS = 64
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
export const DEFAULT_HEAD_TIMEOUT_MS = 10_000
export const DEFAULT_MAX_HEAD_BYTES = 8 * 1024
/** how long the surviving side of a tunnel may take to flush after the other side closed */
const CLOSE_GRACE_MS = 5_000

const STATUS_TEXT: Record<number, string> = {
  200: 'Connection Established',
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

// A DNS name as a client would ask for it: labels of letters, digits and hyphens. No
// trailing dot, no underscore, no percent-encoding: anything unusual is refused rather
// than normalised, so the name compared is the name connected to.
const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const PORT = /^[0-9]{1,5}$/
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// Header values: visible ASCII, space and tab only. Refuses NUL, bare CR and 8-bit bytes.
const FIELD_VALUE = /^[\t\x20-\x7e]*$/

/** Normalises a host for comparison: lowercase, IPv6 brackets removed. null if invalid. */
export function normalizeHost(raw: string): string | null {
  let host = raw.toLowerCase()
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1)
    return isIP(host) === 6 ? host : null
  }
  if (isIP(host) === 4) return host
  if (isIP(host) === 6) return host
  return DNS_NAME.test(host) ? host : null
}

function parsePort(raw: string): number | null {
  if (!PORT.test(raw)) return null
  const port = Number(raw)
  return port >= 1 && port <= 65535 ? port : null
}

/** Splits "host:port" or "[v6]:port". null when either part is invalid. */
export function splitHostPort(raw: string): AllowEntry | null {
  const colon = raw.lastIndexOf(':')
  if (colon <= 0) return null
  const hostPart = raw.slice(0, colon)
  // An unbracketed IPv6 literal ("::1:443") is ambiguous: refuse it.
  if (hostPart.includes(':') && !hostPart.startsWith('[')) return null
  const host = normalizeHost(hostPart)
  const port = parsePort(raw.slice(colon + 1))
  return host === null || port === null ? null : { host, port }
}

/** Formats an entry back to "host:port" ("[v6]:port" for IPv6). */
export function formatHostPort(entry: AllowEntry): string {
  return isIP(entry.host) === 6 ? `[${entry.host}]:${entry.port}` : `${entry.host}:${entry.port}`
}

/** Parses a --allow value; throws ParentProxyError('bad_allow'). */
export function parseAllowEntry(raw: string): AllowEntry {
  const entry = splitHostPort(raw.trim())
  if (entry === null) throw new ParentProxyError('bad_allow', `--allow '${raw}' is not HOST:PORT (port 1..65535; IPv6 as [addr]:port)`)
  return entry
}

/**
 * The tunnel targets for a relay list: each ws(s):// URL's host and port (wss → 443,
 * ws → 80 when the URL names none), then the extra entries, without duplicates.
 */
export function allowlistFromRelays(relays: ReadonlyArray<{ url: string }>, extra: readonly AllowEntry[] = []): AllowEntry[] {
  const out: AllowEntry[] = []
  const seen = new Set<string>()
  const add = (entry: AllowEntry): void => {
    const key = formatHostPort(entry)
    if (seen.has(key)) return
    seen.add(key)
    out.push(entry)
  }
  for (const relay of relays) {
    let url: URL
    try {
      url = new URL(relay.url)
    } catch {
      throw new ParentProxyError('bad_relay_url', `relay URL '${relay.url}' is not a URL`)
    }
    if (url.protocol !== 'wss:' && url.protocol !== 'ws:') {
      throw new ParentProxyError('bad_relay_url', `relay URL '${relay.url}' is not ws:// or wss://`)
    }
    const host = normalizeHost(url.hostname)
    const port = url.port === '' ? (url.protocol === 'wss:' ? 443 : 80) : Number(url.port)
    if (host === null) throw new ParentProxyError('bad_relay_url', `relay URL '${relay.url}' has an unsupported host`)
    add({ host, port })
  }
  for (const entry of extra) {
    const host = normalizeHost(entry.host)
    if (host === null || !Number.isInteger(entry.port) || entry.port < 1 || entry.port > 65535) {
      throw new ParentProxyError('bad_allow', `allowlist entry '${entry.host}:${entry.port}' is not a valid host:port`)
    }
    add({ host, port: entry.port })
  }
  return out
}

type ParsedHead =
  | { ok: true; target: AllowEntry; targetText: string }
  | { ok: false; status: 400 | 405; reason: 'bad_request' | 'method_not_allowed'; target: string | null; detail: string }

/** Parses a complete request head (without the blank line). Pure: easy to reason about. */
export function parseConnectHead(head: string): ParsedHead {
  const lines = head.split(/\r?\n/)
  const requestLine = lines[0] ?? ''
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^ ]+) HTTP\/1\.[01]$/.exec(requestLine)
  if (m === null) return { ok: false, status: 400, reason: 'bad_request', target: null, detail: 'malformed request line' }
  const method = m[1] ?? ''
  const targetText = m[2] ?? ''
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon)) || !FIELD_VALUE.test(line.slice(colon + 1))) {
      return { ok: false, status: 400, reason: 'bad_request', target: null, detail: 'malformed header line' }
    }
  }
  if (method !== 'CONNECT') return { ok: false, status: 405, reason: 'method_not_allowed', target: null, detail: `method ${method.slice(0, 16)}` }
  const target = splitHostPort(targetText)
  if (target === null) return { ok: false, status: 400, reason: 'bad_request', target: null, detail: 'target is not host:port' }
  return { ok: true, target, targetText: formatHostPort(target) }
}

function positiveInt(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new ParentProxyError('bad_option', `${name} must be an integer 1..${max}, got ${value}`)
  return value
}

function endpoint(socket: Socket): string {
  const addr = socket.remoteAddress ?? '?'
  return `${isIP(addr) === 6 ? `[${addr}]` : addr}:${socket.remotePort ?? 0}`
}

/** The options, checked, with their defaults filled in. */
interface ProxySettings {
  host: string
  port: number
  maxTunnels: number
  idleTimeoutMs: number
  connectTimeoutMs: number
  headTimeoutMs: number
  maxHeadBytes: number
  /** allowed targets, as formatHostPort writes them */
  allowed: Set<string>
}

/** What the connections of one proxy share. */
interface ProxyState {
  settings: ProxySettings
  signatures: (() => Promise<object[]>) | null
  emit: (event: ProxyEvent) => void
  /** every client socket still open */
  sockets: Set<Socket>
  /** sockets flushing their last bytes after the other side of their tunnel closed */
  lingering: Set<Socket>
  /** tunnels open or being opened; the shutdown closes each */
  tunnels: Set<Tunnel>
  active: number
  nextId: number
  closing: boolean
}

/** Starts the proxy; resolves once it listens. Throws ParentProxyError on bad options. */
export async function startParentProxy(options: ParentProxyOptions): Promise<ParentProxy> {
  const settings = proxySettings(options)
  const p: ProxyState = {
    settings,
    signatures: options.signatures ?? null,
    emit: safeEmitter(options.log ?? (() => {})),
    sockets: new Set(),
    lingering: new Set(),
    tunnels: new Set(),
    active: 0,
    nextId: 1,
    closing: false,
  }
  const server: Server = createServer({ allowHalfOpen: false, pauseOnConnect: false }, (client) => onConnection(p, client))
  // Bounds sockets that have not (yet) become tunnels, so a flood of idle connections
  // cannot exhaust file descriptors; the head timeout reaps them.
  server.maxConnections = settings.maxTunnels * 2 + 32
  await listen(server, settings.host, settings.port)
  server.on('error', () => {
    // After listening, errors are per-connection and handled there.
  })
  const address = server.address()
  const boundPort = typeof address === 'object' && address !== null ? address.port : settings.port

  return {
    host: settings.host,
    port: boundPort,
    tunnels: () => p.active,
    close: () => {
      p.closing = true
      for (const tunnel of [...p.tunnels]) finish(p, tunnel, 'shutdown')
      for (const socket of p.sockets) socket.destroy()
      for (const socket of p.lingering) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function proxySettings(options: ParentProxyOptions): ProxySettings {
  const host = options.host ?? '127.0.0.1'
  const maxTunnels = positiveInt('maxTunnels', options.maxTunnels ?? DEFAULT_MAX_TUNNELS, 65_536)
  const idleTimeoutMs = positiveInt('idleTimeoutMs', options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, 2_147_483_647)
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 2_147_483_647)
  const headTimeoutMs = positiveInt('headTimeoutMs', options.headTimeoutMs ?? DEFAULT_HEAD_TIMEOUT_MS, 2_147_483_647)
  const maxHeadBytes = positiveInt('maxHeadBytes', options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES, 1024 * 1024)
  const port = options.port ?? DEFAULT_PROXY_PORT
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ParentProxyError('bad_option', `port must be 0..65535, got ${port}`)
  const allowed = new Set(allowlistFromRelays([], options.allow).map(formatHostPort))
  if (allowed.size === 0) throw new ParentProxyError('bad_allow', 'the allowlist is empty: the proxy would refuse everything')
  return { host, port, maxTunnels, idleTimeoutMs, connectTimeoutMs, headTimeoutMs, maxHeadBytes, allowed }
}

function safeEmitter(log: (event: ProxyEvent) => void): (event: ProxyEvent) => void {
  return (event) => {
    try {
      log(event)
    } catch {
      // A failing logger must not take a tunnel down with it.
    }
  }
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new ParentProxyError('listen_failed', `cannot listen on ${host}:${port} (${err.code ?? err.message})`))
    }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.removeListener('error', onError)
      resolve()
    })
  })
}

function onConnection(p: ProxyState, client: Socket): void {
  if (p.closing) {
    client.destroy()
    return
  }
  p.sockets.add(client)
  client.on('close', () => p.sockets.delete(client))
  client.on('error', () => client.destroy())
  readHead(p, client, (head, rest) => admit(p, client, head, rest))
}

/**
 * Buffers the client's bytes until the blank line ending the request head, within the
 * size and time bounds; then stops reading and hands over the head and what followed it.
 */
function readHead(p: ProxyState, client: Socket, onHead: (head: Buffer, rest: Buffer) => void): void {
  const { headTimeoutMs, maxHeadBytes } = p.settings
  let buffered = Buffer.alloc(0)
  let decided = false
  const headTimer = setTimeout(() => {
    if (decided) return
    decided = true
    refuse(p, client, 408, 'head_timeout', null)
  }, headTimeoutMs)
  client.once('close', () => clearTimeout(headTimer))

  const onData = (chunk: Buffer): void => {
    if (decided) return
    const scanFrom = Math.max(0, buffered.length - 3)
    buffered = Buffer.concat([buffered, chunk])
    const end = findHeadEnd(buffered, scanFrom)
    if (end === null) {
      if (buffered.length > maxHeadBytes) {
        decided = true
        clearTimeout(headTimer)
        refuse(p, client, 431, 'head_too_large', null)
      }
      return
    }
    decided = true
    clearTimeout(headTimer)
    client.removeListener('data', onData)
    client.pause()
    if (end.headEnd > maxHeadBytes) {
      refuse(p, client, 431, 'head_too_large', null)
      return
    }
    onHead(buffered.subarray(0, end.headEnd), buffered.subarray(end.bodyStart))
  }
  client.on('data', onData)
}

/** A complete head: a CONNECT to an allowed target, with room for one more tunnel, opens it. */
function admit(p: ProxyState, client: Socket, head: Buffer, rest: Buffer): void {
  // latin1 keeps one byte per char, so the field checks also see 8-bit bytes.
  const text = head.toString('latin1')
  if (p.signatures !== null && SIGNATURES_REQUEST.test(text.split(/\r?\n/, 1)[0] ?? '')) {
    void handOverSignatures(p, p.signatures, client)
    return
  }
  const parsed = parseConnectHead(text)
  if (!parsed.ok) {
    refuse(p, client, parsed.status, parsed.reason, parsed.target, parsed.detail)
    return
  }
  if (!p.settings.allowed.has(parsed.targetText)) {
    refuse(p, client, 403, 'not_allowed', parsed.targetText)
    return
  }
  if (p.active >= p.settings.maxTunnels) {
    refuse(p, client, 503, 'too_many_tunnels', parsed.targetText)
    return
  }
  openTunnel(p, client, parsed.target, parsed.targetText, rest)
}

/** The one request besides CONNECT: the enclave asking for its signatures. */
const SIGNATURES_REQUEST = new RegExp(`^GET ${SIGNATURES_PATH} HTTP/1\\.[01]$`)

/** Answers GET SIGNATURES_PATH with the list as JSON, or 503 when it cannot be read. */
async function handOverSignatures(p: ProxyState, signatures: () => Promise<object[]>, client: Socket): Promise<void> {
  const base = { event: 'signatures' as const, ts: new Date().toISOString(), client: endpoint(client) }
  let body: string
  try {
    const list = await signatures()
    body = JSON.stringify(list)
    p.emit({ ...base, status: 200, count: list.length })
  } catch (err) {
    p.emit({ ...base, status: 503, detail: errorText(err) })
    answerAndClose(client, 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    return
  }
  const length = Buffer.byteLength(body)
  answerAndClose(client, `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n${body}`)
}

function refuse(p: ProxyState, client: Socket, status: number, reason: RefuseReason, target: string | null, detail?: string): void {
  const event: RefuseEvent = { event: 'refuse', ts: new Date().toISOString(), client: endpoint(client), target, status, reason }
  if (detail !== undefined) event.detail = detail
  p.emit(event)
  const extra = status === 405 ? 'Allow: CONNECT\r\n' : ''
  answerAndClose(client, `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n${extra}Connection: close\r\nContent-Length: 0\r\n\r\n`)
}

/** Sends a last answer; whatever the client keeps sending is never read or forwarded. */
function answerAndClose(client: Socket, response: string): void {
  client.end(response)
  client.removeAllListeners('data')
  client.resume()
  const kill = setTimeout(() => client.destroy(), 1000)
  kill.unref()
  client.once('close', () => clearTimeout(kill))
}

/** One tunnel, from the upstream connect until both sides are closed. */
interface Tunnel {
  id: number
  client: Socket
  upstream: Socket
  clientText: string
  targetText: string
  started: number
  /** when a byte last went either way (performance.now()) */
  last: number
  up: number
  down: number
  established: boolean
  done: boolean
  connectTimer?: NodeJS.Timeout
  idleTimer?: NodeJS.Timeout
}

function openTunnel(p: ProxyState, client: Socket, target: AllowEntry, targetText: string, rest: Buffer): void {
  p.active += 1
  const id = p.nextId++
  const clientText = endpoint(client)
  const started = performance.now()
  const upstream = connect({ host: target.host, port: target.port })
  const t: Tunnel = { id, client, upstream, clientText, targetText, started, last: started, up: 0, down: 0, established: false, done: false }
  t.connectTimer = setTimeout(() => {
    if (t.established || t.done) return
    t.done = true
    finishPending(p, t)
    refuse(p, client, 504, 'connect_timeout', targetText)
  }, p.settings.connectTimeoutMs)
  p.tunnels.add(t)

  upstream.once('connect', () => establish(p, t, rest))
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (t.done) return
    if (!t.established) {
      t.done = true
      finishPending(p, t)
      refuse(p, client, 502, 'connect_failed', targetText, err.code ?? 'error')
      return
    }
    finish(p, t, 'error')
  })
  upstream.on('close', () => finish(p, t, 'target_closed'))
  client.on('close', () => finish(p, t, 'client_closed'))
  client.on('error', () => finish(p, t, 'error'))
}

/** The target accepted: tell the client, forward what it sent after its head, then pipe. */
function establish(p: ProxyState, t: Tunnel, rest: Buffer): void {
  if (t.done) return
  const { client, upstream } = t
  t.established = true
  clearTimeout(t.connectTimer)
  p.emit({ event: 'open', ts: new Date().toISOString(), id: t.id, client: t.clientText, target: t.targetText })
  client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
  if (rest.length > 0) {
    t.up += rest.length
    upstream.write(rest)
  }
  client.on('data', (chunk: Buffer) => {
    t.up += chunk.length
    t.last = performance.now()
  })
  upstream.on('data', (chunk: Buffer) => {
    t.down += chunk.length
    t.last = performance.now()
  })
  client.pipe(upstream)
  upstream.pipe(client)
  client.resume()
  t.idleTimer = setTimeout(() => checkIdle(p, t), p.settings.idleTimeoutMs)
}

function checkIdle(p: ProxyState, t: Tunnel): void {
  const idle = performance.now() - t.last
  if (idle >= p.settings.idleTimeoutMs) finish(p, t, 'idle')
  else t.idleTimer = setTimeout(() => checkIdle(p, t), Math.max(1, Math.ceil(p.settings.idleTimeoutMs - idle)))
}

/** A tunnel that never opened: it stops counting, and its upstream attempt is dropped. */
function finishPending(p: ProxyState, t: Tunnel): void {
  p.active -= 1
  p.tunnels.delete(t)
  clearTimeout(t.connectTimer)
  t.upstream.destroy()
}

function finish(p: ProxyState, t: Tunnel, reason: CloseReason): void {
  if (t.done) return
  t.done = true
  if (!t.established) {
    finishPending(p, t)
    t.client.destroy()
    return
  }
  p.active -= 1
  p.tunnels.delete(t)
  if (t.idleTimer !== undefined) clearTimeout(t.idleTimer)
  // When one side closed, the other still gets what was already piped to it (a relay's
  // last NOTICE, a TLS close_notify), then FIN; it is cut after CLOSE_GRACE_MS at most.
  const survivor = reason === 'client_closed' ? t.upstream : reason === 'target_closed' ? t.client : null
  if (survivor !== null && !survivor.destroyed) {
    const other = survivor === t.client ? t.upstream : t.client
    other.destroy()
    linger(p, survivor)
  } else {
    t.client.destroy()
    t.upstream.destroy()
  }
  const ms = Math.round(performance.now() - t.started)
  p.emit({ event: 'close', ts: new Date().toISOString(), id: t.id, client: t.clientText, target: t.targetText, up: t.up, down: t.down, ms, reason })
}

function linger(p: ProxyState, survivor: Socket): void {
  p.lingering.add(survivor)
  const cut = setTimeout(() => survivor.destroy(), CLOSE_GRACE_MS)
  cut.unref()
  survivor.once('close', () => {
    clearTimeout(cut)
    p.lingering.delete(survivor)
  })
  survivor.end()
}

/** Finds the blank line ending a request head: CRLFCRLF, or LFLF from lenient clients. */
function findHeadEnd(buf: Buffer, from: number): { headEnd: number; bodyStart: number } | null {
  for (let i = from; i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue
    const headEnd = i > 0 && buf[i - 1] === 0x0d ? i - 1 : i
    if (buf[i + 1] === 0x0a) return { headEnd, bodyStart: i + 2 }
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return { headEnd, bodyStart: i + 3 }
  }
  return null
}

/** A ProxyEvent logger writing one JSON object per line. */
export function jsonLineLogger(write: (line: string) => void): (event: ProxyEvent) => void {
  return (event) => write(`${JSON.stringify(event)}\n`)
}

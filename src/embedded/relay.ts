// A real Nostr relay in-process, for `npm start` (ws://127.0.0.1:7777) and for every test:
// @nostr-relay/core with its SQLite event repository behind a `ws` server, NIP-11 on the same
// HTTP port. It is a development tool, so @nostr-relay/* is imported lazily and the production
// service never needs it installed.
//
// What is added on top of @nostr-relay/core, and why:
// - input validation (client-messages.ts): core expects pre-validated messages;
// - NIP-70: core ignores the ["-"] tag; here a protected event is accepted only from a
//   connection authenticated (NIP-42) as its author;
// - requireAuth: publishing needs AUTH, and DMs (kind 4 and kind 1059 gift wraps; core only
//   knows kind 4) are served only to an authenticated author or p-tagged recipient;
// - a DM REQ before AUTH is CLOSED `auth-required:` (NIP-42), so a client authenticates and
//   asks again; core's own `restricted:` would make it give up;
// - live events are matched against subscriptions' tag filters too: core's broadcast matcher
//   compares only ids/authors/kinds/since/until, so it sent every kind 4 to every kind 4
//   subscriber (useServiceEventChecks gives it nostr-tools' matchFilter);
// - maxMessageLength: advertised in NIP-11 and enforced with an OK/CLOSED/NOTICE refusal;
// - ids and signatures checked by the service's code (useServiceEventChecks), and events
//   stored through prepared statements (store.ts): under load these were most of
//   the relay's CPU.
import * as kinds from 'nostr-tools/kinds'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import { matchFilter, type Filter } from 'nostr-tools/filter'
import type { ClientContext, HandleMessagePlugin, HandleMessageResult, IncomingMessage as RelayIncoming, Logger as RelayLogger } from '@nostr-relay/common'
import type { NostrRelay } from '@nostr-relay/core'
import { eventHash, verifyEvent } from '../crypto.js'
import { createLogger, type Logger } from '../log.js'
import { openEventStore, type Retention } from './store.js'
import { parseClientMessage, MAX_FILTERS, MAX_SUBID_LENGTH, type ClientMessage, type ClientMessageError, type WireEvent } from './client-messages.js'

export interface EmbeddedRelayOptions {
  host?: string
  /** 0 (default) picks a free port */
  port?: number
  /** ':memory:' (default) or a file; reuse the file to restart a relay with its events */
  dbPath?: string
  /** how long DMs (kind 4, 1059) are kept; default a day, at most 10,000 (store.ts) */
  dmRetention?: Retention
  /** NIP-42: publishing needs AUTH; DMs are only served to their author or recipient */
  requireAuth?: boolean
  /** bytes of one client message; advertised in NIP-11 and enforced */
  maxMessageLength?: number
  /** host name that AUTH events' relay tag must carry; default the host (localhost for 0.0.0.0/::) */
  authHostname?: string
  logger?: Logger
}

export interface EmbeddedRelay {
  url: string
  host: string
  port: number
  /** clients currently connected */
  connections(): number
  /** closes every client socket, the server and the database; safe to call twice */
  close(): Promise<void>
}

const EMBEDDED_MAX_SUBSCRIPTIONS = 20

interface CoreEventChecks {
  isIdValid(event: WireEvent): boolean
  isSigValid(event: WireEvent): boolean
  isMatchingFilter(event: WireEvent, filter: Filter): boolean
}

/**
 * core checks every event's BIP-340 signature with noble's JavaScript secp256k1, about
 * 1.6 ms each, and its id with noble's JavaScript SHA-256; under load that was most of the
 * relay's CPU (two events per request), on the same cores as the service it serves. The
 * service's own checks (src/crypto.ts: libsecp256k1 in WASM through tiny-secp256k1, SHA-256
 * through OpenSSL) apply the same rules in about 0.25 ms. core's validate() looks both up on
 * EventUtils on every call, so they are replaced on the copy of @nostr-relay/common that
 * core itself loads. The expiry and delegation checks stay core's.
 *
 * Its live matcher (isMatchingFilter, used only to broadcast new events) ignores tag filters:
 * every DM went to every connection subscribed to DMs, each copy serialised, sent and then
 * dropped here, so the relay's cost per event grew with its connections. nostr-tools'
 * matchFilter is the NIP-01 rule, tags included (NIP-26 delegation, deprecated, is not
 * matched live).
 */
function useServiceEventChecks(): void {
  const fromCore = createRequire(createRequire(import.meta.url).resolve('@nostr-relay/core'))
  const { EventUtils } = fromCore('@nostr-relay/common') as { EventUtils: CoreEventChecks }
  EventUtils.isIdValid = (event) => {
    try {
      return eventHash(event) === event.id
    } catch {
      // nostr-tools refuses to serialise a malformed event: then its id cannot be right
      return false
    }
  }
  EventUtils.isSigValid = (event) => verifyEvent(event)
  EventUtils.isMatchingFilter = (event, filter) => matchFilter(filter, event)
}

/** NIP-17 gift wraps and NIP-04 DMs: only their parties may read them. */
const DM_KINDS = new Set([kinds.EncryptedDirectMessage, kinds.GiftWrap])
// ws drops a connection whose frame exceeds maxPayload; messages between the advertised limit
// and this hard cap get a protocol-level refusal instead.
const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024

interface Connection {
  ws: WebSocket
  /** the Client handed to core: sends pass through the delivery checks below */
  client: { readonly readyState: 0 | 1 | 2 | 3; send(data: string): void }
  ctx?: ClientContext
}

/** What the connection handlers share: the core relay, its store and the limits. */
interface RelayState {
  relay: NostrRelay
  repo: { destroy(): Promise<void> }
  log: Logger
  requireAuth: boolean
  maxMessageLength: number | undefined
  connections: Map<object, Connection>
  /** message handlers still running: close() waits for them before the store goes */
  inflight: Set<Promise<void>>
}

export async function startEmbeddedRelay(options: EmbeddedRelayOptions = {}): Promise<EmbeddedRelay> {
  const host = options.host ?? '127.0.0.1'
  const maxMessageLength = options.maxMessageLength
  if (maxMessageLength !== undefined && (!Number.isSafeInteger(maxMessageLength) || maxMessageLength < 64)) {
    throw new RangeError('maxMessageLength must be an integer >= 64')
  }
  const log = (options.logger ?? createLogger()).child({ component: 'embedded-relay' })
  const state = await openRelay(options, host, log)
  state.relay.register(admissionPlugin(state))

  const server = createServer((req, res) => serveHttp(req, res, relayInfo(state)))
  const wss = new WebSocketServer({
    server,
    maxPayload: maxMessageLength !== undefined ? Math.max(2 * maxMessageLength, maxMessageLength + 65_536) : DEFAULT_MAX_PAYLOAD,
  })
  wss.on('connection', (ws, req) => acceptConnection(state, ws, req.socket.remoteAddress))
  wss.on('error', (err) => log.warn('websocket server error', { error: err }))

  await listen(server, options.port ?? 0, host).catch(async (err: unknown) => {
    await state.relay.destroy()
    await state.repo.destroy()
    throw err
  })
  server.on('error', (err) => log.warn('http server error', { error: err }))

  const port = (server.address() as AddressInfo).port
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}`
  log.info('embedded relay listening', { url, require_auth: state.requireAuth, db: options.dbPath ?? ':memory:' })

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => (closing ??= closeRelay(state, wss, server, url))
  return { url, host, port, connections: () => state.connections.size, close }
}

/** core's relay over the event store; hostname turns on core's NIP-42 (challenge, AUTH check). */
async function openRelay(options: EmbeddedRelayOptions, host: string, log: Logger): Promise<RelayState> {
  const { NostrRelay } = await import('@nostr-relay/core')
  useServiceEventChecks()
  const repo = await openEventStore(options.dbPath ?? ':memory:', options.dmRetention === undefined ? {} : { retention: options.dmRetention })
  // The two caches are off: a 1 s filter-result cache would hide events published just before a REQ.
  const relay = new NostrRelay(repo, {
    hostname: options.authHostname ?? (host === '0.0.0.0' || host === '::' ? 'localhost' : host),
    logger: relayLogger(log),
    maxSubscriptionsPerClient: EMBEDDED_MAX_SUBSCRIPTIONS,
    filterResultCacheTtl: 0,
    eventHandlingResultCacheTtl: 0,
  })
  return {
    relay,
    repo,
    log,
    requireAuth: options.requireAuth ?? false,
    maxMessageLength: options.maxMessageLength,
    connections: new Map(),
    inflight: new Set(),
  }
}

/** Refusals core does not make, or makes with the wrong NIP-42 prefix. */
function admissionPlugin(state: RelayState): HandleMessagePlugin {
  const { connections, requireAuth } = state
  return {
    async handleMessage(ctx, message, next): Promise<HandleMessageResult> {
      const conn = connections.get(ctx.client)
      if (conn) conn.ctx = ctx
      if (message[0] === 'EVENT') {
        const event = message[1]
        const refusal = eventRefusal(event, ctx.pubkey, requireAuth)
        if (refusal !== null) {
          ctx.sendMessage(['OK', event.id, false, refusal])
          if (refusal.startsWith('auth-required:')) ctx.sendMessage(['AUTH', ctx.id])
          return { messageType: 'EVENT', success: false, message: refusal }
        }
      }
      if (message[0] === 'REQ') {
        const [, subId, ...filters] = message
        // Core refuses a kind 4 REQ of an unauthenticated client itself, with `restricted:`,
        // which tells a client to give up; NIP-42's `auth-required:` makes it authenticate
        // and ask again. So every such REQ is answered here first.
        if (ctx.pubkey === undefined && filters.some((f) => (requireAuth ? asksForDms(f) : asksForKind4(f)))) {
          ctx.sendMessage(['CLOSED', subId, 'auth-required: DMs are only served to authenticated recipients'])
          ctx.sendMessage(['AUTH', ctx.id])
          return { messageType: 'REQ', events: [] }
        }
      }
      return next()
    },
  }
}

/** The NIP-11 document. */
function relayInfo(state: RelayState): string {
  return JSON.stringify({
    name: 'nec01 embedded relay',
    description: 'development relay for nec01 (not for production use)',
    software: 'nec01 embedded relay (@nostr-relay/core + SQLite)',
    supported_nips: [1, 9, 11, 40, 42, 70],
    limitation: {
      ...(state.maxMessageLength !== undefined ? { max_message_length: state.maxMessageLength } : {}),
      max_subscriptions: EMBEDDED_MAX_SUBSCRIPTIONS,
      max_filters: MAX_FILTERS,
      max_subid_length: MAX_SUBID_LENGTH,
      auth_required: false,
      restricted_writes: state.requireAuth,
    },
  })
}

function acceptConnection(state: RelayState, ws: WebSocket, remoteAddress: string | undefined): void {
  const { relay, connections, inflight, log } = state
  const conn: Connection = {
    ws,
    client: {
      get readyState() {
        return ws.readyState
      },
      send: (data: string) => deliver(state, conn, data),
    },
  }
  connections.set(conn.client, conn)
  ws.on('error', (err) => log.debug('client socket error', { error: err }))
  ws.on('close', () => {
    connections.delete(conn.client)
    relay.handleDisconnect(conn.client)
  })
  ws.on('message', (data, isBinary) => {
    const p = onMessage(state, conn, data, isBinary).catch((err: unknown) => log.warn('message handling failed', { error: err }))
    inflight.add(p)
    void p.finally(() => inflight.delete(p))
  })
  relay.handleConnection(conn.client, remoteAddress)
}

function deliver(state: RelayState, conn: Connection, data: string): void {
  if (conn.ws.readyState !== WebSocket.OPEN) return
  if (state.requireAuth && data.startsWith('["EVENT",') && !mayDeliverDm(conn, data)) return
  conn.ws.send(data)
}

/** requireAuth: a DM (kind 4 or 1059) only to its author or a p-tagged recipient. */
function mayDeliverDm(conn: Connection, data: string): boolean {
  let event: WireEvent
  try {
    ;[, , event] = JSON.parse(data) as [string, unknown, WireEvent]
  } catch {
    return false
  }
  if (!DM_KINDS.has(event.kind)) return true
  const me = conn.ctx?.pubkey
  if (me === undefined) return false
  return event.pubkey === me || event.tags.some((t) => t[0] === 'p' && t[1] === me)
}

async function onMessage(state: RelayState, conn: Connection, data: RawData, isBinary: boolean): Promise<void> {
  const { maxMessageLength } = state
  const buf = toBuffer(data)
  if (isBinary) return reply(conn, { reply: 'NOTICE', message: 'invalid: binary messages are not supported' })
  const parsed = parseClientMessage(buf.toString('utf8'))
  if ('reply' in parsed) return reply(conn, parsed)
  if (maxMessageLength !== undefined && buf.length > maxMessageLength) {
    return reply(conn, tooLarge(parsed, `invalid: message too large (${buf.length} bytes > max_message_length ${maxMessageLength})`))
  }
  try {
    await state.relay.handleMessage(conn.client, toRelayMessage(parsed))
  } catch (err) {
    state.log.warn('message handling failed', { error: err, type: parsed.type })
    reply(conn, tooLarge(parsed, 'error: internal relay error'))
  }
}

function reply(conn: Connection, r: ClientMessageError): void {
  if (conn.ws.readyState !== WebSocket.OPEN) return
  const msg = r.reply === 'OK' ? ['OK', r.id, false, r.message] : r.reply === 'CLOSED' ? ['CLOSED', r.subId, r.message] : ['NOTICE', r.message]
  conn.ws.send(JSON.stringify(msg))
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

async function closeRelay(state: RelayState, wss: WebSocketServer, server: Server, url: string): Promise<void> {
  for (const conn of state.connections.values()) conn.ws.terminate()
  await new Promise<void>((resolve) => wss.close(() => resolve()))
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  // Queries still running would otherwise hit a closed database.
  await Promise.allSettled([...state.inflight])
  await state.relay.destroy()
  await state.repo.destroy()
  state.log.info('embedded relay closed', { url })
}

function eventRefusal(event: { pubkey: string; tags: string[][] }, authed: string | undefined, requireAuth: boolean): string | null {
  const isProtected = event.tags.some((t) => t.length >= 1 && t[0] === '-')
  if (isProtected && authed !== event.pubkey) {
    return authed === undefined
      ? 'auth-required: this event may only be published by its author'
      : 'restricted: this event may only be published by its author'
  }
  if (requireAuth && authed === undefined) return 'auth-required: this relay only accepts events from authenticated users'
  return null
}

function asksForDms(filter: { kinds?: number[] }): boolean {
  return filter.kinds?.some((k) => DM_KINDS.has(k)) ?? false
}

/** What core withholds from an unauthenticated client even without requireAuth. */
function asksForKind4(filter: { kinds?: number[] }): boolean {
  return filter.kinds?.includes(4) ?? false
}

/** A refusal addressed the way the client can match it: OK for events, CLOSED for REQs. */
function tooLarge(msg: ClientMessage, message: string): ClientMessageError {
  switch (msg.type) {
    case 'EVENT':
    case 'AUTH':
      return { reply: 'OK', id: msg.event.id, message }
    case 'REQ':
      return { reply: 'CLOSED', subId: msg.subId, message }
    case 'CLOSE':
      return { reply: 'NOTICE', message }
  }
}

function toRelayMessage(msg: ClientMessage): RelayIncoming {
  switch (msg.type) {
    case 'EVENT':
      return ['EVENT', msg.event]
    case 'AUTH':
      return ['AUTH', msg.event]
    case 'REQ':
      return ['REQ', msg.subId, ...msg.filters]
    case 'CLOSE':
      return ['CLOSE', msg.subId]
  }
}

function serveHttp(req: IncomingMessage, res: ServerResponse, nip11: string): void {
  // NIP-11 requires CORS so browser clients can read the document.
  res.setHeader('Access-Control-Allow-Origin', '*')
  res.setHeader('Access-Control-Allow-Headers', '*')
  res.setHeader('Access-Control-Allow-Methods', 'GET, OPTIONS')
  if (req.method === 'OPTIONS') {
    res.writeHead(204).end()
    return
  }
  if ((req.headers.accept ?? '').includes('application/nostr+json')) {
    res.writeHead(200, { 'Content-Type': 'application/nostr+json' }).end(nip11)
    return
  }
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('nec01 embedded relay: connect with a websocket client\n')
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

function relayLogger(log: Logger): RelayLogger {
  const fields = (args: unknown[]): Record<string, unknown> => (args.length > 0 ? { detail: args } : {})
  return {
    setLogLevel: () => undefined,
    debug: (message: string, ...args: unknown[]) => log.debug(message, fields(args)),
    info: (message: string, ...args: unknown[]) => log.debug(message, fields(args)),
    warn: (message: string, ...args: unknown[]) => log.warn(message, fields(args)),
    error: (message: string, ...args: unknown[]) => log.error(message, fields(args)),
  }
}

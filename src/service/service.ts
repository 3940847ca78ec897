// `nec01 serve`, assembled: NSM → identity → PCR16 binding → root event → relays →
// announcements → inbox. Read top to bottom, this is the service's lifecycle.
import { AWS_NITRO_ROOT_G1_DER } from '../../nec01/aws-root.js'
import { bytesToHex } from '../../nec01/encoding.js'
import { RPC_KIND } from '../../nec01/rpc.js'
import type { Logger } from '../log.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { Nsm } from '../nsm/types.js'
import { certificatePem } from '../nsm/pki.js'
import { normalizeRelayUrl, type RelayEntry } from '../relays/config.js'
import { createRelayPool, type RelayPool } from '../relays/pool.js'
import { announcementTemplate, dmRelaysTemplate, profileTemplate, relayListTemplate } from './announce.js'
import { commandSet, runCommand, type CommandDeps, type CommandSpec, type ServiceFacts } from './commands.js'
import { startHealthServer, type HealthReport, type HealthServer } from './health.js'
import { createIdentity, type Identity } from './identity.js'
import { KIND_GIFT_WRAP, startInbox, type InboxSource } from './inbox.js'
import { createPublisher, NoRootError, type Publisher, type RelayResult } from './publish.js'
import type { RateLimitConfig } from './ratelimit.js'
import { createReplier } from './reply.js'
import { bindIdentityPcr, createRootKeeper, type RootKeeper } from './root.js'
import { KIND_NIP04_DM } from './reply.js'
import { createOperatorControls } from './operator.js'
import { operatorNpub } from './operator-config.js'
import type { VarsReader } from './vars.js'

export const SERVICE_NAME = 'nec01'

export interface ServiceConfig {
  nsm: Nsm
  /** the trust root the service checks its own documents against: the simulator's in dev */
  trustRoot?: Uint8Array
  tee: 'nsm' | 'simulated'
  /** configured t; forced to dev on a simulator or a debug-mode module */
  t: 'prod' | 'dev'
  relays: RelayEntry[]
  proxy?: string
  healthPort: number
  healthHost?: string
  /** refresh this long before the attestation expires (seconds) */
  marginSec: number
  name: string
  about?: string
  picture?: string
  version: string
  rateLimit?: RateLimitConfig
  maxRequestBytes?: number
  log: Logger
  /** a deployment's own commands, beside the built-ins and the operator controls (no name twice) */
  extraCommands?: Record<string, CommandSpec>
  /** hex pubkey of the operator (operator.json, or --operator in dev); none: writes are refused */
  operator?: string | null
}

export interface Service {
  identity: Pick<Identity, 'pubkey' | 'npub'>
  t: 'prod' | 'dev'
  healthPort: number
  roots: RootKeeper
  pool: RelayPool
  publisher: Publisher
  counters: Record<string, number>
  /** the operator's variables, for handlers */
  vars: VarsReader
  health(): HealthReport
  close(): Promise<void>
}

function toHexPcrs(values: Map<number, Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [i, v] of values) out[String(i)] = bytesToHex(v)
  return out
}

export async function startService(config: ServiceConfig): Promise<Service> {
  const { nsm, log } = config
  const startedAt = Date.now()
  const counters: Record<string, number> = {}

  // 1. The module, and what it says about itself.
  const description = await nsm.describe()
  let t = config.t
  if (config.tee === 'simulated' && t !== 'dev') {
    log.warn('the simulator can only attest dev: forcing t=dev', { configured: t })
    t = 'dev'
  }
  if (description.debug) {
    log.warn('DEBUG-MODE ENCLAVE: PCR0/1/2 are zero and every client rejects these attestations; t=dev', {})
    t = 'dev'
  }
  const boot = new Map<number, Uint8Array>()
  for (const i of [0, 1, 2]) boot.set(i, (await nsm.describePcr(i)).value)

  // 2. The identity, born here from the module's randomness, and bound into PCR16.
  const identity = await createIdentity((n) => nsm.random(n))
  await bindIdentityPcr(nsm, identity)
  log.info('identity created', { pubkey: identity.pubkey, npub: identity.npub, tee: config.tee, t })

  // 3. The attestation, kept fresh; every new root republishes what describes the service.
  const writeRelays = (): string[] => config.relays.filter((r) => r.write).map((r) => r.url)
  /** url → id of the root whose announcements reached that relay (accepted, refused or skipped) */
  const announcedTo = new Map<string, string>()
  const announce = async (relays: string[], force: boolean): Promise<void> => {
    // The root at the time of sending, not of queueing: a rotation may have come between.
    const root = roots.current()
    if (root === null) return
    const targets = force ? relays : relays.filter((url) => announcedTo.get(url) !== root.event.id)
    if (targets.length === 0) return
    const now = Math.floor(Date.now() / 1000)
    const templates = [
      profileTemplate({ name: config.name, ...(config.about === undefined ? {} : { about: config.about }), ...(config.picture === undefined ? {} : { picture: config.picture }), version: config.version, npub: identity.npub, t, tee: config.tee }, now),
      dmRelaysTemplate(config.relays, now),
      relayListTemplate(config.relays, now),
      announcementTemplate({ root, relays: config.relays, t, version: config.version, kinds: [KIND_NIP04_DM, KIND_GIFT_WRAP, RPC_KIND] }, now),
    ]
    // A relay that was down missed the round; one that refused or was skipped (too large)
    // would only refuse again, so its first connection does not earn it a second try.
    const reached = new Set(targets)
    for (const template of templates) {
      try {
        const { results } = await publisher.publish(template, { relays: targets })
        const counter = results.some((r) => r.ok) ? 'published' : 'publish_unaccepted'
        counters[counter] = (counters[counter] ?? 0) + 1
        for (const url of targets) {
          const r = results.find((x) => x.url === url)
          if (r === undefined || r.code === 'not-connected') reached.delete(url)
        }
      } catch (err) {
        reached.clear()
        log.error('publish failed', { kind: template.kind, error: err instanceof Error ? err.message : String(err) })
      }
    }
    for (const url of reached) announcedTo.set(url, root.event.id)
  }
  // One announcement round at a time, in order: a reconnect during the first round then
  // finds the relay already served instead of sending everything twice.
  let announcing: Promise<void> = Promise.resolve()
  const queueAnnounce = (relays: string[], force: boolean): void => {
    announcing = announcing.then(() => announce(relays, force)).catch((err: unknown) => log.error('announce failed', { error: err }))
  }
  const roots = createRootKeeper({
    nsm,
    identity,
    t,
    ...(config.trustRoot === undefined ? {} : { trustRoot: config.trustRoot }),
    expectedPcrs: toHexPcrs(boot),
    marginSec: config.marginSec,
    debug: description.debug,
    log: log.child({ part: 'attestation' }),
    onRotate: () => {
      counters.root_rotations = (counters.root_rotations ?? 0) + 1
      if (pool === null) return
      reconnectAuthRefused(pool)
      queueAnnounce(writeRelays(), true)
    },
  })
  // The pool comes after the first root; until then nothing could be published anyway.
  let pool: RelayPool | null = null
  /** url → the last refusal of one of our events: health shows it beside connection errors */
  const publishErrors = new Map<string, { at: number; message: string }>()
  const relaySink = {
    publish: async (event: NostrEvent, opts?: { relays?: string[] }): Promise<RelayResult[]> => {
      if (pool === null) return []
      // A targeted publish goes to exactly those relays: one outside the pool is reported
      // not-in-pool by the pool, never widened to every write relay.
      const results = await pool.publish(event, opts?.relays === undefined ? {} : { relays: opts.relays })
      for (const r of results) {
        // not-connected is already the connection's own last_error; pool-closed is shutdown;
        // not-in-pool names no relay of ours.
        if (r.ok || r.code === 'not-connected' || r.code === 'pool-closed' || r.code === 'not-in-pool') continue
        publishErrors.set(r.url, { at: Date.now(), message: `publish ${r.code}: ${r.message}` })
        if (r.code === 'too-large') counters.publish_too_large = (counters.publish_too_large ?? 0) + 1
      }
      return results
    },
  }
  const publisher: Publisher = createPublisher({ identity, roots, relays: relaySink, log: log.child({ part: 'publish' }) })
  // The command set is fixed before anything is attested or published: a deployment's
  // command that would shadow a built-in one stops the start here.
  const operatorControls = createOperatorControls({ operator: config.operator ?? null, publisher, log: log.child({ part: 'operator' }) })
  const commands = commandSet(operatorControls.commands, config.extraCommands ?? {})
  await roots.start()

  // 4. The relays, once a root exists: AUTH is answered with the service key, on an event
  // carrying tee_root like everything else it signs. A relay that comes back (restart,
  // network) gets the announcements again: it may have lost them, and clients look there.
  // A relay reaching us for the first time gets them unless the first round reached it.
  const everConnected = new Set<string>()
  const connectedNow = new Set<string>()
  // The pool answers one AUTH per challenge, and a relay keeps its challenge for the whole
  // connection: an AUTH we refused to sign while there was no root would leave the relay
  // unauthenticated (events refused, DMs withheld) until the connection happened to drop.
  // So once a root is back, those relays get a new connection.
  const authRefused = new Set<string>()
  function reconnectAuthRefused(p: RelayPool): void {
    for (const url of authRefused) {
      const entry = config.relays.find((r) => r.url === url)
      if (entry === undefined || !p.removeRelay(url)) continue
      // A first connection as far as announcing goes: the rotation round covers it.
      everConnected.delete(url)
      p.addRelay(entry)
      log.info('reconnecting to answer AUTH with the new attestation', { relay: url })
    }
    authRefused.clear()
  }
  const isWriteRelay = (url: string): boolean => config.relays.some((r) => r.url === url && r.write)
  const relayPool = createRelayPool({
    relays: config.relays,
    logger: log.child({ part: 'relays' }),
    onStatusChange: (status) => {
      // Called for every change (AUTH too): act on the edge from down to up only.
      if (!status.connected) {
        connectedNow.delete(status.url)
        return
      }
      if (connectedNow.has(status.url)) return
      connectedNow.add(status.url)
      const reconnect = everConnected.has(status.url)
      everConnected.add(status.url)
      if (isWriteRelay(status.url)) queueAnnounce([status.url], reconnect)
    },
    ...(config.proxy === undefined ? {} : { proxy: config.proxy }),
    signAuth: async (template) => {
      try {
        return publisher.sign(template)
      } catch (err) {
        const url = normalizeRelayUrl(template.tags.find((t) => t[0] === 'relay')?.[1] ?? '')
        if (err instanceof NoRootError && url !== null) authRefused.add(url)
        throw err
      }
    },
  })
  pool = relayPool
  queueAnnounce(writeRelays(), true)

  // 5. Requests: relay → inbox → command → reply → publish.
  const lastPcrs = (): Record<string, string> => roots.current()?.attestation.pcrs ?? toHexPcrs(boot)
  const facts: ServiceFacts = {
    version: config.version,
    tee: config.tee,
    t,
    startedAt,
    operator: operatorNpub(config.operator ?? null),
    relays: () => config.relays.map((r) => r.url),
    pcrs: () => {
      const all = lastPcrs()
      const shown: Record<string, string> = {}
      for (const [i, v] of Object.entries(all)) if (Number(i) <= 2 || Number(i) === 4 || Number(i) === 8 || Number(i) === 16) shown[i] = v
      return shown
    },
  }
  const source: InboxSource = {
    subscribe: (filters, onevent) => relayPool.subscribe(filters, { onevent }),
    fetchLatest: async (filter, timeoutMs) => {
      const events = await relayPool.fetchEvents([filter], { timeoutMs })
      return events.reduce<(typeof events)[number] | null>((best, e) => (best === null || e.created_at > best.created_at ? e : best), null)
    },
  }
  const deps: CommandDeps = {
    nsm,
    identity,
    facts,
    ...(config.trustRoot === undefined ? {} : { trustRoot: config.trustRoot }),
    leafSeen: (att) => roots.leafSeen(att),
    vars: operatorControls.vars,
  }
  const poolUrls = new Set(config.relays.map((r) => r.url))
  const replier = createReplier({ identity, publisher, writeRelays, reachable: (url) => poolUrls.has(url) })
  const inbox = startInbox({
    identity,
    source,
    replier,
    run: (req) => runCommand(req, deps, commands),
    log: log.child({ part: 'inbox' }),
    counters,
    ...(config.maxRequestBytes === undefined ? {} : { maxRequestBytes: config.maxRequestBytes }),
    ...(config.rateLimit === undefined ? {} : { rateLimit: config.rateLimit }),
  })

  // 6. Health, on loopback only.
  const rootPem = certificatePem(config.trustRoot ?? AWS_NITRO_ROOT_G1_DER)
  const health = (): HealthReport => {
    const root = roots.current()
    const relays = relayPool.status().map((s) => {
      // The latest of the connection's error and a refusal of one of our events (too large...).
      const refused = publishErrors.get(s.url)
      const lastError = refused !== undefined && (s.last_error_at === null || refused.at >= s.last_error_at) ? refused.message : s.last_error
      return { url: s.url, connected: s.connected, authed: s.authed, last_error: lastError }
    })
    return {
      status: root === null ? 'no_attestation' : relays.some((r) => r.connected) ? 'ok' : 'degraded',
      pubkey: identity.pubkey,
      npub: identity.npub,
      tee: config.tee,
      t,
      attestation: { expires_at: root?.expiresAt ?? null, refreshed_at: root?.refreshedAt ?? null },
      relays,
      counters: { ...counters, dedup_entries: inbox.seen.size },
    }
  }
  let healthServer: HealthServer
  try {
    healthServer = await startHealthServer({
      port: config.healthPort,
      ...(config.healthHost === undefined ? {} : { host: config.healthHost }),
      report: health,
      rootPem: () => rootPem,
    })
  } catch (err) {
    // The pool's sockets and timers would keep the process alive after the caller gave up.
    inbox.close()
    roots.stop()
    await relayPool.close()
    throw err
  }

  return {
    identity: { pubkey: identity.pubkey, npub: identity.npub },
    t,
    healthPort: healthServer.port,
    roots,
    pool: relayPool,
    publisher,
    counters,
    vars: operatorControls.vars,
    health,
    async close() {
      inbox.close()
      roots.stop()
      await healthServer.close()
      await relayPool.close()
      await nsm.close()
    },
  }
}

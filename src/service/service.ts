// `nec01 serve`, assembled: NSM → identity → PCR16 binding → root event → relays →
// announcements → inbox. Read top to bottom, this is the service's lifecycle.
import * as kinds from 'nostr-tools/kinds'
import { AWS_NITRO_ROOT_G1_DER } from '../../nec01/aws-root.js'
import { derToPem } from '../../nec01/cert.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { RPC_KIND } from '../../nec01/rpc.js'
import type { Logger } from '../log.js'
import type { Nsm } from '../nsm/types.js'
import type { RelayEntry } from '../relays/config.js'
import { createRelayPool, type RelayPool } from '../relays/pool.js'
import { createAnnouncer, type Announcer, type ServiceDescription } from './announce.js'
import { commandSet, runCommand, type CommandDeps, type CommandReply, type CommandRequest, type CommandSpec, type ServiceFacts } from './commands.js'
import { healthReport, startHealthServer, type HealthReport, type HealthServer } from './health.js'
import { countUp } from './counters.js'
import { createIdentity, type Identity } from './identity.js'
import { startInbox, type Inbox, type InboxSource } from './inbox.js'
import { createPublisher, type Publisher } from './publish.js'
import { policyTags, type ServiceBudgets } from './limits.js'
import type { RateLimitConfig } from './ratelimit.js'
import { createReplier } from './reply.js'
import { bindIdentityPcr, createRootKeeper, type RootKeeper } from './root.js'
import { createOperatorControls } from './operator.js'
import { operatorNpub } from './operator-config.js'
import { createSignatureKeeper, type SignatureSource } from './signatures.js'
import { createAuthRefusals, createPoolSink, writeRelays, type AuthRefusals, type PoolSink } from './sink.js'
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
  /** each sender's own bucket */
  rateLimit?: RateLimitConfig
  /** all senders together (limits.ts); each one missing takes its default */
  budgets?: Partial<ServiceBudgets>
  /** NIP-13 bits required of strangers' requests, advertised in the announcement; 0: none */
  pow?: number
  maxRequestBytes?: number
  log: Logger
  /** a deployment's own commands, beside the built-ins and the operator controls (no name twice) */
  extraCommands?: Record<string, CommandSpec>
  /** hex pubkey of the operator (operator.json, or --operator in dev); none: writes are refused */
  operator?: string | null
  /** the repository the announcement names (r) and releases must name; none: no r, no releases */
  repo?: string | null
  /** where the builder, launcher and release signatures come from (the parent, or a file in dev) */
  signatures?: SignatureSource
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

export async function startService(config: ServiceConfig): Promise<Service> {
  const { nsm, log } = config
  const startedAt = Date.now()
  const counters: Record<string, number> = {}

  // 1. The module, and what it says about itself.
  const module = await describeModule(config)
  const { t, boot } = module

  // 2. The identity, born here from the module's randomness, and bound into PCR16.
  const identity = await createIdentity((n) => nsm.random(n))
  await bindIdentityPcr(nsm, identity)
  log.info('identity created', { pubkey: identity.pubkey, npub: identity.npub, tee: config.tee, t })

  // 3. The attestation, kept fresh, and the one way out for what the service signs.
  const sending = createSending(config, identity, module, counters)
  const { roots, publisher } = sending
  // The command set is fixed before anything is attested or published: a deployment's
  // command that would shadow a built-in one stops the start here.
  const operatorControls = createOperatorControls({ operator: config.operator ?? null, publisher, log: log.child({ part: 'operator' }) })
  const commands = commandSet(operatorControls.commands, config.extraCommands ?? {})
  await roots.start()

  // 4. The relays.
  const relayPool = connectRelays(config, sending)

  // 5. Requests: relay → inbox → command → reply → publish.
  const deps: CommandDeps = {
    nsm,
    identity,
    facts: serviceFacts(config, t, startedAt, () => roots.current()?.attestation.pcrs ?? toHexPcrs(boot)),
    ...(config.trustRoot === undefined ? {} : { trustRoot: config.trustRoot }),
    leafSeen: (att) => roots.leafSeen(att),
    vars: operatorControls.vars,
  }
  const inbox = startRequests(config, {
    identity,
    pool: relayPool,
    publisher,
    counters,
    run: (req) => runCommand(req, deps, commands),
    isExpensive: (method) => Object.hasOwn(commands, method) && commands[method]?.expensive === true,
  })

  // 6. Health.
  const health = (): HealthReport =>
    healthReport({
      identity,
      tee: config.tee,
      t,
      root: roots.current(),
      relays: relayPool.status(),
      refusals: sending.sink.refusals,
      counters: { ...counters, dedup_entries: inbox.seen.size },
    })
  // The pool's sockets and timers would keep the process alive after the caller gave up.
  const healthServer = await startHealth(config, health, async () => {
    inbox.close()
    roots.stop()
    await relayPool.close()
  })

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

function toHexPcrs(values: Map<number, Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [i, v] of values) out[String(i)] = bytesToHex(v)
  return out
}

/** The module's facts that the later steps need. */
interface ModuleFacts {
  t: 'prod' | 'dev'
  debug: boolean
  /** boot PCRs 0..2 */
  boot: Map<number, Uint8Array>
}

/** What the module says about itself: the t it can attest and its boot PCRs 0..2. */
async function describeModule(config: ServiceConfig): Promise<ModuleFacts> {
  const { nsm, log } = config
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
  return { t, debug: description.debug, boot }
}

function serviceDescription(config: ServiceConfig, npub: string, t: 'prod' | 'dev'): ServiceDescription {
  return {
    name: config.name,
    ...(config.about === undefined ? {} : { about: config.about }),
    ...(config.picture === undefined ? {} : { picture: config.picture }),
    version: config.version,
    npub,
    t,
    tee: config.tee,
    relays: config.relays,
    kinds: [kinds.EncryptedDirectMessage, kinds.GiftWrap, RPC_KIND],
    repo: config.repo ?? null,
    // The request policy (limits.ts), kept apart from the rest of the announcement.
    policyTags: policyTags(config.pow ?? 0),
  }
}

/** Step 3's parts: the root keeper and everything that signs or sends with its root. */
interface Sending {
  roots: RootKeeper
  sink: PoolSink
  publisher: Publisher
  announcer: Announcer
  authRefusals: AuthRefusals
  /** hands over the pool, once it exists */
  attach(pool: RelayPool): void
}

/**
 * Every new root republishes what describes the service and reconnects the relays whose
 * AUTH went unanswered without one. The pool comes after the first root (until then nothing
 * could be published anyway), so that root does neither.
 */
function createSending(config: ServiceConfig, identity: Identity, module: ModuleFacts, counters: Record<string, number>): Sending {
  const { log } = config
  let pool: RelayPool | null = null
  const roots = createRootKeeper({
    nsm: config.nsm,
    identity,
    t: module.t,
    ...(config.trustRoot === undefined ? {} : { trustRoot: config.trustRoot }),
    expectedPcrs: toHexPcrs(module.boot),
    marginSec: config.marginSec,
    debug: module.debug,
    log: log.child({ part: 'attestation' }),
    onRotate: () => {
      countUp(counters, 'root_rotations')
      if (pool === null) return
      authRefusals.reconnect(pool)
      announcer.queue(writeRelays(config.relays), true)
    },
  })
  const sink = createPoolSink({ pool: () => pool, counters })
  const publisher = createPublisher({ identity, roots, relays: sink, log: log.child({ part: 'publish' }) })
  const signatures = createSignatureKeeper({ source: config.signatures ?? null, r: config.repo ?? null, t: module.t, log: log.child({ part: 'signatures' }) })
  const announcer = createAnnouncer({ description: serviceDescription(config, identity.npub, module.t), roots, signatures: (root) => signatures.forRoot(root), publisher, counters, log })
  const authRefusals = createAuthRefusals({
    sign: (template) => publisher.signAuth(template),
    relays: config.relays,
    // A first connection as far as announcing goes: the rotation round covers it.
    onReconnect: (url) => announcer.forgetConnection(url),
    log,
  })
  const attach = (p: RelayPool): void => {
    pool = p
  }
  return { roots, sink, publisher, announcer, authRefusals, attach }
}

/**
 * The relays, once a root exists: AUTH is answered with the service key, without tee_root
 * (the challenge is the relay's text, not the enclave's word); each write relay gets the
 * announcements.
 */
function connectRelays(config: ServiceConfig, sending: Sending): RelayPool {
  const pool = createRelayPool({
    relays: config.relays,
    logger: config.log.child({ part: 'relays' }),
    onStatusChange: (status) => sending.announcer.relayStatus(status),
    ...(config.proxy === undefined ? {} : { proxy: config.proxy }),
    signAuth: (template) => sending.authRefusals.signAuth(template),
  })
  sending.attach(pool)
  sending.announcer.queue(writeRelays(config.relays), true)
  return pool
}

/** PCRs the `info` command shows: the image (0..2), the instance (4), the signer (8), the key (16). */
function shownPcrs(all: Record<string, string>): Record<string, string> {
  const shown: Record<string, string> = {}
  for (const [i, v] of Object.entries(all)) if (Number(i) <= 2 || Number(i) === 4 || Number(i) === 8 || Number(i) === 16) shown[i] = v
  return shown
}

function serviceFacts(config: ServiceConfig, t: 'prod' | 'dev', startedAt: number, pcrs: () => Record<string, string>): ServiceFacts {
  return {
    version: config.version,
    tee: config.tee,
    t,
    startedAt,
    operator: operatorNpub(config.operator ?? null),
    relays: () => config.relays.map((r) => r.url),
    pcrs: () => shownPcrs(pcrs()),
  }
}

/** The pool as the inbox reads it. */
function inboxSource(pool: RelayPool): InboxSource {
  return {
    subscribe: (filters, onevent) => pool.subscribe(filters, { onevent }),
    fetchLatest: async (filter, timeoutMs) => {
      const events = await pool.fetchEvents([filter], { timeoutMs })
      return events.reduce<(typeof events)[number] | null>((best, e) => (best === null || e.created_at > best.created_at ? e : best), null)
    },
  }
}

/** The inbox over the pool, its replies through the publisher. */
function startRequests(
  config: ServiceConfig,
  parts: {
    identity: Identity
    pool: RelayPool
    publisher: Publisher
    counters: Record<string, number>
    run: (req: CommandRequest) => Promise<CommandReply>
    isExpensive: (method: string) => boolean
  },
): Inbox {
  const { identity, publisher } = parts
  // In an enclave the parent lets the service reach its own relays and no others.
  const poolUrls = new Set(config.relays.map((r) => r.url))
  return startInbox({
    identity,
    source: inboxSource(parts.pool),
    replier: createReplier({ identity, publisher, writeRelays: () => writeRelays(config.relays), reachable: (url) => poolUrls.has(url) }),
    run: parts.run,
    log: config.log.child({ part: 'inbox' }),
    counters: parts.counters,
    ...(config.maxRequestBytes === undefined ? {} : { maxRequestBytes: config.maxRequestBytes }),
    ...(config.rateLimit === undefined ? {} : { rateLimit: config.rateLimit }),
    ...(config.budgets === undefined ? {} : { budgets: config.budgets }),
    ...(config.pow === undefined ? {} : { pow: config.pow }),
    operator: config.operator ?? null,
    isExpensive: parts.isExpensive,
  })
}

/** Health, on loopback only. If it cannot listen, `abandon` stops what was started. */
async function startHealth(config: ServiceConfig, report: () => HealthReport, abandon: () => Promise<void>): Promise<HealthServer> {
  const rootPem = derToPem(config.trustRoot ?? AWS_NITRO_ROOT_G1_DER)
  try {
    return await startHealthServer({
      port: config.healthPort,
      ...(config.healthHost === undefined ? {} : { host: config.healthHost }),
      report,
      rootPem: () => rootPem,
    })
  } catch (err) {
    await abandon()
    throw err
  }
}

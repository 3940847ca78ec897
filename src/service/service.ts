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
import { createRelayPool, type RelayPool, type RelayStatus } from '../relays/pool.js'
import { createAnnouncer, type Announcer, type ServiceDescription } from './announce.js'
import { commandSet, runCommand, type CommandDeps, type CommandReply, type CommandRequest, type CommandSpec, type ServiceFacts } from './commands.js'
import { healthReport, pendingHealthReport, startHealthServer, type HealthReport, type HealthServer } from './health.js'
import { countUp } from './counters.js'
import type { Identity } from './identity.js'
import { startInbox, type Inbox, type InboxSource } from './inbox.js'
import { createPublisher, type Publisher } from './publish.js'
import { policyTags, type ServiceBudgets } from './limits.js'
import type { RateLimitConfig } from './ratelimit.js'
import { createReplier } from './reply.js'
import { bindIdentityPcr, createRootKeeper, type RootKeeper } from './root.js'
import { createOperatorControls } from './operator.js'
import { operatorNpub } from './operator-config.js'
import { createIdentityKeeper, type IdentityOrigin, type SealingConfig } from './sealed-identity.js'
import { createSignatureKeeper, type SignatureSource } from './signatures.js'
import { createAuthRefusals, createPoolSink, writeRelays, type AuthRefusals, type PoolSink } from './sink.js'
import type { VarsReader } from './vars.js'
import { identityFromSecret } from './identity.js'
import { ecdhBackend } from '../crypto.js'
import { createUpgradeHolder, type Holder } from '../upgrade/v1.js'
import { restoreHolder, startRequester, type RequestOutcome, type ServiceUpgrade } from '../upgrade/wiring.js'
import { lineageFromEvents, readOwnEvents } from '../upgrade/restore.js'
import type { LineageEntry } from '../../nec01/upgrade.js'

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
  /**
   * Where the identity's secret key comes from: a sealed blob opened by src/kms, or a key
   * handed over (docs/upgrades.md). Default: a fresh key from the module's randomness.
   */
  identitySecret?: () => Promise<Uint8Array>
  /** hand-overs that keep the npub (docs/upgrades.md) */
  upgrade?: ServiceUpgrade
  /** keep the identity across restarts, sealed by KMS (docs/identity.md); absent: a new key every start */
  sealing?: SealingConfig
  /** stops the wait for a sealed identity that cannot be opened yet (startService then rejects) */
  signal?: AbortSignal
}

export interface Service {
  /** origin: unsealed (the same npub as before), new (sealed now), ephemeral (not sealed) */
  identity: Pick<Identity, 'pubkey' | 'npub'> & { origin: IdentityOrigin }
  t: 'prod' | 'dev'
  healthPort: number
  roots: RootKeeper
  pool: RelayPool
  publisher: Publisher
  counters: Record<string, number>
  /** the operator's variables, for handlers */
  vars: VarsReader
  health(): HealthReport
  /** hand-overs: the holder (with a policy), and the request to a holder when this build asked */
  upgrade: { holder: Holder | null; request: Promise<RequestOutcome> | null }
  close(): Promise<void>
}

export async function startService(config: ServiceConfig): Promise<Service> {
  const { nsm, log } = config

  // 1. The module, and what it says about itself.
  const module = await describeModule(config)
  const { t } = module
  const ecdh = ecdhBackend()
  if (ecdh.reason !== null) log.warn('ECDH on OpenSSL: the native libsecp256k1 addon did not load, so each new DM peer costs ~0.8 ms more', { reason: ecdh.reason })

  // 2. The identity: unsealed, or born here from the module's randomness (and sealed), then
  // bound into PCR16. /health answers while it waits for a sealed key that will not open yet.
  const keeper = createIdentityKeeper({ nsm, log: log.child({ part: 'identity' }), ...(config.sealing === undefined ? {} : { sealing: config.sealing }) })
  let report = (): HealthReport => pendingHealthReport({ identityStatus: keeper.status(), tee: config.tee, t })
  const healthServer = await startHealth(config, () => report())
  try {
    return await startWithIdentity(config, module, keeper, healthServer, (r) => (report = r))
  } catch (err) {
    await healthServer.close()
    throw err
  }
}

/** Steps 2 to 6, once the identity exists; `serve` switches /health to the full report. */
async function startWithIdentity(
  config: ServiceConfig,
  module: ModuleFacts,
  keeper: ReturnType<typeof createIdentityKeeper>,
  healthServer: HealthServer,
  serve: (report: () => HealthReport) => void,
): Promise<Service> {
  const { nsm, log } = config
  const { t, boot } = module
  const startedAt = Date.now()
  const counters: Record<string, number> = {}
  // A key handed over by an earlier build (docs/upgrades.md) comes in through identitySecret.
  const identity = config.identitySecret === undefined ? await keeper.obtain(config.signal) : identityFromSecret(await config.identitySecret())
  await bindIdentityPcr(nsm, identity)
  const origin = keeper.status().origin ?? 'ephemeral'

  // 3. The attestation, kept fresh, and the one way out for what the service signs.
  const sending = createSending(config, identity, module, counters)
  const { roots, publisher } = sending
  // The command set is fixed before anything is attested or published: a deployment's
  // command that would shadow a built-in one stops the start here.
  const operatorControls = createOperatorControls({ operator: config.operator ?? null, publisher, log: log.child({ part: 'operator' }) })
  const retirement: Retirement = { retired: false, stopped: false, retire: () => undefined }
  // The builds that held this key before: given, or (a sealed key unsealed) read back below.
  const lineage = sending.description.lineage
  const holder = createHolder(config, { identity, publisher, module, lineage, onHandedOver: (id) => retirement.retire(id) })
  const commands = commandSet(operatorControls.commands, holder?.commands ?? {}, config.extraCommands ?? {})
  await roots.start()

  // 4. The relays; a holder first reads back its past hand-overs: a build that handed its
  // key on must not announce again, its successor's announcement would be replaced.
  const readLineage = config.upgrade?.lineage === undefined && origin === 'unsealed'
  const { relayPool, handedOver } = await connectAndReadBack(config, { sending, holder, identity, module, retirement, readLineage })

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
  const abort = new AbortController()
  const request = wantsKey(config, identity) ? startRequester({ request: config.upgrade.request, pool: relayPool, identity, run: (req) => runCommand(req, deps), log: log.child({ part: 'upgrade' }), signal: abort.signal }) : null
  retirement.retire = (upgraded) => retire(config, retirement, { inbox, roots, relayPool }, upgraded)
  if (handedOver) retirement.retire('')

  // 6. Health, now the full report.
  const health = (): HealthReport =>
    healthReport({
      identity,
      identityStatus: keeper.status(),
      tee: config.tee,
      t,
      root: roots.current(),
      relays: relayPool.status(),
      refusals: sending.sink.refusals,
      counters: { ...counters, dedup_entries: inbox.seen.size },
    })
  serve(health)

  return {
    identity: { pubkey: identity.pubkey, npub: identity.npub, origin },
    t,
    healthPort: healthServer.port,
    roots,
    pool: relayPool,
    publisher,
    counters,
    vars: operatorControls.vars,
    health,
    upgrade: { holder, request },
    async close() {
      retirement.stopped = true
      abort.abort()
      inbox.close()
      roots.stop()
      await healthServer.close()
      await relayPool.close()
      await nsm.close()
    },
  }
}

/** Whether this build asks for a key: not when it already holds it (restarted after the hand-over). */
function wantsKey(config: ServiceConfig, identity: Identity): config is ServiceConfig & { upgrade: Required<Pick<ServiceUpgrade, 'request'>> } {
  if (config.upgrade?.request === undefined) return false
  if (config.upgrade.request.holder !== identity.pubkey) return true
  config.log.info('this build already holds the key it was to ask for: the hand-over is complete', { npub: identity.npub })
  return false
}

/** Whether this build still speaks for its key, and the way it stops when it does not. */
interface Retirement {
  retired: boolean
  stopped: boolean
  retire: (upgraded: string) => void
}

/** Step 4: the relays; with a holder, its past read back before anything is announced. */
async function connectAndReadBack(
  config: ServiceConfig,
  parts: { sending: Sending; holder: Holder | null; identity: Identity; module: ModuleFacts; retirement: Retirement; readLineage: boolean },
): Promise<{ relayPool: RelayPool; handedOver: boolean }> {
  const { sending, holder, retirement } = parts
  const statuses = gateStatuses(holder === null && !parts.readLineage, (status) => {
    if (!retirement.retired) sending.announcer.relayStatus(status)
  })
  const relayPool = connectRelays(config, sending, statuses.report)
  if (parts.readLineage) await readLineageBack(config, relayPool, parts)
  const handedOver =
    holder !== null &&
    (await restoreHolder(
      {
        holder,
        pool: relayPool,
        pubkey: parts.identity.pubkey,
        pcr0: bytesToHex(parts.module.boot.get(0)!),
        ...(config.trustRoot === undefined ? {} : { trustRoot: config.trustRoot }),
        ...(config.upgrade?.restoreTimeoutMs === undefined ? {} : { timeoutMs: config.upgrade.restoreTimeoutMs }),
        log: config.log,
      },
      () => retirement.stopped,
    ))
  if (handedOver) {
    config.log.warn('this build handed its key to another build: it does not serve this npub again', {})
  } else {
    statuses.open()
    sending.announcer.queue(writeRelays(config.relays), true)
  }
  return { relayPool, handedOver }
}

/**
 * A key unsealed at boot may have been handed over to this build: its lineage is on the
 * relays, in the "upgraded" events signed with the key. Read before the first announcement.
 */
async function readLineageBack(config: ServiceConfig, pool: RelayPool, parts: { sending: Sending; identity: Identity; module: ModuleFacts }): Promise<void> {
  const timeoutMs = config.upgrade?.restoreTimeoutMs ?? DEFAULT_READBACK_MS
  const { events, answered } = await readOwnEvents(pool, parts.identity.pubkey, timeoutMs)
  if (answered === 0) {
    config.log.warn('no relay answered about past hand-overs: the announcement names no lineage (nec01 history will show a gap if this key was handed over)', {})
    return
  }
  const found = await lineageFromEvents(events, bytesToHex(parts.module.boot.get(0)!), config.trustRoot)
  parts.sending.description.lineage.push(...found)
  if (found.length > 0) config.log.info('lineage read back from the relays', { builds_before: found.length, last_upgraded: found[found.length - 1]!.upgraded })
}

const DEFAULT_READBACK_MS = 8_000

/**
 * Silent from here on: no more answers, announcements or roots. The pool stays open a
 * moment for the answer that carries the key, then closes.
 */
function retire(config: ServiceConfig, retirement: Retirement, parts: { inbox: Inbox; roots: RootKeeper; relayPool: RelayPool }, upgraded: string): void {
  retirement.retired = true
  parts.inbox.close()
  parts.roots.stop()
  setTimeout(() => {
    void parts.relayPool.close().then(() => config.upgrade?.onRetired?.(upgraded))
  }, RETIRE_GRACE_MS).unref()
}

/**
 * Relay status for the announcer, held back (latest per relay) until `open()`: a holder
 * announces nothing before it knows it still holds the key.
 */
function gateStatuses(openNow: boolean, deliver: (status: RelayStatus) => void): { report: (status: RelayStatus) => void; open: () => void } {
  const held = new Map<string, RelayStatus>()
  let isOpen = openNow
  return {
    report(status) {
      if (isOpen) deliver(status)
      else held.set(status.url, status)
    },
    open() {
      isOpen = true
      for (const status of held.values()) deliver(status)
      held.clear()
    },
  }
}

/** How long a build that handed its key on keeps its relays for the answer carrying the key. */
const RETIRE_GRACE_MS = 3_000

/** The holder's side of hand-overs, when the build has an upgrade policy. */
function createHolder(
  config: ServiceConfig,
  parts: { identity: Identity; publisher: Publisher; module: ModuleFacts; lineage: LineageEntry[]; onHandedOver: (upgraded: string) => void },
): Holder | null {
  const policy = config.upgrade?.policy ?? null
  if (policy === null) return null
  return createUpgradeHolder({
    policy,
    identity: parts.identity,
    publisher: parts.publisher,
    operator: config.operator ?? null,
    ...(config.trustRoot === undefined ? {} : { trustRoot: config.trustRoot }),
    own: { pcr0: bytesToHex(parts.module.boot.get(0)!), t: parts.module.t, lineage: parts.lineage },
    log: config.log.child({ part: 'upgrade' }),
    onHandedOver: parts.onHandedOver,
    ...(config.upgrade?.nonceTtlSec === undefined ? {} : { nonceTtlSec: config.upgrade.nonceTtlSec }),
  })
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

function serviceDescription(config: ServiceConfig, npub: string, t: 'prod' | 'dev'): ServiceDescription & { lineage: LineageEntry[] } {
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
    // filled in place when read back from the relays, before the first announcement
    lineage: [...(config.upgrade?.lineage ?? [])],
    // The request policy (limits.ts), kept apart from the rest of the announcement.
    policyTags: policyTags(config.pow ?? 0),
  }
}

/** Step 3's parts: the root keeper and everything that signs or sends with its root. */
interface Sending {
  description: ServiceDescription & { lineage: LineageEntry[] }
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
  const description = serviceDescription(config, identity.npub, module.t)
  const announcer = createAnnouncer({ description, roots, signatures: (root) => signatures.forRoot(root), publisher, counters, log })
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
  return { description, roots, sink, publisher, announcer, authRefusals, attach }
}

/**
 * The relays, once a root exists: AUTH is answered with the service key, without tee_root
 * (the challenge is the relay's text, not the enclave's word); each write relay gets the
 * announcements.
 */
function connectRelays(config: ServiceConfig, sending: Sending, onStatus: (status: RelayStatus) => void): RelayPool {
  const pool = createRelayPool({
    relays: config.relays,
    logger: config.log.child({ part: 'relays' }),
    onStatusChange: onStatus,
    ...(config.proxy === undefined ? {} : { proxy: config.proxy }),
    signAuth: (template) => sending.authRefusals.signAuth(template),
  })
  sending.attach(pool)
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

/** Health, on loopback only, from the start: it reports the identity's state while it waits. */
async function startHealth(config: ServiceConfig, report: () => HealthReport): Promise<HealthServer> {
  const rootPem = derToPem(config.trustRoot ?? AWS_NITRO_ROOT_G1_DER)
  return startHealthServer({
    port: config.healthPort,
    ...(config.healthHost === undefined ? {} : { host: config.healthHost }),
    report,
    rootPem: () => rootPem,
  })
}

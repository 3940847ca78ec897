// serve once its flags and configuration are checked: the relays, the NSM, the sealing, the
// service, the banner, then the wait for a signal (or, in dev, for a handed-over key to serve
// from memory). Each part that starts is kept on a stack of closers, so a failed start closes
// what it had started, last first, as a normal stop does. serve loads this module only then: it brings in the service, the NSM and the
// relay pool, which a usage error never needs.
import { errorText } from '../../nec01/errors.js'
import type { NostrEvent } from '../../nec01/types.js'
import { createLogger, type HeldLog, type Logger } from '../log.js'
import { isSimulated, openNsm, type OpenedNsm } from '../nsm/open.js'
import type { NsmSimulator } from '../nsm/simulator.js'
import { simulatorRootPem } from '../nsm/state-dir.js'
import { isNsmError } from '../nsm/types.js'
import type { RelayEntry } from '../relays/config.js'
import { trustFlags } from '../service/announce.js'
import { operatorNpub } from '../service/operator-config.js'
import { SERVICE_NAME, startService, type Service, type ServiceConfig } from '../service/service.js'
import { createAdopt, type Adopted } from '../upgrade/adopt.js'
import { VERSION } from '../version.js'
import { createClosers, type Closers } from './closers.js'
import { CliError, EXIT_OK } from './exit.js'
import { prepareSealing, type PreparedSealing } from './sealing.js'
import type { ServeConfig } from './serve-config.js'
import type { ServeFlags } from './serve-flags.js'
import { embeddedPortUse, healthPortUse, LISTEN_HOST, portError } from './serve-ports.js'
import { releasesFrom } from './upgrade-from.js'

interface EmbeddedRelay {
  url: string
  close(): Promise<void>
}

type InMemory = Extract<Adopted, { sealed: false }>

/** How the run ends: a signal, or (dev) a handed-over key that is not sealed. */
interface Lifecycle {
  shutdown: AbortController
  /** resolves at SIGINT or SIGTERM */
  stopped: Promise<void>
  /** a handed-over key that is not sealed (dev): served by a second service in this process */
  inMemory: InMemory | null
  /** ends the wait after the banner */
  wake: () => void
}

/** What the steps after the relays share: the checks' results and what has started. */
interface Serving {
  flags: ServeFlags
  config: ServeConfig
  log: Logger
  relays: RelayEntry[]
  embedded: EmbeddedRelay | null
  sealing: PreparedSealing
  releases: NostrEvent[]
  simulator: NsmSimulator | null
  life: Lifecycle
  started: Closers
}

async function startEmbedded(flags: ServeFlags, log: Logger): Promise<EmbeddedRelay> {
  const { startEmbeddedRelay } = await import('../embedded/relay.js')
  try {
    return await startEmbeddedRelay({ host: LISTEN_HOST, port: flags.embeddedPort, logger: log.child({ part: 'embedded-relay' }) })
  } catch (err) {
    // taken since checkPorts, or a relay that failed for another reason
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw portError(embeddedPortUse(flags.embeddedPort), err as NodeJS.ErrnoException)
    throw new CliError(`cannot start the embedded relay on ${LISTEN_HOST}:${flags.embeddedPort}: ${errorText(err)}`)
  }
}

/** The configured relays, and with --embedded-relay the embedded one beside them. */
async function startRelays(flags: ServeFlags, config: ServeConfig, log: Logger, started: Closers): Promise<{ relays: RelayEntry[]; embedded: EmbeddedRelay | null }> {
  if (flags.values['embedded-relay'] !== true) return { relays: config.relays, embedded: null }
  const embedded = await startEmbedded(flags, log)
  started.add('embedded relay', () => embedded.close())
  return { relays: [...config.relays, { url: embedded.url, read: true, write: true }], embedded }
}

/** /dev/nsm, or the simulator with --dev. */
async function openModule(flags: ServeFlags, config: ServeConfig, started: Closers): Promise<OpenedNsm> {
  const { dev, stateDir, marginSec, leafLifetimeSec } = flags
  try {
    const nsm = await openNsm({
      dev,
      stateDir,
      ...config.signed.simulator,
      ...(leafLifetimeSec === undefined ? {} : { leafLifetimeSec, leafRenewMarginSec: Math.min(marginSec + 300, Math.floor(leafLifetimeSec / 2)) }),
    })
    // the service closes it too; closing twice is a no-op
    started.add('nsm', () => nsm.close())
    return nsm
  } catch (err) {
    if (isNsmError(err)) throw new CliError(err.message)
    throw err
  }
}

/** The sealing (which may start the KMS stand-in) and, with --upgrade-from, this build's releases. */
async function prepareKey(config: ServeConfig, simulator: NsmSimulator | null, started: Closers): Promise<{ sealing: PreparedSealing; releases: NostrEvent[] }> {
  const sealing = await prepareSealing(config.sealingFlags, simulator)
  started.add('sealing', () => sealing.close())
  const releases = config.upgradeFrom !== undefined && config.signed.source !== undefined ? await releasesFrom(config.signed.source) : []
  return { sealing, releases }
}

// Listen before starting: a sealed identity may take a while to open (KMS down), and a
// signal with no handler kills the process without closing anything.
function listenForShutdown(log: Logger): Lifecycle {
  const life: Lifecycle = { shutdown: new AbortController(), stopped: Promise.resolve(), inMemory: null, wake: () => undefined }
  life.stopped = new Promise<void>((resolveStop) => {
    const stop = (signal: string): void => {
      log.info('shutting down', { signal })
      life.shutdown.abort()
      resolveStop()
      life.wake()
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  return life
}

/** A key came in: sealed, exit so the next start unseals it; not sealed (dev), serve it from memory. */
function onAdopted(life: Lifecycle, log: Logger): (a: Adopted) => void {
  return (a) => {
    if (a.sealed) {
      log.warn('hand-over complete: exiting so the next start unseals the adopted key (restart this service; an enclave is restarted by its parent)', { npub: a.pubkey })
      process.kill(process.pid, 'SIGTERM')
    } else {
      life.inMemory = a
      life.wake()
    }
  }
}

/** The service's configuration; `handed`: the second start, with the key handed over in memory. */
function serviceConfig(s: Serving, nsm: OpenedNsm, handed: InMemory | null): ServiceConfig {
  const { flags, config, log } = s
  const v = flags.values
  const adopt = (): ReturnType<typeof createAdopt> => createAdopt({ nsm, sealing: s.sealing.config, log: log.child({ part: 'upgrade' }), then: onAdopted(s.life, log) })
  const request = config.upgradeFrom === undefined || handed !== null ? {} : { request: { holder: config.upgradeFrom, releases: s.releases, adopt: adopt() } }
  return {
    nsm,
    ...(s.simulator !== null ? { trustRoot: s.simulator.rootDer() } : {}),
    tee: s.simulator !== null ? 'simulated' : 'nsm',
    t: flags.t,
    relays: s.relays,
    ...(flags.proxy === undefined ? {} : { proxy: flags.proxy }),
    healthPort: flags.healthPort,
    marginSec: flags.marginSec,
    name: v.name ?? SERVICE_NAME,
    ...(v.about === undefined ? {} : { about: v.about }),
    ...(v.picture === undefined ? {} : { picture: v.picture }),
    version: VERSION,
    rateLimit: { ratePerSec: flags.rate, burst: flags.burst },
    budgets: flags.budgets,
    pow: flags.pow,
    maxRequestBytes: flags.maxRequestBytes,
    log,
    operator: config.operator,
    repo: config.signed.repo,
    ...(config.signed.source === undefined ? {} : { signatures: config.signed.source }),
    upgrade: { policy: config.upgradePolicy, onRetired: () => process.kill(process.pid, 'SIGTERM'), ...request, ...(handed === null ? {} : { lineage: handed.lineage }) },
    ...(handed === null ? {} : { identitySecret: async () => handed.secret }),
    ...(s.sealing.config === undefined ? {} : { sealing: s.sealing.config }),
    signal: s.life.shutdown.signal,
  }
}

/** The first start. null: a signal stopped it. */
async function startFirst(s: Serving, nsm: OpenedNsm): Promise<Service | null> {
  try {
    return await startService(serviceConfig(s, nsm, null))
  } catch (err) {
    if (s.life.shutdown.signal.aborted) return null
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EADDRINUSE') throw portError(healthPortUse(s.flags.healthPort), e)
    throw err
  }
}

function bannerLines(s: Serving, service: Service): string[] {
  const { simulator, embedded, config } = s
  const simulated = simulator !== null
  const rootPath = simulator !== null ? simulator.rootPemPath() : null
  const relayList = s.relays.map((r) => r.url)
  const trust = trustFlags(simulated ? 'simulated' : 'nsm', service.t, rootPath ?? simulatorRootPem(s.flags.stateDir))
  const policy = config.upgradePolicy
  return [
    `nec01 serve ${VERSION} — ${simulated ? 'DEV MODE: simulated NSM, not an enclave (t=dev)' : `Nitro Enclave (t=${service.t})`}`,
    `npub:    ${service.identity.npub}`,
    ...s.sealing.banner(service.identity.origin),
    `relays:  ${relayList.join(' ')}${embedded !== null ? '  (embedded relay)' : ''}`,
    ...(rootPath !== null ? [`root:    ${rootPath}  (the simulator's root certificate: trust it only for development)`] : []),
    `health:  http://127.0.0.1:${service.healthPort}/health`,
    `operator: ${operatorNpub(config.operator) ?? 'none (operator commands are refused)'}`,
    `upgrade: ${policy === null ? 'none (this npub never moves to another build)' : `${policy.threshold} of ${policy.maintainers.length} maintainers release the next build, cooldown ${policy.cooldownSec} s`}`,
    // The embedded relay is the one known to be up and to carry the service's events.
    `try:     npx nec01 dm ${service.identity.npub} ping --relay ${embedded?.url ?? relayList[0] ?? ''} ${trust}`,
  ]
}

/** Waits for a signal; a key handed over in memory first restarts the service with it. `closeFirst` closes the first service. */
async function serveUntilStopped(s: Serving, closeFirst: () => Promise<void>): Promise<void> {
  const { life } = s
  await new Promise<void>((resolveWake) => {
    life.wake = resolveWake
    if (life.shutdown.signal.aborted || life.inMemory !== null) resolveWake()
  })
  const handed = life.inMemory
  if (handed === null || life.shutdown.signal.aborted) return
  // dev, not sealed: a new simulated boot (PCR16 takes one key per boot) with the key in memory
  await closeFirst()
  const nsm = await openModule(s.flags, s.config, s.started)
  const next = await startService(serviceConfig(s, nsm, handed))
  s.started.add('service', () => next.close())
  s.log.warn('serving the handed-over key from memory: it is lost when this process stops', { npub: next.identity.npub })
  console.log(`npub:    ${next.identity.npub}  (handed over; NOT sealed: lost at restart)`)
  await life.stopped
}

/** Starts each part, keeping it in `started`, then serves until a signal. */
async function startAndServe(flags: ServeFlags, config: ServeConfig, held: HeldLog, log: Logger, started: Closers): Promise<number> {
  const { relays, embedded } = await startRelays(flags, config, log, started)
  const nsm = await openModule(flags, config, started)
  const simulator = isSimulated(nsm) ? nsm : null
  const { sealing, releases } = await prepareKey(config, simulator, started)
  const s: Serving = { flags, config, log, relays, embedded, sealing, releases, simulator, life: listenForShutdown(log), started }
  const service = await startFirst(s, nsm)
  if (service === null) return EXIT_OK
  const closeFirst = started.add('service', () => service.close())
  console.log(bannerLines(s, service).join('\n'))
  held.release()
  await serveUntilStopped(s, closeFirst)
  return EXIT_OK
}

/** Runs the service until a signal; `held` holds the info lines until the banner is out. */
export async function runServe(flags: ServeFlags, config: ServeConfig, held: HeldLog): Promise<number> {
  const log = createLogger({ service: SERVICE_NAME }, { sink: held.sink })
  const started = createClosers(log)
  try {
    return await startAndServe(flags, config, held, log, started)
  } finally {
    // what started, last first: at a stop, or when a step failed (its error goes on up)
    await started.closeAll()
  }
}

// nec01 serve: the enclave service. Without --dev it needs /dev/nsm; with --dev it runs on
// the NSM simulator, and --embedded-relay gives it a real relay on loopback.
import { resolve } from 'node:path'
import { createLogger, holdLogLines, type HeldLog } from '../log.js'
import { listenProblem } from '../ports.js'
import { isSimulated, openNsm } from '../nsm/open.js'
import { defaultStateDir, simulatorRootPem } from '../nsm/state-dir.js'
import { isNsmError } from '../nsm/types.js'
import { packageFile } from '../files.js'
import { ConfigError, DEFAULT_RELAYS_FILE, loadRelayConfig, relaysFromUrls, type RelayEntry } from '../relays/config.js'
import { trustFlags } from '../service/announce.js'
import { budgetAt, DEFAULT_BUDGETS, MAX_POW_BITS, type ServiceBudgets } from '../service/limits.js'
import { startService, SERVICE_NAME } from '../service/service.js'
import { CliError, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { serveNecOptions } from '../cli/serve-necs.js'
import { VERSION } from '../version.js'
import { checkPolicyFor, loadUpgradeFile, UPGRADE_FILE, UpgradePolicyError, type UpgradePolicy } from '../upgrade/policy.js'
import { loadOperatorFile, OPERATOR_FILE, OperatorConfigError, operatorNpub, parseOperatorKey } from '../service/operator-config.js'
import { errorText } from '../../nec01/errors.js'
import { loadKmsSettings } from '../service/kms-config.js'
import { checkUpgradeFrom, releasesFrom } from '../cli/upgrade-from.js'
import { createAdopt, type Adopted } from '../upgrade/adopt.js'
import type { NostrEvent } from '../../nec01/types.js'
import { checkSealingFlags, prepareSealing, type PreparedSealing, type SealingFlags } from '../cli/sealing.js'

export const USAGE = `usage: nec01 serve [--dev] [--relays FILE | --relay URL...] [--health-port N] [--state-dir DIR]
                   [--t prod|dev] [--proxy URL] [--embedded-relay] [options]

Runs the attested Nostr service. Without --dev it uses the Nitro Secure Module (/dev/nsm).

  --dev                  use the NSM simulator (not an enclave: t is always dev)
  --relays FILE          relay list (default: relays.json beside the package)
  --relay URL            a relay to read and write; repeatable; replaces --relays
  --embedded-relay       start a real relay on ws://127.0.0.1:7777 and use it, beside any --relay (dev)
  --embedded-port N      port of the embedded relay (default 7777)
  --health-port N        health endpoint on 127.0.0.1 (default 8765; 0 picks a free port)
  --state-dir DIR        simulator state (default ~/.nec01 or $NEC01_STATE_DIR)
  --t prod|dev           the t tag of the root event (default prod; dev with --dev)
  --proxy URL            send every relay connection through this HTTP CONNECT proxy
                         (default $NEC01_PROXY; in an enclave: http://127.0.0.1:1080)
  --margin SEC           refresh the attestation this long before it expires (default 3600)
  --name TEXT            profile name (default nec01)
  --about TEXT           profile about text
  --picture URL          profile picture
  --rate N               requests per second per sender (default 1)
  --burst N              burst per sender (default 10)
  --budget N             requests per second the service answers, all senders together
                         (default 100; strangers get what known senders leave)
  --attest-budget N      of which attest (an NSM attestation each) per second (default 5)
  --lookup-budget N      NIP-17 inbox-relay lookups per second (default 10)
  --pow N                NIP-13 bits of proof of work required of strangers (default 0:
                         none; at most 32); announced in the kind 13793 announcement
  --max-request-bytes N  drop larger requests (default 65536)
  --leaf-lifetime SEC    dev only: simulated leaf certificate lifetime (default 10800)
  --operator NPUB        dev only: the operator's key instead of operator.json (the image's
                         file, measured into PCR2; docs/operator.md)
  --repo URL             the repository the announcement names (r) and releases must name
                         (default: package.json's repository; none: no r, releases refused)
  --parent-signatures    fetch the builder, launcher and release signatures from the parent
                         (nec01 parent --signatures) through --proxy, at start and at every
                         new attestation (docs/necs.md)
  --signatures FILE      dev only: the signatures from a file (a JSON array of events)
  --sim-instance-id ID   dev only: the simulated EC2 instance id (PCR4), e.g. i-0123456789abcdef0
  --sim-builder-cert F   dev only: the simulated image is signed with this certificate (PCR8)
  --upgrade-policy FILE  dev only: the upgrade policy instead of upgrade.json (who may move
                         the key to a new build, and the cooldown; docs/upgrades.md)
  --upgrade-from NPUB    this is the new build: ask that holder for its key (its release
                         signatures from --parent-signatures or --signatures); once received,
                         the key is sealed and serve exits so the next start unseals it (outside
                         dev a sealed identity is required; in dev without one, the key is
                         served from memory for this run only)

The identity across restarts (docs/identity.md): sealed by AWS KMS to the enclave's PCRs.
  --kms-key ARN|ID       seal the key under this KMS key (default: "kms" in operator.json;
                         none: a new npub every start)
  --kms-region REGION    the key's region (default: from the ARN)
  --kms-endpoint URL     dev and tests only: a KMS stand-in instead of AWS
  --parent URL           who keeps the sealed key: the parent's service (default in an
                         enclave http://127.0.0.1:1081 through --proxy; with --dev a file in
                         the state directory)
  --embedded-kms         dev: run the KMS stand-in here, its key kept in the state directory
                         (npm start): the same npub on every start
  --new-identity REASON  give up the sealed identity and start a new one; the reason is
                         logged, the old sealed key kept aside

Logs go to standard error, one JSON object per line (NEC01_LOG_LEVEL=debug|info|warn|error);
with --dev, info lines wait until the banner is out (npm start 2>service.log keeps them apart).`

const DEFAULT_HEALTH_PORT = 8765
const DEFAULT_EMBEDDED_PORT = 7777

function intOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) throw new CliError(`--${name}: expected a whole number from ${min} to ${max}, got '${value}'`)
  return Number(value)
}

function numberOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`--${name}: expected a positive number, got '${value}'`)
  return n
}

// Checked here so a typo is a usage error at start, not an "internal error" from the pool
// after the attestation was already made (or, for another scheme, a proxy silently misused).
function checkProxy(value: string, source: string): void {
  let url: URL | null = null
  try {
    url = new URL(value)
  } catch {
    url = null
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    // The value is not echoed: a proxy URL may carry a password.
    const got = url === null ? 'not a URL' : `scheme ${url.protocol}`
    throw new CliError(`${source}: expected an HTTP CONNECT proxy URL like http://127.0.0.1:1080 (${got})`)
  }
}

/** Where serve listens: the health endpoint and the embedded relay, both on loopback. */
const LISTEN_HOST = '127.0.0.1'

interface PortUse {
  port: number
  what: string
  flag: string
}

function portError(use: PortUse, err: NodeJS.ErrnoException): CliError {
  const hint = `(pick another with ${use.flag} N; with npm start: npm start -- ${use.flag} N)`
  if (err.code === 'EADDRINUSE') return new CliError(`${use.what} port ${use.port} on ${LISTEN_HOST} is in use ${hint}`)
  return new CliError(`cannot listen on ${LISTEN_HOST}:${use.port} for the ${use.what}: ${err.message} ${hint}`)
}

/** Every port serve will bind, checked before anything starts (docs/service.md). */
async function checkPorts(uses: PortUse[]): Promise<void> {
  const fixed = uses.filter((u) => u.port !== 0)
  for (const [i, use] of fixed.entries()) {
    const other = fixed.slice(i + 1).find((o) => o.port === use.port)
    if (other !== undefined) throw new CliError(`${use.flag} and ${other.flag} are both ${use.port}: give one of them another port`)
  }
  for (const use of fixed) {
    const err = await listenProblem(LISTEN_HOST, use.port)
    if (err !== null) throw portError(use, err)
  }
}

/** upgrade.json beside the package (or --upgrade-policy in dev); null: the key never moves. */
function readUpgradePolicy(file: string | undefined, t: 'prod' | 'dev'): UpgradePolicy | null {
  try {
    const policy = loadUpgradeFile(file ?? packageFile(UPGRADE_FILE))
    if (policy !== null) checkPolicyFor(policy, t)
    return policy
  } catch (err) {
    if (err instanceof UpgradePolicyError) throw new CliError(err.message)
    throw err
  }
}

export async function main(args: string[]): Promise<number> {
  // In dev the banner is what a person reads first: info lines wait for it. On an error they
  // come out before its one line, so it stays the last one.
  const held = holdLogLines()
  try {
    return await serve(args, held)
  } finally {
    held.release()
  }
}

async function serve(args: string[], held: HeldLog): Promise<number> {
  const parsed = parseCommandArgs('serve', USAGE, args, {
    dev: { type: 'boolean' },
    relays: { type: 'string' },
    relay: { type: 'string', multiple: true },
    'embedded-relay': { type: 'boolean' },
    'embedded-port': { type: 'string' },
    'health-port': { type: 'string' },
    'state-dir': { type: 'string' },
    t: { type: 'string' },
    proxy: { type: 'string' },
    margin: { type: 'string' },
    name: { type: 'string' },
    about: { type: 'string' },
    picture: { type: 'string' },
    rate: { type: 'string' },
    burst: { type: 'string' },
    budget: { type: 'string' },
    'attest-budget': { type: 'string' },
    'lookup-budget': { type: 'string' },
    pow: { type: 'string' },
    'max-request-bytes': { type: 'string' },
    'leaf-lifetime': { type: 'string' },
    operator: { type: 'string' },
    repo: { type: 'string' },
    'parent-signatures': { type: 'boolean' },
    signatures: { type: 'string' },
    'sim-instance-id': { type: 'string' },
    'sim-builder-cert': { type: 'string' },
    'upgrade-policy': { type: 'string' },
    'kms-key': { type: 'string' },
    'kms-region': { type: 'string' },
    'kms-endpoint': { type: 'string' },
    parent: { type: 'string' },
    'embedded-kms': { type: 'boolean' },
    'new-identity': { type: 'string' },
    'upgrade-from': { type: 'string' },
  })
  if (parsed === null) return EXIT_OK
  if (parsed.positionals.length > 0) throw new CliError(`unexpected argument '${parsed.positionals[0] ?? ''}' (see nec01 serve --help)`)
  const v = parsed.values
  const dev = v.dev === true
  if (v.t !== undefined && v.t !== 'prod' && v.t !== 'dev') throw new CliError(`--t: expected prod or dev, got '${v.t}'`)
  if (v['embedded-relay'] === true && !dev) throw new CliError('--embedded-relay is for development: use it with --dev')
  if (v['leaf-lifetime'] !== undefined && !dev) throw new CliError('--leaf-lifetime only applies to the simulator (--dev)')
  // In an enclave the operator must be the measured one: a flag is chosen by the host.
  if (v.operator !== undefined && !dev) throw new CliError(`--operator only applies in dev (--dev): an enclave's operator is ${OPERATOR_FILE}, measured into PCR2`)
  if (v['upgrade-policy'] !== undefined && !dev) throw new CliError(`--upgrade-policy only applies in dev (--dev): an enclave's policy is ${UPGRADE_FILE}, measured into PCR2`)
  if (v.relay !== undefined && v.relays !== undefined) throw new CliError('give --relays FILE or --relay URL..., not both')
  for (const flag of ['signatures', 'sim-instance-id', 'sim-builder-cert'] as const) {
    // in an enclave the signatures come from the parent and PCR4/PCR8 from the hardware
    if (v[flag] !== undefined && !dev) throw new CliError(`--${flag} only applies in dev (--dev)`)
  }
  const healthPort = intOption('health-port', v['health-port'], DEFAULT_HEALTH_PORT, 0, 65535)
  const embeddedPort = intOption('embedded-port', v['embedded-port'], DEFAULT_EMBEDDED_PORT, 0, 65535)
  const marginSec = intOption('margin', v.margin, 3600, 0, 86400)
  const leafLifetimeSec = v['leaf-lifetime'] === undefined ? undefined : intOption('leaf-lifetime', v['leaf-lifetime'], 10800, 60, 86400)
  const rate = numberOption('rate', v.rate, 1)
  const burst = intOption('burst', v.burst, 10, 1, 100000)
  const budgets: Partial<ServiceBudgets> = {
    ...(v.budget === undefined ? {} : { requests: budgetAt(DEFAULT_BUDGETS.requests, numberOption('budget', v.budget, 0)) }),
    ...(v['attest-budget'] === undefined ? {} : { expensive: budgetAt(DEFAULT_BUDGETS.expensive, numberOption('attest-budget', v['attest-budget'], 0)) }),
    ...(v['lookup-budget'] === undefined ? {} : { lookups: budgetAt(DEFAULT_BUDGETS.lookups, numberOption('lookup-budget', v['lookup-budget'], 0)) }),
  }
  const pow = intOption('pow', v.pow, 0, 0, MAX_POW_BITS)
  const maxRequestBytes = intOption('max-request-bytes', v['max-request-bytes'], 64 * 1024, 1024, 16 * 1024 * 1024)
  const proxy = v.proxy ?? (process.env.NEC01_PROXY === '' ? undefined : process.env.NEC01_PROXY)
  if (proxy !== undefined) checkProxy(proxy, v.proxy !== undefined ? '--proxy' : 'NEC01_PROXY')
  const signed = serveNecOptions(v, proxy)
  const stateDir = resolve(v['state-dir'] ?? defaultStateDir())
  if (!dev) held.release() // an enclave's log is read by machines: nothing waits
  const log = createLogger({ service: SERVICE_NAME }, { sink: held.sink })
  let operator: string | null
  try {
    operator = v.operator !== undefined ? parseOperatorKey(v.operator) : loadOperatorFile(packageFile(OPERATOR_FILE)).operator
  } catch (err) {
    if (err instanceof OperatorConfigError) throw new CliError(err.message)
    throw err
  }
  const upgradePolicy = readUpgradePolicy(v['upgrade-policy'], (v.t as 'prod' | 'dev' | undefined) ?? (dev ? 'dev' : 'prod'))

  const healthUse: PortUse = { port: healthPort, what: 'health', flag: '--health-port' }
  const embeddedUse: PortUse = { port: embeddedPort, what: 'embedded relay', flag: '--embedded-port' }
  await checkPorts(v['embedded-relay'] === true ? [embeddedUse, healthUse] : [healthUse])
  const sealingFlags = sealingFlagsOf(v, dev, proxy, stateDir)
  checkSealingFlags(sealingFlags)
  const upgradeFrom = checkUpgradeFrom(v['upgrade-from'], {
    dev,
    sealed: sealingFlags.embeddedKms || (sealingFlags.kmsKey ?? sealingFlags.measured?.key) !== undefined,
    signatures: signed.source !== undefined,
  })

  // Relays: the embedded one, --relay, or the relays.json file (validated before anything starts).
  let embedded: { url: string; close(): Promise<void> } | null = null
  let relays: RelayEntry[]
  try {
    if (v['embedded-relay'] === true) {
      const { startEmbeddedRelay } = await import('../embedded/relay.js')
      try {
        embedded = await startEmbeddedRelay({ host: LISTEN_HOST, port: embeddedPort, logger: log.child({ part: 'embedded-relay' }) })
      } catch (err) {
        // taken since checkPorts, or a relay that failed for another reason
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw portError(embeddedUse, err as NodeJS.ErrnoException)
        throw new CliError(`cannot start the embedded relay on ${LISTEN_HOST}:${embeddedPort}: ${errorText(err)}`)
      }
      relays = [...(v.relay === undefined ? [] : relaysFromUrls(v.relay).relays), { url: embedded.url, read: true, write: true }]
    } else if (v.relay !== undefined) {
      relays = relaysFromUrls(v.relay).relays
    } else {
      relays = loadRelayConfig(v.relays ?? DEFAULT_RELAYS_FILE).relays
    }
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message)
    throw err
  }

  const openModule = async (): Promise<Awaited<ReturnType<typeof openNsm>>> => {
    try {
      return await openNsm({
        dev,
        stateDir,
        ...signed.simulator,
        ...(leafLifetimeSec === undefined ? {} : { leafLifetimeSec, leafRenewMarginSec: Math.min(marginSec + 300, Math.floor(leafLifetimeSec / 2)) }),
      })
    } catch (err) {
      await embedded?.close()
      if (isNsmError(err)) throw new CliError(err.message)
      throw err
    }
  }
  let nsm = await openModule()
  const simulator = isSimulated(nsm) ? nsm : null
  const simulated = simulator !== null
  let sealing: PreparedSealing
  let releases: NostrEvent[] = []
  try {
    sealing = await prepareSealing(sealingFlags, simulator)
    if (upgradeFrom !== undefined && signed.source !== undefined) releases = await releasesFrom(signed.source)
  } catch (err) {
    await nsm.close().catch(() => undefined)
    await embedded?.close()
    throw err
  }

  // Listen before starting: a sealed identity may take a while to open (KMS down), and a
  // signal with no handler kills the process without closing anything.
  const shutdown = new AbortController()
  let wake: () => void = () => undefined
  const stopped = new Promise<void>((resolveStop) => {
    const stop = (signal: string): void => {
      log.info('shutting down', { signal })
      shutdown.abort()
      resolveStop()
      wake()
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  // A handed-over key that is not sealed (dev) is served by a second service in this process.
  let inMemory: Extract<Adopted, { sealed: false }> | null = null
  const adopted = (a: Adopted): void => {
    if (a.sealed) {
      log.warn('hand-over complete: exiting so the next start unseals the adopted key (restart this service; an enclave is restarted by its parent)', { npub: a.pubkey })
      process.kill(process.pid, 'SIGTERM')
    } else {
      inMemory = a
      wake()
    }
  }
  const start = (module: typeof nsm, held: typeof inMemory): ReturnType<typeof startService> => {
    const request = upgradeFrom === undefined || held !== null ? {} : { request: { holder: upgradeFrom, releases, adopt: createAdopt({ nsm: module, sealing: sealing.config, log: log.child({ part: 'upgrade' }), then: adopted }) } }
    return startService({
      nsm: module,
      ...(simulator !== null ? { trustRoot: simulator.rootDer() } : {}),
      tee: simulated ? 'simulated' : 'nsm',
      t: (v.t as 'prod' | 'dev' | undefined) ?? (dev ? 'dev' : 'prod'),
      relays,
      ...(proxy === undefined ? {} : { proxy }),
      healthPort,
      marginSec,
      name: v.name ?? SERVICE_NAME,
      ...(v.about === undefined ? {} : { about: v.about }),
      ...(v.picture === undefined ? {} : { picture: v.picture }),
      version: VERSION,
      rateLimit: { ratePerSec: rate, burst },
      budgets,
      pow,
      maxRequestBytes,
      log,
      operator,
      repo: signed.repo,
      ...(signed.source === undefined ? {} : { signatures: signed.source }),
      upgrade: { policy: upgradePolicy, onRetired: () => process.kill(process.pid, 'SIGTERM'), ...request, ...(held === null ? {} : { lineage: held.lineage }) },
      ...(held === null ? {} : { identitySecret: async () => held.secret }),
      ...(sealing.config === undefined ? {} : { sealing: sealing.config }),
      signal: shutdown.signal,
    })
  }
  let service
  try {
    service = await start(nsm, null)
  } catch (err) {
    await nsm.close().catch(() => undefined)
    await sealing.close()
    await embedded?.close()
    if (shutdown.signal.aborted) return EXIT_OK
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EADDRINUSE') throw portError(healthUse, e)
    throw err
  }

  const rootPath = simulator !== null ? simulator.rootPemPath() : null
  const relayList = relays.map((r) => r.url)
  const trust = trustFlags(simulated ? 'simulated' : 'nsm', service.t, rootPath ?? simulatorRootPem(stateDir))
  console.log(
    [
      `nec01 serve ${VERSION} — ${simulated ? 'DEV MODE: simulated NSM, not an enclave (t=dev)' : `Nitro Enclave (t=${service.t})`}`,
      `npub:    ${service.identity.npub}`,
      ...sealing.banner(service.identity.origin),
      `relays:  ${relayList.join(' ')}${embedded !== null ? '  (embedded relay)' : ''}`,
      ...(rootPath !== null ? [`root:    ${rootPath}  (the simulator's root certificate: trust it only for development)`] : []),
      `health:  http://127.0.0.1:${service.healthPort}/health`,
      `operator: ${operatorNpub(operator) ?? 'none (operator commands are refused)'}`,
      `upgrade: ${upgradePolicy === null ? 'none (this npub never moves to another build)' : `${upgradePolicy.threshold} of ${upgradePolicy.maintainers.length} maintainers release the next build, cooldown ${upgradePolicy.cooldownSec} s`}`,
      // The embedded relay is the one known to be up and to carry the service's events.
      `try:     npx nec01 dm ${service.identity.npub} ping --relay ${embedded?.url ?? relayList[0] ?? ''} ${trust}`,
    ].join('\n'),
  )
  held.release()

  await new Promise<void>((resolveWake) => {
    wake = resolveWake
    if (shutdown.signal.aborted || inMemory !== null) resolveWake()
  })
  const handed = inMemory as Extract<Adopted, { sealed: false }> | null
  if (handed !== null && !shutdown.signal.aborted) {
    // dev, not sealed: a new simulated boot (PCR16 takes one key per boot) with the key in memory
    await service.close()
    nsm = await openModule()
    service = await start(nsm, handed)
    log.warn('serving the handed-over key from memory: it is lost when this process stops', { npub: service.identity.npub })
    console.log(`npub:    ${service.identity.npub}  (handed over; NOT sealed: lost at restart)`)
    await stopped
  }
  await service.close()
  await sealing.close()
  await embedded?.close()
  return EXIT_OK
}

type ServeValues = Partial<Record<'kms-key' | 'kms-region' | 'kms-endpoint' | 'parent' | 'new-identity', string>> & { 'embedded-kms'?: boolean }

function sealingFlagsOf(v: ServeValues, dev: boolean, proxy: string | undefined, stateDir: string): SealingFlags {
  let measured
  try {
    measured = loadKmsSettings(packageFile(OPERATOR_FILE), OPERATOR_FILE)
  } catch (err) {
    throw new CliError(errorText(err))
  }
  const given = { kmsKey: v['kms-key'], kmsRegion: v['kms-region'], kmsEndpoint: v['kms-endpoint'], parent: v.parent, newIdentity: v['new-identity'], proxy }
  const defined = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined)) as Partial<SealingFlags>
  return { dev, embeddedKms: v['embedded-kms'] === true, stateDir, measured, ...defined }
}


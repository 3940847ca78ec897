// What a deployment calls to run its own attested service: open the NSM (the simulator only
// when asked for), pick the relays (in dev, a real relay on loopback), start the service with
// the deployment's commands, and give back one close() for all of it. `nec01 serve` is the
// same steps behind command-line flags.
import { createLogger, type Logger } from '../log.js'
import { listenProblem } from '../ports.js'
import { isSimulated, openNsm, type OpenedNsm } from '../nsm/open.js'
import { DEFAULT_RELAYS_FILE, loadRelayConfig, type RelayEntry } from '../relays/config.js'
import { startEmbeddedRelay } from '../embedded/relay.js'
import { VERSION } from '../version.js'
import { trustFlags } from './announce.js'
import { CodedError } from '../../nec01/errors.js'
import type { CommandSpec } from './commands.js'
import { SERVICE_NAME, startService, type Service, type ServiceConfig } from './service.js'

/** The port `npm start` and the examples give the embedded relay. */
export const DEFAULT_EMBEDDED_RELAY_PORT = 7777
/** The health port of `nec01 serve`, and the one enclave/start.sh bridges to the parent. */
export const DEFAULT_HEALTH_PORT = 8765
const DEFAULT_MARGIN_SEC = 3600

export type LaunchMode = 'dev' | 'enclave'

/** The service's own settings, each with serve's default; the rest is the launcher's. */
export type LaunchOptions = Partial<Omit<ServiceConfig, 'nsm' | 'trustRoot' | 'tee' | 'relays' | 'extraCommands' | 'log'>> & {
  /**
   * 'enclave': /dev/nsm, and nothing else (outside an enclave this fails: never a silent
   * fallback to a key anyone can hold). 'dev': the NSM simulator, t=dev, not an enclave.
   * Required, so that no deployment runs on the simulator by default.
   */
  mode: LaunchMode
  /** the deployment's commands, beside ping/info/attest/help and the operator's */
  commands?: Record<string, CommandSpec>
  /** relays to read and write; default: in dev only the embedded relay, in an enclave relays.json */
  relays?: RelayEntry[]
  /** dev: port of the embedded relay on 127.0.0.1 (default 7777, 0 picks a free one); null: none */
  embeddedRelayPort?: number | null
  /** dev: where the simulator keeps its CA (default ~/.nec01 or $NEC01_STATE_DIR) */
  stateDir?: string
  /** default: JSON lines on stderr */
  log?: Logger
}

export interface LaunchedService {
  service: Service
  /** the relays the service uses, the embedded one included */
  relays: RelayEntry[]
  /** the embedded relay's URL, or null when there is none */
  embeddedRelayUrl: string | null
  /** dev: the simulator's root certificate, which replies chain to instead of AWS's; null in an enclave */
  devRoot: { der: Uint8Array; pemPath: string } | null
  /** the trust flags a client passes to `nec01 dm|attest|fetch` for this service */
  clientTrustFlags: string
  /** stops the service, the NSM and the embedded relay */
  close(): Promise<void>
}

export class LaunchError extends CodedError<'launch/options'> {
  constructor(message: string) {
    super('launch/options', message)
  }
}

function checkOptions(options: LaunchOptions): void {
  if (options.mode !== 'dev' && options.mode !== 'enclave') throw new LaunchError(`mode: expected 'dev' or 'enclave', got '${String(options.mode)}'`)
  const port = options.embeddedRelayPort
  if (options.mode === 'enclave' && port !== undefined && port !== null) throw new LaunchError('embeddedRelayPort: the embedded relay is for development (mode: dev)')
  if (port !== undefined && port !== null && !(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new LaunchError(`embeddedRelayPort: expected a port from 0 to 65535, got ${port}`)
}

/**
 * Starts an attested service with the deployment's commands. Throws (having closed what it
 * opened) LaunchError for contradictory options, ConfigError for a bad relay list, NsmError
 * when the module cannot be opened, the listen error (EADDRINUSE) of a port in use, and
 * Error naming a command defined twice.
 */
export async function launchService(options: LaunchOptions): Promise<LaunchedService> {
  checkOptions(options)
  const { mode, commands, relays: given, embeddedRelayPort, stateDir, log: givenLog, ...settings } = options
  const dev = mode === 'dev'
  const log = givenLog ?? createLogger({ service: settings.name ?? SERVICE_NAME })
  const port = embeddedRelayPort === undefined ? DEFAULT_EMBEDDED_RELAY_PORT : embeddedRelayPort
  // every port first: the health port is bound last, after the attestation and the first publications
  const listens: Array<[string, number]> = [[settings.healthHost ?? '127.0.0.1', settings.healthPort ?? DEFAULT_HEALTH_PORT]]
  if (dev && port !== null) listens.push(['127.0.0.1', port])
  for (const [host, p] of listens) {
    const err = await listenProblem(host, p)
    if (err !== null) throw err
  }
  const relays = [...(given ?? (dev ? [] : loadRelayConfig(DEFAULT_RELAYS_FILE).relays))]
  // The relay loads its dev dependencies (@nostr-relay/*) only here: an enclave image has none.
  const embedded = dev && port !== null ? await startEmbeddedRelay({ host: '127.0.0.1', port, logger: log.child({ part: 'embedded-relay' }) }) : null
  if (embedded !== null) relays.push({ url: embedded.url, read: true, write: true })
  let nsm: OpenedNsm | null = null
  try {
    if (relays.length === 0) throw new LaunchError('relays: none given and no embedded relay')
    nsm = await openNsm({ dev, ...(stateDir === undefined ? {} : { stateDir }) })
    const simulator = isSimulated(nsm) ? nsm : null
    // Defaults after the spread: a setting given as undefined still gets one.
    const service = await startService({
      ...settings,
      healthPort: settings.healthPort ?? DEFAULT_HEALTH_PORT,
      marginSec: settings.marginSec ?? DEFAULT_MARGIN_SEC,
      name: settings.name ?? SERVICE_NAME,
      version: settings.version ?? VERSION,
      t: settings.t ?? (dev ? 'dev' : 'prod'),
      nsm,
      ...(simulator === null ? {} : { trustRoot: simulator.rootDer() }),
      tee: simulator === null ? 'nsm' : 'simulated',
      relays,
      log,
      ...(commands === undefined ? {} : { extraCommands: commands }),
    })
    const devRoot = simulator === null ? null : { der: simulator.rootDer(), pemPath: simulator.rootPemPath() }
    return {
      service,
      relays,
      embeddedRelayUrl: embedded?.url ?? null,
      devRoot,
      clientTrustFlags: trustFlags(simulator === null ? 'nsm' : 'simulated', service.t, devRoot?.pemPath ?? ''),
      async close() {
        await service.close()
        await embedded?.close()
      },
    }
  } catch (err) {
    await nsm?.close().catch(() => undefined)
    await embedded?.close()
    throw err
  }
}

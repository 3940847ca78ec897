// One way for tests to run the real thing: a real relay (@nostr-relay/core) on loopback and
// the real service in dev mode (NSM simulator), in process or as a child process, with
// every log line captured so tests can search it for secrets.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger, type Logger } from '../src/log.js'
import { openNsm, type OpenNsmOptions } from '../src/nsm/open.js'
import type { NsmSimulator } from '../src/nsm/simulator.js'
import type { Nsm } from '../src/nsm/types.js'
import { startEmbeddedRelay, type EmbeddedRelay, type EmbeddedRelayOptions } from '../src/embedded/relay.js'
import type { RelayEntry } from '../src/relays/config.js'
import { startService, type Service, type ServiceConfig } from '../src/service/service.js'

/** A port nothing listens on (bound, then released): an unreachable relay for tests. */
export async function freePort(): Promise<number> {
  const srv = createNetServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const { port } = srv.address() as AddressInfo
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

export const quietLogger: Logger = createLogger({}, { level: 'error', sink: () => undefined })

export function tempDir(prefix = 'nec01-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

export function startTestRelay(options: EmbeddedRelayOptions = {}): Promise<EmbeddedRelay> {
  return startEmbeddedRelay({ host: '127.0.0.1', port: 0, logger: quietLogger, ...options })
}

export interface TestService {
  service: Service
  simulator: NsmSimulator
  /** DER of the simulator's root: pass as `root` to the verifier */
  rootDer: Uint8Array
  /** every log line the service wrote */
  logs: string[]
  stateDir: string
  close(): Promise<void>
}

export interface TestServiceOptions {
  relays: RelayEntry[] | string[]
  /** reuse a state directory (and so the simulator's PKI) */
  stateDir?: string
  nsm?: Omit<OpenNsmOptions, 'dev' | 'stateDir'>
  config?: Partial<Omit<ServiceConfig, 'nsm' | 'relays' | 'log'>>
  /** what the service gets instead of the simulator itself: a wrapper that records or fails */
  wrapNsm?: (simulator: NsmSimulator) => Nsm
}

/** The service in this process, on the simulator, with captured logs. */
export async function startTestService(opts: TestServiceOptions): Promise<TestService> {
  const dir = opts.stateDir === undefined ? tempDir('nec01-svc-') : null
  const stateDir = opts.stateDir ?? dir?.path ?? ''
  const logs: string[] = []
  const log = createLogger({ service: 'nec01-test' }, { level: 'debug', sink: (line) => logs.push(line) })
  const simulator = (await openNsm({ dev: true, stateDir, ...opts.nsm })) as NsmSimulator
  const relays: RelayEntry[] = opts.relays.map((r) => (typeof r === 'string' ? { url: r, read: true, write: true } : r))
  const service = await startService({
    nsm: opts.wrapNsm === undefined ? simulator : opts.wrapNsm(simulator),
    trustRoot: simulator.rootDer(),
    tee: 'simulated',
    t: 'dev',
    relays,
    healthPort: 0,
    marginSec: 3600,
    name: 'nec01-test',
    version: '0.0.0-test',
    log,
    ...opts.config,
  })
  return {
    service,
    simulator,
    rootDer: simulator.rootDer(),
    logs,
    stateDir,
    async close() {
      await service.close()
      dir?.remove()
    },
  }
}

export interface SpawnedService {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** resolves with the npub once the service printed its banner */
  ready: Promise<string>
  /** SIGTERM, then the exit code */
  stop(): Promise<number | null>
}

/** `nec01 serve` as a child process (compiled CLI), for what only a process shows. */
export function spawnService(args: string[], env: NodeJS.ProcessEnv = {}): SpawnedService {
  return spawnNode('src/cli.js', ['serve', ...args], env)
}

/**
 * A compiled script (path under dist/, e.g. an example) as a child process; ready once it
 * printed a banner line `npub: npub1…`, as serve does.
 */
export function spawnNode(script: string, args: string[], env: NodeJS.ProcessEnv = {}): SpawnedService {
  // compiled beside this file's directory (dist/test → dist/)
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', script)
  const child = spawn(process.execPath, [path, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
  const ready = new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const m = /npub:\s+(npub1[0-9a-z]+)/.exec(out)
      if (m?.[1] !== undefined) resolve(m[1])
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`service exited (${String(code)}) before it was ready: ${err.split('\n').slice(-3).join(' ')}`)))
  })
  ready.catch(() => undefined)
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    ready,
    stop: () =>
      new Promise((resolve) => {
        // a child killed by a signal has exitCode null and will not emit exit again
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
        child.once('exit', (code) => resolve(code))
        child.kill('SIGTERM')
      }),
  }
}

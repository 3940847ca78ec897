// The processes of the service bench: `nec01 serve --dev` as a child (the compiled CLI
// beside this file), its resident memory and health counters, and a load client
// (service-load.js) run to completion over IPC.
import { fork, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decode as nip19Decode } from 'nostr-tools/nip19'
import type { LoadConfig, LoadMessage, LoadResult } from './load-protocol.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const CLI = join(HERE, '..', 'src', 'cli.js')
const LOAD_CLIENT = join(HERE, 'service-load.js')
const READY_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 15_000
const KIB_PER_MIB = 1024
const MICROS_PER_SEC = 1e6
/** /proc reports CPU time in USER_HZ ticks, fixed at 100 per second by the Linux ABI. */
const USER_HZ = 100
/** /proc/<pid>/stat: utime and stime are fields 14 and 15 (1-based), after the command name */
const STAT_UTIME_AFTER_COMM = 11
/** /proc/stat "cpu" line: user nice system idle iowait irq softirq steal */
const BUSY_FIELDS = [0, 1, 2, 5, 6, 7]

export interface RunningService {
  pid: number
  pubkey: string
  npub: string
  healthUrl: string
  rootPem: string
  logFile: string
  stop(): Promise<number | null>
}

/** `nec01 serve --dev --relay URL --health-port 0 --state-dir DIR [extra]`; logs go to `logFile`. */
export async function spawnService(relay: string, stateDir: string, logFile: string, extra: string[]): Promise<RunningService> {
  const logFd = openSync(logFile, 'a')
  const args = [CLI, 'serve', '--dev', '--relay', relay, '--health-port', '0', '--state-dir', stateDir, ...extra]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', logFd] })
  closeSync(logFd)
  const stdout = child.stdout
  if (stdout === null) throw new Error('nec01 serve: no stdout pipe')
  let out = ''
  stdout.setEncoding('utf8')
  const banner = await new Promise<{ npub: string; health: string; root: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nec01 serve printed no banner within ${READY_TIMEOUT_MS} ms (log: ${logFile})`)), READY_TIMEOUT_MS)
    stdout.on('data', (d: string) => {
      out += d
      const npub = /npub:\s+(npub1[0-9a-z]+)/.exec(out)?.[1]
      const health = /health:\s+(http:\/\/\S+)/.exec(out)?.[1]
      const root = /root:\s+(\S+\.pem)/.exec(out)?.[1]
      if (npub !== undefined && health !== undefined && root !== undefined) {
        clearTimeout(timer)
        resolve({ npub, health, root })
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`nec01 serve exited (${String(code)}) before its banner; log: ${logFile}`))
    })
  })
  const decoded = nip19Decode(banner.npub)
  if (decoded.type !== 'npub') throw new Error(`not an npub: ${banner.npub}`)
  const pid = child.pid
  if (pid === undefined) throw new Error('nec01 serve has no pid')
  return {
    pid,
    pubkey: decoded.data,
    npub: banner.npub,
    healthUrl: banner.health,
    rootPem: readFileSync(banner.root, 'utf8'),
    logFile,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode)
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
        child.once('exit', (code) => {
          clearTimeout(timer)
          resolve(code)
        })
        child.kill('SIGTERM')
      }),
  }
}

/** VmRSS of a process in MiB, from /proc (Linux); null once the process is gone. */
export function rssMbOrNull(pid: number): number | null {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]
  return kb === undefined ? null : Number(kb) / KIB_PER_MIB
}

export function rssMb(pid: number): number {
  const mb = rssMbOrNull(pid)
  if (mb === null) throw new Error(`process ${pid} is gone: no VmRSS`)
  return mb
}

/** CPU seconds (user + system) a process has used, from /proc; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return 0
  }
  // the command name may hold spaces: fields are counted after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[STAT_UTIME_AFTER_COMM]) + Number(fields[STAT_UTIME_AFTER_COMM + 1])) / USER_HZ
}

/** CPU seconds all cores have spent busy since boot, every process included. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
  const values = line.trim().split(/\s+/).slice(1).map(Number)
  return BUSY_FIELDS.reduce((sum, i) => sum + (values[i] ?? 0), 0) / USER_HZ
}

/** This process's CPU seconds (here: the relay plus the orchestration). */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / MICROS_PER_SEC
}

export async function healthCounters(url: string): Promise<Record<string, number>> {
  const res = await fetch(url)
  const body = (await res.json()) as { counters?: Record<string, number> }
  return body.counters ?? {}
}

export function counterDiff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

/** Lines at level error in a service log. */
export function errorLines(logFile: string): string[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"level":"error"'))
}

export interface LoadRun {
  result: LoadResult
  /** service RSS sampled while the client ran, MiB */
  rssSamples: number[]
  /** service RSS at each progress message: [answered, MiB] */
  rssAtProgress: Array<[number, number]>
  /** this process's RSS at the same moments: the embedded relay's, with the orchestration */
  relayRssAtProgress: Array<[number, number]>
}

/** Forks a load client and samples the service's RSS until it reports; bounded by `timeoutMs`. */
export function runLoad(config: LoadConfig, servicePid: number, sampleMs: number, timeoutMs: number, onProgress?: (answered: number) => void): Promise<LoadRun> {
  const child = fork(LOAD_CLIENT, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const rssSamples: number[] = []
  const rssAtProgress: Array<[number, number]> = []
  const relayRssAtProgress: Array<[number, number]> = []
  return new Promise<LoadRun>((resolve, reject) => {
    // A service that dies mid-phase ends the phase with that error, not the bench.
    const sample = (): number | null => {
      const mb = rssMbOrNull(servicePid)
      if (mb === null) {
        child.kill('SIGKILL')
        finish(new Error(`the service (pid ${servicePid}) exited during the ${config.transport} phase; see its log`))
      }
      return mb
    }
    const sampler = setInterval(() => {
      const mb = sample()
      if (mb !== null) rssSamples.push(mb)
    }, sampleMs)
    let settled = false
    const finish = (err: Error | null, result?: LoadResult): void => {
      if (settled) return
      settled = true
      clearInterval(sampler)
      clearTimeout(timer)
      if (err !== null || result === undefined) reject(err ?? new Error('load client sent no result'))
      else resolve({ result, rssSamples, rssAtProgress, relayRssAtProgress })
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      finish(new Error(`load client (${config.transport}) did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('message', (m: LoadMessage) => {
      if (m.type === 'progress') {
        const mb = sample()
        if (mb !== null) rssAtProgress.push([m.answered, mb])
        relayRssAtProgress.push([m.answered, rssMb(process.pid)])
        onProgress?.(m.answered)
      } else if (m.type === 'done') finish(null, m.result)
      else finish(new Error(`load client: ${m.message}`))
    })
    child.once('exit', (code) => finish(new Error(`load client exited (${String(code)}) without a result`)))
  })
}

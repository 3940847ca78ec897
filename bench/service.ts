// Service figures. Three processes on loopback: this one (the real relay,
// @nostr-relay/core through src/embedded/relay.ts, plus the orchestration), `nec01 serve
// --dev` (its own process, so its RSS is its own), and a load client per phase
// (service-load.js). Phases:
//   1. secp256k1 libraries side by side, and the per-request floor (no relay);
//   2. a service with the default rate limits (1/s, burst 10 per sender): RSS at rest, then
//      each transport at a fixed 50 requests/s open loop from 200 senders (0.25/s each, so
//      the limits never bite);
//   3. a service started with --rate/--burst raised (SATURATION_LIMITS): each transport at
//      saturation, closed loop, then 100,000 requests of the cheapest transport with the
//      service's RSS sampled along the way.
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedRelay } from '../src/embedded/relay.js'
import { selfCheck } from './client-crypto.js'
import { startFloor, type FloorRounds } from './floor.js'
import { CONSTANT_TIME_ECDH, OP, measureLibs, type LibFigures } from './libs.js'
import { TRANSPORTS, type LoadConfig, type Transport } from './load-protocol.js'
import { fmt, mb, ms, perSec, ratio, row, type Row } from './report.js'
import {
  counterDiff,
  cpuSeconds,
  errorLines,
  healthCounters,
  machineBusySeconds,
  ownCpuSeconds,
  rssMb,
  rssMbOrNull,
  runLoad,
  spawnService,
  type LoadRun,
  type RunningService,
} from './service-process.js'
import { quietLogger, startSimulatedService } from './simulated.js'
import { median, medianRatio } from './stats.js'

/** Targets (issues 7 and 18). */
export const NIP17_MAX_MS = 3.5
export const NIP17_FLOOR_MAX = 1.3
export const FIXED_RATE_PER_SEC = 50
export const P99_MAX_MS = 100
export const SATURATION_FLOOR_MIN = 0.5
export const RSS_MAX_MB = 200
/** "flat": the long run's median RSS in its second half at most this much above the first half's */
export const RSS_FLAT_MAX = 1.1
/** Per-sender and service-wide limits for the saturation service: high enough never to refuse a bench sender. */
const SATURATION_LIMITS = ['--rate', '1000', '--burst', '1000', '--budget', '1000000']

interface Scale {
  fixedWarmupSec: number
  fixedSec: number
  fixedSenders: number
  satConcurrency: number
  satSenders: number
  satWarmup: number
  satCount: number
  satMaxSec: number
  bulkCount: number
  bulkConcurrency: number
  bulkSenders: number
  bulkMaxSec: number
  drainSec: number
  stallSec: number
  restSettleMs: number
}

const FULL: Scale = {
  fixedWarmupSec: 5,
  fixedSec: 15,
  fixedSenders: 200,
  satConcurrency: 16,
  satSenders: 64,
  satWarmup: 100,
  satCount: 4000,
  satMaxSec: 15,
  bulkCount: 100_000,
  bulkConcurrency: 32,
  bulkSenders: 256,
  bulkMaxSec: 900,
  drainSec: 30,
  stallSec: 10,
  restSettleMs: 3000,
}

const QUICK: Scale = {
  fixedWarmupSec: 2,
  fixedSec: 6,
  fixedSenders: 100,
  satConcurrency: 8,
  satSenders: 32,
  satWarmup: 30,
  satCount: 600,
  satMaxSec: 6,
  bulkCount: 5000,
  bulkConcurrency: 16,
  bulkSenders: 64,
  bulkMaxSec: 90,
  drainSec: 15,
  stallSec: 5,
  restSettleMs: 1500,
}

const RSS_SAMPLE_MS = 250
/** RSS samples along the long run, one per this fraction of its requests */
const PROGRESS_SAMPLES = 20
/** A started service is probed with one ping; one that never answers is restarted. */
const START_ATTEMPTS = 3
const PROBE_SEC = 5
const REPLY_TIMEOUT_SEC = 15
/** setup (keys, connection) and drain on top of a phase's own length */
const PHASE_MARGIN_MS = 60_000

export interface ServiceBenchOptions {
  quick: boolean
  log: (line: string) => void
  /** requests in the long run (default 100,000; 5,000 with quick) */
  bulkCount?: number
}

export interface FloorFigures {
  /** every floor round of the run: per-request ms, median, and as requests/s */
  ms: Record<Transport, number>
  perSec: Record<Transport, number>
  rounds: number
  /** the rounds right before and after each saturation phase, as requests/s */
  aroundSaturation: Record<Transport, number>
  /** NIP-17 requests interleaved with their cryptography alone (bench/floor.ts) */
  nip17Operations: { nip17Ms: number; operationsMs: number; overOperations: number; rounds: number }
}

/** CPU seconds spent during a phase (warm-up, measured part and drain) */
interface PhaseCpu {
  wallSec: number
  service: number
  /** this process: the relay (and the orchestration, which is next to nothing) */
  relay: number
  client: number
  /** every other process on the machine: the load nobody controls */
  others: number
  /** requests sent in the phase, warm-up included */
  requests: number
}

interface PhaseRecord {
  name: string
  transport: Transport
  result: LoadRun['result']
  rssMaxMb: number
  serviceCounters: Record<string, number>
  cpu: PhaseCpu
}

export interface ServiceDetails {
  libs: LibFigures
  floor: FloorFigures
  rest: { defaultLimitsMb: number; raisedLimitsMb: number }
  fixed: PhaseRecord[]
  saturation: PhaseRecord[]
  bulk: (PhaseRecord & { rssAtProgress: Array<[number, number]>; endMb: number; dedupEntries: number | null; relayRssAtProgress: Array<[number, number]>; relayEndMb: number }) | null
  serviceErrors: string[]
  /** starts after which the service never answered (the inbox subscription was lost) */
  deafStarts: number
}

const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec))

async function phase(
  svc: RunningService,
  name: string,
  config: LoadConfig,
  expectedSec: number,
  log: (line: string) => void,
): Promise<PhaseRecord & { run: LoadRun }> {
  const before = await healthCounters(svc.healthUrl)
  const start = { wall: Date.now(), service: cpuSeconds(svc.pid), relay: ownCpuSeconds(), machine: machineBusySeconds() }
  const run = await runLoad(config, svc.pid, RSS_SAMPLE_MS, expectedSec * 1000 + PHASE_MARGIN_MS, (answered) => log(`    ${answered} answered, service RSS ${fmt(rssMbOrNull(svc.pid) ?? Number.NaN, 1)} MB`))
  const r = run.result
  const service = cpuSeconds(svc.pid) - start.service
  const relay = ownCpuSeconds() - start.relay
  const machine = machineBusySeconds() - start.machine
  const cpu: PhaseCpu = {
    wallSec: (Date.now() - start.wall) / 1000,
    service,
    relay,
    client: r.cpuSec,
    others: Math.max(0, machine - service - relay - r.cpuSec),
    requests: r.sent + r.warmup.sent,
  }
  const after = await healthCounters(svc.healthUrl)
  log(
    `  ${name} ${config.transport}: ${r.answered}/${r.sent} answered in ${fmt(r.durationSec, 1)} s (${fmt(r.answeredPerSec, 1)}/s), p50 ${fmt(r.latencyMs.p50, 1)} ms, p99 ${fmt(r.latencyMs.p99, 1)} ms, lost ${r.lost}`,
  )
  return { name, transport: config.transport, result: r, rssMaxMb: Math.max(0, ...run.rssSamples), serviceCounters: counterDiff(before, after), cpu, run }
}

function loadConfig(svc: RunningService, relay: string, transport: Transport, mode: LoadConfig['mode'], senders: number, scale: Scale, progressEvery = 0): LoadConfig {
  return {
    relay,
    service: svc.pubkey,
    transport,
    mode,
    senders,
    drainSec: scale.drainSec,
    stallSec: scale.stallSec,
    replyTimeoutSec: REPLY_TIMEOUT_SEC,
    rootPem: svc.rootPem,
    progressEvery,
  }
}

/**
 * Starts `nec01 serve` and makes sure it hears requests. The relay pool can lose the
 * inbox subscription for good at start (docs/performance.md, "Found while measuring"):
 * the service then runs, healthy by its own account, and answers nothing. Such a start
 * is counted and replaced, so the figures describe a service that works.
 */
async function startAnsweringService(relay: string, stateDir: string, logFile: string, extra: string[], log: (line: string) => void): Promise<{ svc: RunningService; deafStarts: number }> {
  let deafStarts = 0
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const svc = await spawnService(relay, stateDir, logFile, extra)
    const probe = await runLoad(
      {
        relay,
        service: svc.pubkey,
        transport: 'rpc',
        mode: { kind: 'closed', concurrency: 1, warmupCount: 0, count: 1, maxSec: PROBE_SEC, presign: false },
        senders: 1,
        drainSec: PROBE_SEC,
        stallSec: PROBE_SEC,
        replyTimeoutSec: PROBE_SEC,
        rootPem: svc.rootPem,
        progressEvery: 0,
      },
      svc.pid,
      RSS_SAMPLE_MS,
      PROBE_SEC * 4 * 1000 + PHASE_MARGIN_MS,
    )
    if (probe.result.answered === 1) return { svc, deafStarts }
    deafStarts++
    log(`  the service did not answer a probe within ${PROBE_SEC} s after start (attempt ${attempt}): restarting it`)
    await svc.stop()
  }
  throw new Error(`nec01 serve did not answer a single request after ${START_ATTEMPTS} starts; see ${logFile}`)
}

export async function runServiceBench(opts: ServiceBenchOptions): Promise<{ rows: Row[]; details: ServiceDetails }> {
  const scale = opts.quick ? QUICK : FULL
  const bulkCount = opts.bulkCount ?? scale.bulkCount
  const log = opts.log
  // the load client's requests must be what real clients send before any figure counts
  selfCheck()
  log('secp256k1 libraries')
  const libs = await measureLibs(opts)
  log('per-request floor (in process, no relay)')
  const sim = await startSimulatedService()
  const floor = await startFloor(sim, opts)
  const floorRounds: Record<Transport, number[]> = { rpc: [], nip04: [], nip17: [] }
  const aroundRounds: Record<Transport, number[]> = { rpc: [], nip04: [], nip17: [] }
  const measureFloor = async (transports: readonly Transport[], around: boolean): Promise<void> => {
    const r: FloorRounds = await floor.measure(transports)
    for (const t of transports) {
      floorRounds[t].push(...(r[t] ?? []))
      if (around) aroundRounds[t].push(...(r[t] ?? []))
    }
  }
  await measureFloor(TRANSPORTS, false)
  log(`  ${TRANSPORTS.map((t) => `${t} ${fmt(median(floorRounds[t]))} ms`).join(', ')}`)
  const pair = await floor.measureNip17Operations()
  const nip17Operations = { nip17Ms: median(pair.nip17), operationsMs: median(pair.operations), overOperations: medianRatio(pair.nip17, pair.operations), rounds: pair.nip17.length }
  log(`  nip17 ${fmt(nip17Operations.nip17Ms)} ms against its operations alone ${fmt(nip17Operations.operationsMs)} ms`)

  const dir = mkdtempSync(join(tmpdir(), 'nec01-bench-svc-'))
  const relay = await startEmbeddedRelay({ host: '127.0.0.1', port: 0, logger: quietLogger })
  const services: RunningService[] = []
  const fixed: PhaseRecord[] = []
  const saturation: PhaseRecord[] = []
  let bulk: ServiceDetails['bulk'] = null
  const rest = { defaultLimitsMb: 0, raisedLimitsMb: 0 }
  const serviceErrors: string[] = []
  let deafStarts = 0
  try {
    // 2. default limits, fixed offered load
    log(`service, default rate limits: ${FIXED_RATE_PER_SEC} requests/s open loop per transport`)
    const started = await startAnsweringService(relay.url, join(dir, 'state'), join(dir, 'service-default.log'), [], log)
    const a = started.svc
    deafStarts += started.deafStarts
    services.push(a)
    await sleep(scale.restSettleMs)
    rest.defaultLimitsMb = rssMb(a.pid)
    for (const transport of TRANSPORTS) {
      const mode = { kind: 'rate' as const, ratePerSec: FIXED_RATE_PER_SEC, warmupSec: scale.fixedWarmupSec, durationSec: scale.fixedSec }
      const p = await phase(a, `${FIXED_RATE_PER_SEC}/s`, loadConfig(a, relay.url, transport, mode, scale.fixedSenders, scale), scale.fixedWarmupSec + scale.fixedSec, log)
      fixed.push(p)
    }
    serviceErrors.push(...errorLines(a.logFile))
    await a.stop()

    // 3. raised limits, saturation and the long run
    log(`service, limits raised (${SATURATION_LIMITS.join(' ')}): closed loop, ${scale.satConcurrency} requests in flight`)
    const startedB = await startAnsweringService(relay.url, join(dir, 'state'), join(dir, 'service-raised.log'), SATURATION_LIMITS, log)
    const b = startedB.svc
    deafStarts += startedB.deafStarts
    services.push(b)
    await sleep(scale.restSettleMs)
    rest.raisedLimitsMb = rssMb(b.pid)
    for (const transport of TRANSPORTS) {
      // the floor right before and right after: the phase is compared with these rounds
      await measureFloor([transport], true)
      const mode = { kind: 'closed' as const, concurrency: scale.satConcurrency, warmupCount: scale.satWarmup, count: scale.satCount, maxSec: scale.satMaxSec, presign: true }
      const p = await phase(b, 'saturation', loadConfig(b, relay.url, transport, mode, scale.satSenders, scale), scale.satMaxSec * 2, log)
      saturation.push(p)
      await sleep(scale.restSettleMs)
      await measureFloor([transport], true)
    }
    const cheapest = TRANSPORTS.reduce((best, t) => (median(floorRounds[t]) < median(floorRounds[best]) ? t : best))
    log(`  ${bulkCount} ${cheapest} requests (cheapest by floor), closed loop, ${scale.bulkConcurrency} in flight`)
    // signed on the fly: presigning 100,000 requests would take a minute and hold them all
    const bulkMode = { kind: 'closed' as const, concurrency: scale.bulkConcurrency, warmupCount: scale.satWarmup, count: bulkCount, maxSec: scale.bulkMaxSec, presign: false }
    const p = await phase(b, 'bulk', loadConfig(b, relay.url, cheapest, bulkMode, scale.bulkSenders, scale, Math.max(1, Math.floor(bulkCount / PROGRESS_SAMPLES))), scale.bulkMaxSec, log)
    await sleep(scale.restSettleMs)
    const health = await healthCounters(b.healthUrl)
    bulk = { ...p, rssAtProgress: p.run.rssAtProgress, endMb: rssMb(b.pid), dedupEntries: health.dedup_entries ?? null, relayRssAtProgress: p.run.relayRssAtProgress, relayEndMb: rssMb(process.pid) }
    serviceErrors.push(...errorLines(b.logFile))
    await b.stop()
  } finally {
    for (const s of services) await s.stop()
    await relay.close()
    floor.close()
    await sim.close()
    rmSync(dir, { recursive: true, force: true })
  }
  const perSecOf = (rounds: number[]): number => 1000 / median(rounds)
  const floorFigures: FloorFigures = {
    ms: Object.fromEntries(TRANSPORTS.map((t) => [t, median(floorRounds[t])])) as Record<Transport, number>,
    perSec: Object.fromEntries(TRANSPORTS.map((t) => [t, perSecOf(floorRounds[t])])) as Record<Transport, number>,
    rounds: floorRounds.rpc.length,
    aroundSaturation: Object.fromEntries(TRANSPORTS.map((t) => [t, perSecOf(aroundRounds[t])])) as Record<Transport, number>,
    nip17Operations,
  }
  const details: ServiceDetails = { libs: libs.figures, floor: floorFigures, rest, fixed, saturation, bulk, serviceErrors: serviceErrors.slice(0, 20), deafStarts }
  return { rows: [...libs.rows, ...serviceRows(details, { ...scale, bulkCount })], details }
}

function lostText(r: PhaseRecord['result']): string {
  return `lost ${r.lost}${r.refusedByRelay > 0 ? `, refused ${r.refusedByRelay}` : ''}${r.errorReplies > 0 ? `, error replies ${r.errorReplies}` : ''}`
}

/**
 * The same operations, priced from the libraries' medians (bench/libs.ts): the fastest
 * implementation of each, the service's long-term ECDH among the constant-time ones only.
 * For scale: those medians are taken minutes earlier, on 200-byte events.
 */
const NIP17_OPERATIONS: { op: keyof typeof OP; count: number; constantTime?: true }[] = [
  { op: 'verify', count: 3 },
  { op: 'sign', count: 2 },
  { op: 'pubkey', count: 1 },
  { op: 'ecdh', count: 1, constantTime: true },
  { op: 'ecdh', count: 1 },
  { op: 'encrypt', count: 2 },
  { op: 'decrypt', count: 2 },
]

function nip17PricedMs(libs: LibFigures): { ms: number; parts: string[] } {
  let us = 0
  const parts: string[] = []
  for (const { op, count, constantTime } of NIP17_OPERATIONS) {
    const impls = Object.entries(libs.us[OP[op]] ?? {}).filter(([impl]) => constantTime !== true || (CONSTANT_TIME_ECDH as readonly string[]).includes(impl))
    const [impl, fastest] = impls.reduce((a, b) => (b[1] < a[1] ? b : a))
    us += count * fastest
    parts.push(`${count}× ${op}${constantTime === true ? ' (constant time)' : ''} ${fmt(fastest, 0)} µs (${impl})`)
  }
  return { ms: us / 1000, parts }
}

function nip17Rows(d: ServiceDetails, section: string): Row[] {
  const priced = nip17PricedMs(d.libs)
  const pair = d.floor.nip17Operations
  return [
    row({ id: 'service.floor.nip17.priced', section, figure: 'nip17 operations, priced from the libraries above', value: ms(priced.ms), raw: priced.ms, unit: 'ms', comparison: priced.parts.join(', ') }),
    row({ id: 'service.floor.nip17.operations', section, figure: `nip17 operations alone, interleaved with the requests below (${pair.rounds} rounds)`, value: ms(pair.operationsMs), raw: pair.operationsMs, unit: 'ms', comparison: 'the same operations on the service\'s primitives, on real-size events (bench/floor.ts)' }),
    row({
      id: 'service.floor.nip17.target',
      section,
      figure: 'nip17: one ping in process, against its operations alone',
      value: ms(pair.nip17Ms),
      raw: pair.nip17Ms,
      unit: 'ms',
      comparison: `= ${perSec(1000 / pair.nip17Ms)} on one core; ours / operations = ${ratio(pair.overOperations)}`,
      target: `≤ ${NIP17_MAX_MS} ms, ≤ ${NIP17_FLOOR_MAX}× floor`,
      pass: pair.nip17Ms <= NIP17_MAX_MS && pair.overOperations <= NIP17_FLOOR_MAX,
    }),
  ]
}

/**
 * GC makes single samples jump by tens of MB, so halves are compared by their medians; the
 * first sample (JIT, caches filling) belongs to the warm-up.
 */
function flatness(points: Array<[number, number]>): { settled: Array<[number, number]>; firstHalf: number; secondHalf: number; growth: number } {
  const settled = points.slice(1)
  const mid = Math.floor(settled.length / 2)
  const firstHalf = median(settled.slice(0, mid).map((x) => x[1]))
  const secondHalf = median(settled.slice(mid).map((x) => x[1]))
  return { settled, firstHalf, secondHalf, growth: secondHalf / firstHalf }
}

/** The flatness row: a process's RSS over the long run, warm-up excluded (see flatness). */
function rssFlatRow(id: string, section: string, points: Array<[number, number]>): Row {
  const { settled, firstHalf, secondHalf, growth } = flatness(points)
  return row({
    id,
    section,
    figure: 'flat after warm-up: median RSS, second half / first half',
    value: ratio(growth),
    raw: growth,
    unit: '×',
    comparison: settled.length < 2 ? 'too few progress samples' : `${mb(firstHalf)} → ${mb(secondHalf)}; highest sample ${mb(Math.max(...points.map((x) => x[1])))}`,
    target: `≤ ${RSS_FLAT_MAX}×`,
    pass: settled.length >= 2 && growth <= RSS_FLAT_MAX,
  })
}

const byAnswered = (points: Array<[number, number]>): string => points.map(([n, v]) => `${n >= 1000 ? `${Math.round(n / 1000)}k` : n} ${fmt(v, 0)}`).join(', ')

/** The embedded relay runs in this process: its RSS is this process's, orchestration included. */
function relayRssRows(points: Array<[number, number]>, endMb: number, count: number): Row[] {
  const section = 'embedded relay: resident memory (VmRSS of the bench process, which runs it)'
  return [
    row({ id: 'relay.rss.after', section, figure: `after the ${count} requests`, value: mb(endMb), raw: endMb, unit: 'MB', comparison: `RSS by answered: ${byAnswered(points)}` }),
    rssFlatRow('relay.rss.flat', section, points),
  ]
}

function serviceRows(d: ServiceDetails, scale: Scale): Row[] {
  const rows: Row[] = []
  const floorSection = `service: per-request floor, in process, no relay (${d.floor.rounds} rounds over the run)`
  for (const t of TRANSPORTS) {
    rows.push(
      row({ id: `service.floor.${t}`, section: floorSection, figure: `${t}: one ping, request in → reply handed to the relay`, value: ms(d.floor.ms[t]), raw: d.floor.ms[t], unit: 'ms', comparison: `= ${perSec(d.floor.perSec[t])} on one core` }),
    )
  }
  rows.push(...nip17Rows(d, floorSection))
  const fixedSection = `service: ${FIXED_RATE_PER_SEC} requests/s offered, open loop, ${scale.fixedSenders} senders, default limits`
  for (const p of d.fixed) {
    const r = p.result
    rows.push(
      row({
        id: `service.fixed.${p.transport}`,
        section: fixedSection,
        figure: `${p.transport}: answered/s; latency p50, p99 (${r.answered}/${r.sent})`,
        value: perSec(r.answeredPerSec),
        raw: r.answeredPerSec,
        unit: '/s',
        comparison: `p50 ${ms(r.latencyMs.p50)}, p99 ${ms(r.latencyMs.p99)}; offered ${perSec(r.offeredPerSec)}; ${lostText(r)}`,
        target: `p99 < ${P99_MAX_MS} ms`,
        pass: r.latencyMs.count > 0 && r.latencyMs.p99 < P99_MAX_MS,
      }),
    )
  }
  const satSection = `service: saturation, closed loop, ${scale.satConcurrency} in flight, ${scale.satSenders} senders, limits raised`
  for (const p of d.saturation) {
    const r = p.result
    // The faster floor estimate is the stricter one: rounds taken right after a phase can
    // run slow while this process (the relay's) is still settling, which would flatter us.
    const floorNear = d.floor.aroundSaturation[p.transport]
    const floorRun = d.floor.perSec[p.transport]
    const floor = Math.max(floorNear, floorRun)
    const over = r.answeredPerSec / floor
    rows.push(
      row({
        id: `service.saturation.${p.transport}`,
        section: satSection,
        figure: `${p.transport}: answered/s (${r.answered} in ${fmt(r.durationSec, 1)} s)`,
        value: perSec(r.answeredPerSec),
        raw: r.answeredPerSec,
        unit: '/s',
        comparison: `/ floor ${perSec(floor)} (the faster of: around this phase ${perSec(floorNear)}, whole run ${perSec(floorRun)}) = ${ratio(over)}; p50 ${ms(r.latencyMs.p50)}, p99 ${ms(r.latencyMs.p99)}; ${lostText(r)}`,
        target: `≥ ${SATURATION_FLOOR_MIN}× floor`,
        pass: over >= SATURATION_FLOOR_MIN,
      }),
    )
  }
  const all = [...d.fixed, ...d.saturation, ...(d.bulk === null ? [] : [d.bulk])]
  const lost = all.reduce((n, p) => n + p.result.lost + p.result.refusedByRelay, 0)
  const sent = all.reduce((n, p) => n + p.result.sent, 0)
  rows.push(
    row({
      id: 'service.lost',
      section: 'service: every phase',
      figure: 'requests lost (no reply, or refused by the relay)',
      value: String(lost),
      raw: lost,
      unit: 'requests',
      comparison: `of ${sent} measured requests; ${all.map((p) => `${p.name} ${p.transport} ${p.result.lost}`).join(', ')}`,
      target: '0',
      pass: lost === 0,
    }),
  )
  const tee = all.map((p) => p.result.teeRoot)
  rows.push(
    row({
      id: 'service.tee_root',
      section: 'service: every phase',
      figure: "one reply per phase: its tee_root checked by verifyTeeRoot",
      value: `${tee.filter((v) => v?.valid === true).length}/${tee.length} valid`,
      raw: tee.filter((v) => v?.valid === true).length,
      unit: 'phases',
      comparison: tee.some((v) => v?.valid !== true) ? `reasons: ${tee.map((v) => v?.reason ?? 'none').join(', ')}` : '',
    }),
  )

  rows.push(
    row({
      id: 'service.deaf-starts',
      section: 'service: every phase',
      figure: 'starts after which the service answered nothing (restarted)',
      value: String(d.deafStarts),
      raw: d.deafStarts,
      unit: 'starts',
      comparison: d.deafStarts > 0 ? 'inbox subscription closed by the relay before AUTH and never reopened (see docs)' : '',
    }),
  )
  const cpuSection = 'service: where the CPU went (ms per request, whole phase; cores busy)'
  for (const p of all) {
    const c = p.cpu
    const per = (sec: number): string => fmt((sec * 1000) / Math.max(1, c.requests), 2)
    const busy = (c.service + c.relay + c.client + c.others) / Math.max(c.wallSec, 1e-9)
    rows.push(
      row({
        id: `service.cpu.${p.name}.${p.transport}`,
        section: cpuSection,
        figure: `${p.name} ${p.transport}: service ms/request`,
        value: `${per(c.service)} ms`,
        raw: (c.service * 1000) / Math.max(1, c.requests),
        unit: 'ms',
        comparison: `relay ${per(c.relay)}, load client ${per(c.client)} ms/request; service used ${fmt(c.service / c.wallSec, 2)} of a core, other processes ${fmt(c.others / c.wallSec, 2)} cores; all ${fmt(busy, 2)} of ${cpus().length}`,
      }),
    )
  }

  const memSection = 'service: resident memory (VmRSS of the nec01 serve process)'
  const underLoad = Math.max(...all.map((p) => p.rssMaxMb))
  rows.push(
    row({ id: 'service.rss.rest', section: memSection, figure: 'at rest, after start', value: mb(d.rest.defaultLimitsMb), raw: d.rest.defaultLimitsMb, unit: 'MB', comparison: `second instance: ${mb(d.rest.raisedLimitsMb)}` }),
    row({
      id: 'service.rss.load',
      section: memSection,
      figure: 'under load: highest sample of every phase',
      value: mb(underLoad),
      raw: underLoad,
      unit: 'MB',
      comparison: all.map((p) => `${p.name} ${p.transport} ${fmt(p.rssMaxMb, 0)}`).join(', '),
      target: `< ${RSS_MAX_MB} MB`,
      pass: underLoad < RSS_MAX_MB,
    }),
  )
  const b = d.bulk
  if (b !== null) {
    const r = b.result
    const points = b.rssAtProgress
    rows.push(
      row({
        id: 'service.bulk',
        section: memSection,
        figure: `${scale.bulkCount} ${b.transport} requests at saturation (${scale.bulkConcurrency} in flight)`,
        value: `${fmt(r.durationSec, 0)} s`,
        raw: r.durationSec,
        unit: 's',
        comparison: `${r.answered}/${r.sent} answered, ${perSec(r.answeredPerSec)}, p50 ${ms(r.latencyMs.p50)}, p99 ${ms(r.latencyMs.p99)}; ${lostText(r)}`,
        target: `all ${scale.bulkCount} answered`,
        pass: r.answered >= scale.bulkCount && r.lost === 0,
      }),
      row({
        id: 'service.rss.after',
        section: memSection,
        figure: `after the ${scale.bulkCount} requests`,
        value: mb(b.endMb),
        raw: b.endMb,
        unit: 'MB',
        comparison: `dedup entries ${b.dedupEntries ?? '?'}; RSS by answered: ${byAnswered(points)}`,
        target: `< ${RSS_MAX_MB} MB`,
        pass: b.endMb < RSS_MAX_MB,
      }),
      rssFlatRow('service.rss.flat', memSection, points),
    )
    rows.push(...relayRssRows(b.relayRssAtProgress, b.relayEndMb, scale.bulkCount))
  }
  if (d.serviceErrors.length > 0) {
    rows.push(row({ id: 'service.errors', section: 'service: every phase', figure: 'error lines in the service logs', value: String(d.serviceErrors.length), raw: d.serviceErrors.length, unit: 'lines', comparison: d.serviceErrors[0]!.slice(0, 200) }))
  }
  return rows
}

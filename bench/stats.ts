// Statistics and the timing loop every figure goes through. The machine is shared (two
// cores, other processes compiling and testing), so no single timing means anything:
// contenders run interleaved, round after round, in the same process, and a comparison is
// the median over rounds of the per-round ratio, so a burst of outside load that slows one
// round slows every contender in it.
import { performance } from 'node:perf_hooks'

export function median(values: readonly number[]): number {
  return percentile(values, 50)
}

/** Linear interpolation between closest ranks; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo)
}

export interface LatencySummary {
  count: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

export function summarize(values: readonly number[]): LatencySummary {
  let sum = 0
  let max = Number.NEGATIVE_INFINITY
  for (const v of values) {
    sum += v
    if (v > max) max = v
  }
  return {
    count: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: values.length === 0 ? Number.NaN : max,
    mean: values.length === 0 ? Number.NaN : sum / values.length,
  }
}

/** Median over rounds of a[i] / b[i]: each round's contenders ran back to back. */
export function medianRatio(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length)
  const ratios: number[] = []
  for (let i = 0; i < n; i++) if (b[i]! > 0) ratios.push(a[i]! / b[i]!)
  return median(ratios)
}

export const nowMs = (): number => performance.now()

/** One thing being timed: `op(i)` for i in 0..batch-1, after an untimed `prepare(batch)`. */
export interface Contender {
  /** operations per timed batch; a round's time for this contender is batch × per-op */
  batch: number
  /** untimed: build what the batch consumes (fresh copies, cleared caches) */
  prepare?: (batch: number) => void | Promise<void>
  /** untimed, before every single op (e.g. clearing a cache the op must not find) */
  before?: (i: number) => void
  op: (i: number) => unknown
}

export interface RoundsOptions {
  /** rounds wanted; fewer when maxMs runs out, never fewer than minRounds */
  rounds: number
  minRounds: number
  /** untimed warm-up batches of every contender before round one (JIT, caches, thread pool) */
  warmupBatches: number
  /** wall-clock cap for the timed rounds */
  maxMs: number
}

/** Per contender: per-op milliseconds, one value per round. */
export type RoundTimes<K extends string> = Record<K, number[]>

async function runBatch(c: Contender): Promise<number> {
  if (c.prepare !== undefined) await c.prepare(c.batch)
  let elapsed = 0
  if (c.before === undefined) {
    const start = nowMs()
    for (let i = 0; i < c.batch; i++) {
      const r = c.op(i)
      if (r instanceof Promise) await r
    }
    elapsed = nowMs() - start
  } else {
    for (let i = 0; i < c.batch; i++) {
      c.before(i)
      const start = nowMs()
      const r = c.op(i)
      if (r instanceof Promise) await r
      elapsed += nowMs() - start
    }
  }
  return elapsed / c.batch
}

/**
 * Warm-up, then rounds in which every contender runs one batch, in rotating order so
 * none is always first after a pause. Bounded by `rounds` and by `maxMs`.
 */
export async function compareInRounds<K extends string>(contenders: Record<K, Contender>, opts: RoundsOptions): Promise<RoundTimes<K>> {
  const names = Object.keys(contenders) as K[]
  for (let w = 0; w < opts.warmupBatches; w++) for (const name of names) await runBatch(contenders[name])
  const times = Object.fromEntries(names.map((n) => [n, [] as number[]])) as RoundTimes<K>
  const started = nowMs()
  for (let round = 0; round < opts.rounds; round++) {
    if (round >= opts.minRounds && nowMs() - started > opts.maxMs) break
    for (let j = 0; j < names.length; j++) {
      const name = names[(round + j) % names.length]!
      times[name].push(await runBatch(contenders[name]))
    }
  }
  return times
}

// The verification a user waits for: a browser or a CLI verifies a service's tee_root once,
// in a process that has never seen that chain. Each sample is a new Node process
// (bench/fresh-child.ts) warmed on one other real document; ours and the node:crypto floor
// alternate, process after process, and the figure is the median of the per-pair ratios.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { median, medianRatio } from './stats.js'

const run = promisify(execFile)
const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), 'fresh-child.js')
const PAIRS = 15
const QUICK_PAIRS = 4

export interface FreshFigures {
  oursMs: number
  floorMs: number
  /** median over process pairs of ours / floor */
  overFloor: number
  /** the floor with its certificates parsed (node:crypto X509Certificate) inside the timing */
  floorParsedMs: number
  overFloorParsed: number
  pairs: number
}

async function sample(mode: 'ours' | 'floor'): Promise<{ ms: number; parsedMs: number }> {
  const { stdout } = await run(process.execPath, [CHILD, mode], { cwd: process.cwd() })
  const s = JSON.parse(stdout) as { ms: number; parsedMs?: number; valid: boolean }
  if (!s.valid) throw new Error(`fresh ${mode}: the headline document did not verify`)
  return { ms: s.ms, parsedMs: s.parsedMs ?? s.ms }
}

export async function measureFresh(opts: { quick: boolean }): Promise<FreshFigures> {
  const ours: number[] = []
  const floor: number[] = []
  const floorParsed: number[] = []
  const floorSample = async (): Promise<void> => {
    const f = await sample('floor')
    floor.push(f.ms)
    floorParsed.push(f.parsedMs)
  }
  const pairs = opts.quick ? QUICK_PAIRS : PAIRS
  for (let i = 0; i < pairs; i++) {
    // alternate which goes first, so neither always follows the other's exit
    if (i % 2 === 0) {
      ours.push((await sample('ours')).ms)
      await floorSample()
    } else {
      await floorSample()
      ours.push((await sample('ours')).ms)
    }
  }
  return { oursMs: median(ours), floorMs: median(floor), overFloor: medianRatio(ours, floor), floorParsedMs: median(floorParsed), overFloorParsed: medianRatio(ours, floorParsed), pairs }
}

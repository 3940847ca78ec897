// One sample of the fresh-process figure (bench/fresh.ts): a new Node process that loads
// the verifier as an application would (the package by name, so package.json's conditions
// apply), warms up on one other real document, then times its first verification of the
// headline document. `floor` does the same with the node:crypto floor (bench/es384-floor.ts).
// Prints one JSON line: { ms, valid } (and parsedMs for the floor: see below).
import { performance } from 'node:perf_hooks'
import { es384Floor } from './es384-floor.js'
import { FRESH_WARMUP_DOC, nitroDocs, noauthDoc } from './fixtures.js'

type Mode = 'ours' | 'floor'

async function sample(mode: Mode): Promise<{ ms: number; parsedMs?: number; valid: boolean }> {
  const target = noauthDoc()
  const other = nitroDocs().find((d) => d.name === FRESH_WARMUP_DOC)
  if (other === undefined) throw new Error(`fresh: ${FRESH_WARMUP_DOC} is not among the fixtures`)
  if (mode === 'floor') {
    if (!es384Floor(other.bytes).full()) throw new Error('fresh: the warm-up document does not verify')
    const parseStart = performance.now()
    const floor = es384Floor(target.bytes, { check: false })
    const start = performance.now()
    const valid = floor.full()
    const end = performance.now()
    // floor 5 takes its keys as given; parsedMs adds reading them from the certificates
    return { ms: end - start, parsedMs: end - parseStart, valid }
  }
  // by package name, as an installed application loads it (self-reference through "exports")
  const { verifyAttestation } = await import('nec01')
  const warm = await verifyAttestation(other.bytes, { now: new Date(other.atMs), anyPcrs: true })
  if (!warm.valid) throw new Error(`fresh: the warm-up document does not verify (${warm.reason ?? ''})`)
  const start = performance.now()
  const result = await verifyAttestation(target.bytes, { now: new Date(target.atMs), anyPcrs: true })
  return { ms: performance.now() - start, valid: result.valid }
}

const mode = process.argv[2]
if (mode !== 'ours' && mode !== 'floor') {
  console.error('usage: node dist/bench/fresh-child.js ours|floor')
  process.exitCode = 2
} else {
  sample(mode).then(
    (s) => console.log(JSON.stringify(s)),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err))
      process.exitCode = 1
    },
  )
}

// `npm run bench`: verifier and service figures, a table on stdout, JSON with --json FILE.
//   --quick                 short run (fewer rounds, shorter phases, 5,000 instead of 100,000)
//   --only verifier|service|identity|flood one part
//   --bulk N                requests in the service's long run (default 100,000)
// Not part of npm test: it takes minutes and its numbers depend on the machine's load.
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { renderMarkdown, renderTable, type Row } from './report.js'
import { runFloodBench } from './flood.js'
import { runServiceBench } from './service.js'
import { runIdentityBench } from './identity-boot.js'
import { runVerifierBench } from './verifier.js'

const USAGE = 'usage: node dist/bench/run.js [--quick] [--only verifier|service|identity|flood] [--bulk N] [--json FILE] [--markdown FILE]'
/** --bulk bounds: enough to see memory settle, few enough to finish */
const BULK_MIN = 100
const BULK_MAX = 1_000_000

const PARTS = ['verifier', 'service', 'identity', 'flood'] as const
type Part = (typeof PARTS)[number]

function log(line: string): void {
  process.stderr.write(`${line}\n`)
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      json: { type: 'string' },
      bulk: { type: 'string' },
      markdown: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) {
    console.log(USAGE)
    return 0
  }
  if (values.only !== undefined && !(PARTS as readonly string[]).includes(values.only)) {
    console.error(`--only: expected ${PARTS.join(', ')}, got '${values.only}'\n${USAGE}`)
    return 2
  }
  const bulk = values.bulk === undefined ? undefined : Number(values.bulk)
  if (bulk !== undefined && (!Number.isInteger(bulk) || bulk < BULK_MIN || bulk > BULK_MAX)) {
    console.error(`--bulk: expected a whole number from ${BULK_MIN} to ${BULK_MAX}\n${USAGE}`)
    return 2
  }
  const parts: Part[] = values.only === undefined ? [...PARTS] : [values.only as Part]
  const quick = values.quick === true
  const started = Date.now()
  const machine = { cores: cpus().length, node: process.version, platform: `${process.platform} ${process.arch}`, loadavgAtStart: loadavg() }
  log(`nec01 bench${quick ? ' (quick)' : ''}: ${parts.join(' + ')} on ${machine.cores} cores, Node ${machine.node}, load average ${machine.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}`)

  const rows: Row[] = []
  const details: Record<string, unknown> = {}
  if (parts.includes('verifier')) {
    const v = await runVerifierBench({ quick, log })
    rows.push(...v.rows)
    details.verifier = { docs: v.docs, sharedLeaf: v.sharedLeaf, memo: v.memo, fresh: v.fresh }
  }
  if (parts.includes('service')) {
    const s = await runServiceBench({ quick, log, ...(bulk === undefined ? {} : { bulkCount: bulk }) })
    rows.push(...s.rows)
    details.service = s.details
  }
  if (parts.includes('identity')) {
    const i = await runIdentityBench({ quick, log })
    rows.push(...i.rows)
    details.identity = i.details
  }

  if (parts.includes('flood')) {
    const f = await runFloodBench({ quick, log })
    rows.push(...f.rows)
    details.flood = f.details
  }

  const elapsedSec = (Date.now() - started) / 1000
  const summary = {
    pass: rows.filter((r) => r.status === 'PASS').length,
    fail: rows.filter((r) => r.status === 'FAIL').length,
  }
  console.log(renderTable(rows))
  console.log(
    `\n${summary.pass} PASS, ${summary.fail} FAIL; ${elapsedSec.toFixed(0)} s on ${machine.cores} cores, Node ${machine.node}; load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )
  const report = { machine: { ...machine, loadavgAtEnd: loadavg() }, quick, parts, elapsedSec, summary, rows, details }
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`)
  if (values.markdown !== undefined) writeFileSync(values.markdown, `${renderMarkdown(rows)}\n`)
  return 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
    process.exitCode = 1
  },
)

// Some tests drive Debian tools that a fresh clone does not bring (chromium, shellcheck,
// socat, iproute2). Without them `npm test` still passes: those tests are skipped with the
// reason, and each file that skipped prints one line on how to get the tools. Under CI a
// missing tool fails the test instead, so CI cannot go green by skipping.
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { TestContext } from 'node:test'

export interface SystemTool {
  /** the command, looked up on PATH unless `path` is given */
  command: string
  /** the Debian package that provides it */
  debian: string
  /** an absolute path to use instead of a PATH lookup */
  path?: string
}

/** CI systems set CI=true; any value but empty, 0 or false counts, erring towards failing. */
const underCi = (): boolean => !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase())

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/** The tool's absolute path, or null when it is not there. */
function findTool(tool: SystemTool): string | null {
  if (tool.path !== undefined) return isExecutable(tool.path) ? tool.path : null
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, tool.command))) return join(dir, tool.command)
  }
  return null
}

const distinct = (items: string[]): string[] => [...new Set(items)]
const where = (tool: SystemTool): string => (tool.path === undefined ? 'not on PATH' : `no ${tool.path}`)
const installCommand = (tools: SystemTool[]): string => `sudo apt-get install ${distinct(tools.map((t) => t.debian)).join(' ')}`

const skipped: { tests: number; tools: SystemTool[] } = { tests: 0, tools: [] }

function printSummary(): void {
  const n = skipped.tests
  const names = distinct(skipped.tools.map((t) => t.command)).join(', ')
  process.stderr.write(`skipped ${n} test${n === 1 ? ' that needs' : 's that need'} ${names}: \`${installCommand(skipped.tools)}\` or run \`bash .ci/run\`\n`)
}

/**
 * True when every tool is there. Otherwise skips the test with the reason and returns false
 * (the test returns at once), or, under CI, fails it.
 */
export function requireTools(t: TestContext, tools: SystemTool[]): boolean {
  const missing = tools.filter((tool) => findTool(tool) === null)
  if (missing.length === 0) return true
  const reason = `needs ${distinct(missing.map((tool) => tool.command)).join(', ')} (${distinct(missing.map(where)).join(', ')}): ${installCommand(missing)}`
  if (underCi()) throw new Error(`${reason} (CI=${process.env.CI ?? ''}: a missing tool fails, never skips)`)
  if (skipped.tests === 0) process.once('exit', printSummary)
  skipped.tests++
  skipped.tools.push(...missing)
  t.skip(reason)
  return false
}

// Exit codes shared by every nec01 command, the one error type a command throws to end
// with a one-line message instead of a stack trace, and the way commands parse arguments.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CodedError, errorText } from '../../nec01/errors.js'

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>
const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const
type ParsedValues<T extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ options: T; allowPositionals: true; strict: true }>>['values']

export const EXIT_OK = 0
/** verification failed, or no (valid) reply arrived in time */
export const EXIT_INVALID = 1
/** bad usage or unreadable input */
export const EXIT_USAGE = 2

/** `usage`: exits EXIT_USAGE; `invalid`: EXIT_INVALID. */
export type CliErrorCode = 'usage' | 'invalid'

export class CliError extends CodedError<CliErrorCode> {
  readonly exitCode: typeof EXIT_USAGE | typeof EXIT_INVALID
  constructor(message: string, exitCode: typeof EXIT_USAGE | typeof EXIT_INVALID = EXIT_USAGE) {
    super(exitCode === EXIT_INVALID ? 'invalid' : 'usage', message)
    this.exitCode = exitCode
  }
}

/** A subcommand: parses its own arguments and resolves to the process exit code. */
export type CommandMain = (args: string[]) => Promise<number>

/** Levenshtein distance, for "did you mean": flags are short, so the plain table is enough. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)))
    prev = row
  }
  return prev[b.length]!
}

/** The known flag (or command) closest to a mistyped one, when close enough to be what was meant. */
export function closestFlag(name: string, known: string[]): string | null {
  let best: string | null = null
  let bestDistance = Infinity
  for (const k of known) {
    const d = editDistance(name, k)
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : null
}

/**
 * Why the arguments do not parse, in our words (parseArgs's own text suggests `--` for any
 * unknown flag), or null when they parse. Reads parseArgs's non-strict tokens.
 */
function argumentProblem(args: string[], options: ParseArgsOptionsConfig): string | null {
  const { tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true })
  for (const token of tokens) {
    if (token.kind !== 'option') continue
    const spec = options[token.name]
    if (spec === undefined) {
      const near = token.rawName.startsWith('--') ? closestFlag(token.name, Object.keys(options)) : null
      return `unknown option ${token.rawName}${near === null ? '' : `: did you mean --${near}?`}`
    }
    if (spec.type === 'boolean' && token.value !== undefined) return `${token.rawName} takes no value`
    if (spec.type !== 'string') continue
    if (token.value === undefined) return `${token.rawName} needs a value`
    if (!token.inlineValue && token.value.startsWith('-') && token.value !== '-') {
      return `${token.rawName} needs a value, got ${token.value} (a value that starts with '-' is written ${token.rawName}=VALUE)`
    }
  }
  return null
}

/** Throws a one-line CliError naming what is wrong with the flags, before parseArgs sees them. */
export function checkArguments(command: string, args: string[], options: ParseArgsOptionsConfig): void {
  const problem = argumentProblem(args, options)
  if (problem !== null) throw new CliError(`${problem} (see nec01 ${command} --help)`)
}

/**
 * node:util parseArgs for a subcommand, with the shared conventions: `--help`/`-h` prints
 * `usage` (null is returned and the command exits 0), and a parse error becomes a one-line
 * CliError pointing at the command's help.
 */
export function parseCommandArgs<T extends ParseArgsOptionsConfig>(
  command: string,
  usage: string,
  args: string[],
  options: T,
): { values: ParsedValues<T & typeof HELP_OPTION>; positionals: string[] } | null {
  const all = { ...options, ...HELP_OPTION }
  checkArguments(command, args, all)
  let parsed
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: all })
  } catch (err) {
    // what argumentProblem does not name: parseArgs's first line, still one line
    const first = errorText(err).split(/\.\s|\n/)[0]
    throw new CliError(`${first} (see nec01 ${command} --help)`)
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    console.log(usage)
    return null
  }
  return parsed as { values: ParsedValues<T & typeof HELP_OPTION>; positionals: string[] }
}

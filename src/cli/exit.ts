// Exit codes shared by every nec01 command, the one error type a command throws to end
// with a one-line message instead of a stack trace, and the way commands parse arguments.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { errorText } from '../../nec01/errors.js'

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>
const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const
type ParsedValues<T extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ options: T; allowPositionals: true; strict: true }>>['values']

export const EXIT_OK = 0
/** verification failed, or no (valid) reply arrived in time */
export const EXIT_INVALID = 1
/** bad usage or unreadable input */
export const EXIT_USAGE = 2

export class CliError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode: number = EXIT_USAGE) {
    super(message)
    this.name = 'CliError'
    this.exitCode = exitCode
  }
}

/** A subcommand: parses its own arguments and resolves to the process exit code. */
export type CommandMain = (args: string[]) => Promise<number>

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
  let parsed
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: { ...options, ...HELP_OPTION } })
  } catch (err) {
    throw new CliError(`${errorText(err)} (see nec01 ${command} --help)`)
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    console.log(usage)
    return null
  }
  return parsed as { values: ParsedValues<T & typeof HELP_OPTION>; positionals: string[] }
}

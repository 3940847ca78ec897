// Exit codes shared by every nec01 command, and the one error type a command throws to
// end with a one-line message instead of a stack trace.

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

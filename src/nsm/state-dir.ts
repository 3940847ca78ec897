// Where the NSM simulator keeps its CA, on its own so the client commands can name the
// simulator's root (a hint) without loading the simulator.
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** Overrides the default state directory (~/.nec01) when set. */
export const STATE_DIR_ENV = 'NEC01_STATE_DIR'
const DEFAULT_STATE_SUBDIR = '.nec01'

export function defaultStateDir(): string {
  const fromEnv = process.env[STATE_DIR_ENV]
  return resolve(fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), DEFAULT_STATE_SUBDIR))
}

/** The simulator's root certificate under a state directory, as `nec01 serve --dev` writes it. */
export function simulatorRootPem(stateDir: string): string {
  return join(stateDir, 'nsm-simulator', 'root.pem')
}

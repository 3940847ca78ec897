// The ports serve binds (the health endpoint, the embedded relay), all on loopback, checked
// before anything starts so a busy one is a one-line error naming the flag that moves it.
import { listenProblem } from '../ports.js'
import { CliError } from './exit.js'

/** Where serve listens: the health endpoint and the embedded relay, both on loopback. */
export const LISTEN_HOST = '127.0.0.1'

export interface PortUse {
  port: number
  what: string
  flag: string
}

export function healthPortUse(port: number): PortUse {
  return { port, what: 'health', flag: '--health-port' }
}

export function embeddedPortUse(port: number): PortUse {
  return { port, what: 'embedded relay', flag: '--embedded-port' }
}

export function portError(use: PortUse, err: NodeJS.ErrnoException): CliError {
  const hint = `(pick another with ${use.flag} N; with npm start: npm start -- ${use.flag} N)`
  if (err.code === 'EADDRINUSE') return new CliError(`${use.what} port ${use.port} on ${LISTEN_HOST} is in use ${hint}`)
  return new CliError(`cannot listen on ${LISTEN_HOST}:${use.port} for the ${use.what}: ${err.message} ${hint}`)
}

/** Every port serve will bind, checked before anything starts (docs/service.md). */
export async function checkPorts(uses: PortUse[]): Promise<void> {
  const fixed = uses.filter((u) => u.port !== 0)
  for (const [i, use] of fixed.entries()) {
    const other = fixed.slice(i + 1).find((o) => o.port === use.port)
    if (other !== undefined) throw new CliError(`${use.flag} and ${other.flag} are both ${use.port}: give one of them another port`)
  }
  for (const use of fixed) {
    const err = await listenProblem(LISTEN_HOST, use.port)
    if (err !== null) throw portError(use, err)
  }
}

// Whether a TCP port can be listened on, asked before a start that binds it only later: a
// busy port is then an error at once, not after the identity, the attestation and the first
// publications (the service binds its health port last).
import { createServer } from 'node:net'

/** The error that listening on host:port gives now, or null. Port 0 (any free one) is always free. */
export function listenProblem(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  if (port === 0) return Promise.resolve(null)
  const server = createServer()
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)))
  })
}

// Health endpoint on 127.0.0.1 (in an enclave, reached from the parent through the vsock
// bridge). It shows public state only: never the secret key, never a hidden value.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface RelayHealth {
  url: string
  connected: boolean
  authed: boolean
  last_error: string | null
}

export interface HealthReport {
  status: 'ok' | 'degraded' | 'no_attestation'
  pubkey: string
  npub: string
  tee: 'nsm' | 'simulated'
  t: 'prod' | 'dev'
  attestation: { expires_at: number | null; refreshed_at: number | null }
  relays: RelayHealth[]
  counters: Record<string, number>
}

export interface HealthServer {
  port: number
  close(): Promise<void>
}

export async function startHealthServer(opts: {
  host?: string
  port: number
  report: () => HealthReport
  rootPem: () => string
}): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/health') {
      const report = opts.report()
      res.writeHead(report.status === 'no_attestation' ? 503 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(report))
    } else if (path === '/root.pem') {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' })
      res.end(opts.rootPem())
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /health or /root.pem\n')
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

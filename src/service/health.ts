// Health endpoint on 127.0.0.1 (in an enclave, reached from the parent through the vsock
// bridge). It shows public state only: never the secret key, never a hidden value.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { RelayStatus } from '../relays/pool.js'
import type { Identity } from './identity.js'
import type { RootState } from './root.js'
import type { Refusal } from './sink.js'

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

/** What the report is made of, read at the moment it is asked for. */
export interface HealthInputs {
  identity: Pick<Identity, 'pubkey' | 'npub'>
  tee: 'nsm' | 'simulated'
  t: 'prod' | 'dev'
  /** the valid root now, or null */
  root: RootState | null
  relays: RelayStatus[]
  /** url → the last refusal of one of our events */
  refusals: ReadonlyMap<string, Refusal>
  counters: Record<string, number>
}

export function healthReport(h: HealthInputs): HealthReport {
  const relays = h.relays.map((s) => relayHealth(s, h.refusals.get(s.url)))
  return {
    status: h.root === null ? 'no_attestation' : relays.some((r) => r.connected) ? 'ok' : 'degraded',
    pubkey: h.identity.pubkey,
    npub: h.identity.npub,
    tee: h.tee,
    t: h.t,
    attestation: { expires_at: h.root?.expiresAt ?? null, refreshed_at: h.root?.refreshedAt ?? null },
    relays,
    counters: h.counters,
  }
}

/** The latest of the connection's error and a refusal of one of our events (too large...). */
function relayHealth(s: RelayStatus, refused: Refusal | undefined): RelayHealth {
  const lastError = refused !== undefined && (s.last_error_at === null || refused.at >= s.last_error_at) ? refused.message : s.last_error
  return { url: s.url, connected: s.connected, authed: s.authed, last_error: lastError }
}

/** A DER certificate as PEM, as /root.pem serves it (64-character lines, final newline). */
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

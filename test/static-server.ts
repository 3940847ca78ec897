// A static file server on loopback for the browser test: URL prefixes mapped to folders,
// GET only, nothing outside the mapped folders.
import { createServer, type Server } from 'node:http'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { extname, join, resolve, sep } from 'node:path'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.css': 'text/css; charset=utf-8',
}

export interface StaticServer {
  /** http://127.0.0.1:PORT, no trailing slash */
  origin: string
  close(): Promise<void>
}

/** mounts: URL prefix ending in '/' → folder */
export async function startStaticServer(mounts: Record<string, string>): Promise<StaticServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      let path: string
      try {
        path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname)
      } catch {
        // a malformed %-escape: an answer, not an unhandled rejection that ends the test run
        res.writeHead(400).end()
        return
      }
      const mount = Object.keys(mounts).find((prefix) => path.startsWith(prefix))
      const type = TYPES[extname(path)]
      if (req.method !== 'GET' || mount === undefined || type === undefined) {
        res.writeHead(req.method === 'GET' ? 404 : 405).end()
        return
      }
      const root = resolve(mounts[mount]!)
      const file = resolve(join(root, path.slice(mount.length)))
      if (!file.startsWith(root + sep)) {
        res.writeHead(404).end()
        return
      }
      try {
        const body = await readFile(file)
        res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body)
      } catch {
        res.writeHead(404).end()
      }
    })()
  })
  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(0, '127.0.0.1', ok)
  })
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections()
        server.close(() => ok())
      }),
  }
}

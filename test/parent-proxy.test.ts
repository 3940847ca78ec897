// The parent instance's CONNECT proxy against real sockets on 127.0.0.1: tunnels to
// allowed targets carry bytes both ways, everything else is refused before any upstream
// connection is made, and every limit ends in a status line and a closed connection.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { HttpsProxyAgent } from 'https-proxy-agent'
import WebSocket, { WebSocketServer } from 'ws'
import { main, parseParentArgs } from '../src/commands/parent.js'
import { CliError, EXIT_USAGE } from '../src/cli/exit.js'
import {
  allowlistFromRelays,
  parseAllowEntry,
  parseConnectHead,
  ParentProxyError,
  startParentProxy,
  type ParentProxy,
  type ParentProxyOptions,
  type ProxyEvent,
} from '../src/parent/proxy.js'

/** Every test waits on sockets: a broken proxy must fail the test, not hang the run. */
const T = { timeout: 10_000 }

interface Echo {
  port: number
  connections: () => number
  close: () => Promise<void>
}

async function startEcho(): Promise<Echo> {
  let connections = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    connections += 1
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  assert.ok(address !== null && typeof address === 'object')
  return {
    port: address.port,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

/** A port that was just free: bound, then released. */
async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  assert.ok(address !== null && typeof address === 'object')
  await new Promise<void>((r) => server.close(() => r()))
  return address.port
}

interface Logged {
  events: ProxyEvent[]
  log: (e: ProxyEvent) => void
  /** resolves with the first event (already logged or future) matching pred */
  waitFor: (pred: (e: ProxyEvent) => boolean) => Promise<ProxyEvent>
}

function logger(): Logged {
  const events: ProxyEvent[] = []
  const waiters: Array<{ pred: (e: ProxyEvent) => boolean; resolve: (e: ProxyEvent) => void }> = []
  return {
    events,
    log: (e) => {
      events.push(e)
      for (const w of [...waiters]) {
        if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(e)
        }
      }
    },
    waitFor: (pred) => {
      const found = events.find(pred)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve) => waiters.push({ pred, resolve }))
    },
  }
}

const cleanups: Array<() => Promise<void>> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

async function proxyFor(options: Partial<ParentProxyOptions> & Pick<ParentProxyOptions, 'allow'>): Promise<{ proxy: ParentProxy; logged: Logged }> {
  const logged = logger()
  const proxy = await startParentProxy({ host: '127.0.0.1', port: 0, log: logged.log, ...options })
  cleanups.push(() => proxy.close())
  return { proxy, logged }
}

async function echo(): Promise<Echo> {
  const e = await startEcho()
  cleanups.push(() => e.close())
  return e
}

/** Sends raw bytes, reads until the proxy closes the connection. */
async function exchange(port: number, data: string | Buffer): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(data)
  await once(socket, 'close')
  return Buffer.concat(chunks).toString('latin1')
}

interface Tunnel {
  socket: Socket
  status: string
  /** bytes received after the response head */
  rest: Buffer
}

/** Opens a CONNECT tunnel; resolves once the response head arrived (any status). */
async function openTunnel(port: number, target: string, early = ''): Promise<Tunnel> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n${early}`)
  let buf = Buffer.alloc(0)
  while (true) {
    const end = buf.indexOf('\r\n\r\n')
    if (end >= 0) {
      socket.pause()
      const status = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1')
      return { socket, status, rest: buf.subarray(end + 4) }
    }
    const [chunk] = (await Promise.race([once(socket, 'data'), once(socket, 'close').then(() => [null])])) as [Buffer | null]
    if (chunk === null) return { socket, status: buf.toString('latin1'), rest: Buffer.alloc(0) }
    buf = Buffer.concat([buf, chunk])
  }
}

/** Reads exactly n bytes (after any already received `rest`). */
async function readBytes(t: Tunnel, n: number): Promise<string> {
  let buf = t.rest
  t.rest = Buffer.alloc(0)
  t.socket.resume()
  while (buf.length < n) {
    const [chunk] = (await once(t.socket, 'data')) as [Buffer]
    buf = Buffer.concat([buf, chunk])
  }
  t.socket.pause()
  return buf.toString('latin1')
}

describe('parent CONNECT proxy: tunnels', () => {
  it('tunnels bytes both ways to an allowed target and logs open and close', T, async () => {
    const target = await echo()
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }] })
    const t = await openTunnel(proxy.port, `127.0.0.1:${target.port}`)
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    t.socket.write('hello, relay')
    assert.equal(await readBytes(t, 12), 'hello, relay')
    t.socket.end()
    const closed = await logged.waitFor((e) => e.event === 'close')
    assert.equal(closed.event, 'close')
    if (closed.event !== 'close') return
    assert.equal(closed.target, `127.0.0.1:${target.port}`)
    assert.equal(closed.up, 12)
    assert.equal(closed.down, 12)
    assert.match(closed.client, /^127\.0\.0\.1:\d+$/)
    const opened = logged.events.find((e) => e.event === 'open')
    assert.ok(opened !== undefined && opened.event === 'open' && opened.id === closed.id)
    assert.equal(proxy.tunnels(), 0)
  })

  it('forwards bytes the client sent right after the request head', T, async () => {
    const target = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }] })
    const t = await openTunnel(proxy.port, `127.0.0.1:${target.port}`, 'early bytes')
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    assert.equal(await readBytes(t, 11), 'early bytes')
    t.socket.destroy()
  })

  it('delivers the last bytes of a target that closes right after sending them', T, async () => {
    const last = 'x'.repeat(64 * 1024)
    const server = createServer((socket) => {
      socket.on('error', () => {})
      socket.end(last)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())))
    const port = (server.address() as { port: number }).port
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port }] })
    const t = await openTunnel(proxy.port, `127.0.0.1:${port}`)
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    const chunks: Buffer[] = [t.rest]
    t.socket.on('data', (c: Buffer) => chunks.push(c))
    t.socket.resume()
    await once(t.socket, 'end')
    assert.equal(Buffer.concat(chunks).length, last.length)
    const closed = await logged.waitFor((e) => e.event === 'close')
    assert.ok(closed.event === 'close' && closed.reason === 'target_closed' && closed.down === last.length)
  })

  it('matches host names case-insensitively', T, async () => {
    const target = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: 'LOCALHOST', port: target.port }] })
    const t = await openTunnel(proxy.port, `LocalHost:${target.port}`)
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    t.socket.write('x')
    assert.equal(await readBytes(t, 1), 'x')
    t.socket.destroy()
  })

  it('carries a real WebSocket connection made through https-proxy-agent', T, async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await once(wss, 'listening')
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())))
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo:${String(data)}`)))
    const wsPort = (wss.address() as { port: number }).port
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port: wsPort }] })
    const agent = new HttpsProxyAgent(`http://127.0.0.1:${proxy.port}`)
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/`, { agent })
    await once(ws, 'open')
    ws.send('["REQ","sub",{}]')
    const [reply] = (await once(ws, 'message')) as [Buffer]
    assert.equal(String(reply), 'echo:["REQ","sub",{}]')
    ws.close()
    await once(ws, 'close')
    const opened = await logged.waitFor((e) => e.event === 'open')
    assert.equal(opened.event === 'open' && opened.target, `127.0.0.1:${wsPort}`)
  })

  it('a WebSocket to a target that is not allowed fails and never reaches it', T, async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await once(wss, 'listening')
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())))
    let reached = 0
    wss.on('connection', () => (reached += 1))
    const wsPort = (wss.address() as { port: number }).port
    const other = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: '127.0.0.1', port: other.port }] })
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/`, { agent: new HttpsProxyAgent(`http://127.0.0.1:${proxy.port}`) })
    const failed = await new Promise<boolean>((resolve) => {
      ws.on('open', () => resolve(false))
      ws.on('error', () => resolve(true))
    })
    assert.equal(failed, true)
    assert.equal(reached, 0)
  })
})

describe('parent CONNECT proxy: refusals', () => {
  it('refuses a port that is not allowed with 403; the target never sees a connection', T, async () => {
    const allowed = await echo()
    const forbidden = await echo()
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port: allowed.port }] })
    const reply = await exchange(proxy.port, `CONNECT 127.0.0.1:${forbidden.port} HTTP/1.1\r\n\r\nsecret payload`)
    assert.match(reply, /^HTTP\/1\.1 403 Forbidden\r\n/)
    assert.ok(!reply.includes('secret payload'))
    assert.equal(forbidden.connections(), 0)
    assert.equal(allowed.connections(), 0)
    const refused = await logged.waitFor((e) => e.event === 'refuse')
    assert.ok(refused.event === 'refuse')
    assert.equal(refused.status, 403)
    assert.equal(refused.reason, 'not_allowed')
    assert.equal(refused.target, `127.0.0.1:${forbidden.port}`)
  })

  it('refuses another name for an allowed address (no matching on resolved IPs)', T, async () => {
    const target = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }] })
    for (const name of ['localhost', '127.1', '127.0.0.1.', '[::ffff:127.0.0.1]', '0x7f000001']) {
      const reply = await exchange(proxy.port, `CONNECT ${name}:${target.port} HTTP/1.1\r\n\r\n`)
      assert.match(reply, /^HTTP\/1\.1 (403 Forbidden|400 Bad Request)\r\n/, name)
    }
    assert.equal(target.connections(), 0)
  })

  it('answers a malformed request line with 400 and closes', T, async () => {
    const target = await echo()
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }] })
    for (const head of [
      'garbage\r\n\r\n',
      `CONNECT 127.0.0.1:${target.port}\r\n\r\n`,
      `CONNECT 127.0.0.1:${target.port} HTTP/2.0\r\n\r\n`,
      `CONNECT  127.0.0.1:${target.port} HTTP/1.1\r\n\r\n`,
      'CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n',
      'CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n',
      'CONNECT 127.0.0.1:65536 HTTP/1.1\r\n\r\n',
      'CONNECT ::1:443 HTTP/1.1\r\n\r\n',
      `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nno colon here\r\n\r\n`,
      `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nX-Bin: \u00ff\r\n\r\n`,
      '\r\n\r\n',
    ]) {
      const reply = await exchange(proxy.port, Buffer.from(head, 'latin1'))
      assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(head))
    }
    assert.equal(target.connections(), 0)
    assert.ok(logged.events.every((e) => e.event === 'refuse' && e.reason === 'bad_request'))
  })

  it('answers a method other than CONNECT with 405', T, async () => {
    const target = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }] })
    const reply = await exchange(proxy.port, `GET http://127.0.0.1:${target.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    assert.match(reply, /^HTTP\/1\.1 405 Method Not Allowed\r\n/)
    assert.match(reply, /\r\nAllow: CONNECT\r\n/)
    assert.equal(target.connections(), 0)
  })

  it('answers an oversized request head with 431', T, async () => {
    const target = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }], maxHeadBytes: 8192 })
    const line = `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n`
    // Without the blank line: the proxy must stop reading at the limit, not wait for it.
    const unfinished = await exchange(proxy.port, `${line}X-Pad: ${'a'.repeat(20_000)}\r\n`)
    assert.match(unfinished, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/)
    // Complete but too large, in one write.
    const complete = await exchange(proxy.port, `${line}X-Pad: ${'a'.repeat(9000)}\r\n\r\n`)
    assert.match(complete, /^HTTP\/1\.1 431 /)
    assert.equal(target.connections(), 0)
  })

  it('refuses tunnels beyond maxTunnels with 503 and accepts again once one closes', T, async () => {
    const target = await echo()
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }], maxTunnels: 2 })
    const a = await openTunnel(proxy.port, `127.0.0.1:${target.port}`)
    const b = await openTunnel(proxy.port, `127.0.0.1:${target.port}`)
    assert.equal(a.status, 'HTTP/1.1 200 Connection Established')
    assert.equal(b.status, 'HTTP/1.1 200 Connection Established')
    const c = await exchange(proxy.port, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n\r\n`)
    assert.match(c, /^HTTP\/1\.1 503 Service Unavailable\r\n/)
    assert.equal(target.connections(), 2)
    a.socket.destroy()
    await logged.waitFor((e) => e.event === 'close')
    const d = await openTunnel(proxy.port, `127.0.0.1:${target.port}`)
    assert.equal(d.status, 'HTTP/1.1 200 Connection Established')
    b.socket.destroy()
    d.socket.destroy()
  })

  it('closes a tunnel with no traffic in either direction', T, async () => {
    const target = await echo()
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }], idleTimeoutMs: 200 })
    const t = await openTunnel(proxy.port, `127.0.0.1:${target.port}`)
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    t.socket.resume()
    await once(t.socket, 'close')
    const closed = await logged.waitFor((e) => e.event === 'close')
    assert.ok(closed.event === 'close')
    assert.equal(closed.reason, 'idle')
  })

  it('answers a client that never finishes its head with 408', T, async () => {
    const target = await echo()
    const { proxy } = await proxyFor({ allow: [{ host: '127.0.0.1', port: target.port }], headTimeoutMs: 200 })
    const reply = await exchange(proxy.port, 'CONNECT 127.0.0.1')
    assert.match(reply, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  })

  it('answers 502 when an allowed target refuses the connection', T, async () => {
    const port = await freePort()
    const { proxy, logged } = await proxyFor({ allow: [{ host: '127.0.0.1', port }] })
    const reply = await exchange(proxy.port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`)
    assert.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n/)
    const refused = await logged.waitFor((e) => e.event === 'refuse')
    assert.ok(refused.event === 'refuse' && refused.reason === 'connect_failed')
    assert.equal(proxy.tunnels(), 0)
  })

  it('close() cuts open tunnels and stops listening', T, async () => {
    const target = await echo()
    const logged = logger()
    const proxy = await startParentProxy({ port: 0, allow: [{ host: '127.0.0.1', port: target.port }], log: logged.log })
    const t = await openTunnel(proxy.port, `127.0.0.1:${target.port}`)
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    t.socket.resume()
    const closedByProxy = once(t.socket, 'close')
    await proxy.close()
    await closedByProxy
    const closed = await logged.waitFor((e) => e.event === 'close')
    assert.ok(closed.event === 'close' && closed.reason === 'shutdown')
    const again = connect(proxy.port, '127.0.0.1')
    const [err] = (await once(again, 'error')) as [NodeJS.ErrnoException]
    assert.equal(err.code, 'ECONNREFUSED')
  })
})

describe('parent CONNECT proxy: configuration', () => {
  it('allowlistFromRelays takes host and default ports from ws/wss URLs, without duplicates', T, () => {
    const list = allowlistFromRelays(
      [
        { url: 'wss://relay.damus.io' },
        { url: 'wss://NOS.lol/' },
        { url: 'ws://relay.example.com' },
        { url: 'wss://relay.example.com:7443/path?x=1' },
        { url: 'ws://[::1]:8080' },
        { url: 'ws://127.0.0.1:7777' },
        { url: 'wss://relay.damus.io:443' },
      ],
      [parseAllowEntry('extra.example:8443'), parseAllowEntry('nos.lol:443')],
    )
    assert.deepEqual(list, [
      { host: 'relay.damus.io', port: 443 },
      { host: 'nos.lol', port: 443 },
      { host: 'relay.example.com', port: 80 },
      { host: 'relay.example.com', port: 7443 },
      { host: '::1', port: 8080 },
      { host: '127.0.0.1', port: 7777 },
      { host: 'extra.example', port: 8443 },
    ])
  })

  it('allowlistFromRelays refuses URLs that are not ws:// or wss://', T, () => {
    for (const url of ['https://relay.damus.io', 'relay.damus.io', 'wss://', 'ftp://x:21']) {
      assert.throws(
        () => allowlistFromRelays([{ url }]),
        (err: unknown) => err instanceof ParentProxyError && err.code === 'bad_relay_url',
        url,
      )
    }
  })

  it('parseAllowEntry accepts host:port and [v6]:port and refuses the rest', T, () => {
    assert.deepEqual(parseAllowEntry('Relay.Example.COM:443'), { host: 'relay.example.com', port: 443 })
    assert.deepEqual(parseAllowEntry('[::1]:7000'), { host: '::1', port: 7000 })
    for (const bad of ['relay', 'relay:', ':443', 'relay:0', 'relay:65536', 'relay:44a', '::1:443', 'a b:1', 'relay.:443', 'a_b.example:1', '[relay]:1']) {
      assert.throws(() => parseAllowEntry(bad), (err: unknown) => err instanceof ParentProxyError && err.code === 'bad_allow', bad)
    }
  })

  it('parseConnectHead: request line, headers and target', T, () => {
    assert.deepEqual(parseConnectHead('CONNECT relay.damus.io:443 HTTP/1.1\r\nHost: relay.damus.io:443\r\nUser-Agent: x'), {
      ok: true,
      target: { host: 'relay.damus.io', port: 443 },
      targetText: 'relay.damus.io:443',
    })
    const get = parseConnectHead('GET / HTTP/1.1')
    assert.ok(!get.ok && get.status === 405)
    const bad = parseConnectHead('CONNECT relay.damus.io:443 HTTP/1.1 extra')
    assert.ok(!bad.ok && bad.status === 400)
  })

  it('refuses to start with an empty or invalid allowlist', T, async () => {
    await assert.rejects(startParentProxy({ port: 0, allow: [] }), (err: unknown) => err instanceof ParentProxyError && err.code === 'bad_allow')
    await assert.rejects(
      startParentProxy({ port: 0, allow: [{ host: 'x', port: 0 }] }),
      (err: unknown) => err instanceof ParentProxyError && err.code === 'bad_allow',
    )
    await assert.rejects(
      startParentProxy({ port: 0, allow: [{ host: 'x', port: 1 }], maxTunnels: 0 }),
      (err: unknown) => err instanceof ParentProxyError && err.code === 'bad_option',
    )
  })
})

describe('nec01 parent command', () => {
  it('argument errors are one line and exit 2', T, async () => {
    for (const args of [
      ['--port', 'abc'],
      ['--port', '70000'],
      ['--allow', 'nope'],
      ['--allow', 'relay:0'],
      ['--max-tunnels', '0'],
      ['--idle', '-1'],
      ['--idle', 'soon'],
      ['--host', 'not an address'],
      ['--bogus'],
      ['positional'],
      ['--relays'],
    ]) {
      await assert.rejects(
        main(args),
        (err: unknown) => err instanceof CliError && err.exitCode === EXIT_USAGE && !err.message.includes('\n') && err.message.length > 0,
        args.join(' '),
      )
    }
  })

  it('an unreadable relay file is a one-line usage error', T, async () => {
    await assert.rejects(
      main(['--relays', '/nonexistent/nec01-relays.json', '--port', '0']),
      (err: unknown) => err instanceof CliError && err.exitCode === EXIT_USAGE && !err.message.includes('\n'),
    )
  })

  it('parses the defaults and repeated --allow', T, () => {
    const s = parseParentArgs(['--allow', 'a.example:443', '--allow', '[::1]:80', '--idle', '1.5'])
    assert.ok(s !== 'help')
    assert.deepEqual(s.allow, [
      { host: 'a.example', port: 443 },
      { host: '::1', port: 80 },
    ])
    assert.equal(s.host, '127.0.0.1')
    assert.equal(s.port, 1080)
    assert.equal(s.maxTunnels, 64)
    assert.equal(s.idleTimeoutMs, 1500)
    assert.equal(parseParentArgs(['--help']), 'help')
  })

  it('runs as a process: prints where it listens, logs tunnels as JSON on stderr, and exits 0 on SIGTERM', T, async () => {
    const target = await echo()
    const dir = mkdtempSync(join(tmpdir(), 'nec01-parent-'))
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
    const relays = join(dir, 'relays.json')
    writeFileSync(relays, JSON.stringify({ relays: [{ url: 'wss://relay.example.test', read: true, write: true }] }))
    const command = resolve(dirname(fileURLToPath(import.meta.url)), '../src/commands/parent.js')
    const script = `const { main } = await import(${JSON.stringify(command)}); process.exitCode = await main(process.argv.slice(1))`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', '--relays', relays, '--allow', `127.0.0.1:${target.port}`, '--port', '0', '--sealed-key-port', '0', '--sealed-key', join(dir, 'sealed-key.bin')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let out = ''
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = once(child, 'exit')
    const firstLine = await new Promise<string>((resolveLine, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString()
        const nl = out.indexOf('\n')
        if (nl >= 0) resolveLine(out.slice(0, nl))
      })
      void exited.then(() => reject(new Error(`exited early: ${stderr}`)))
    })
    const m = /^nec01 parent: listening on 127\.0\.0\.1:(\d+), allowing (.*)$/.exec(firstLine)
    assert.ok(m !== null, firstLine)
    // the relays, --allow, then the parent's own sealed-key service (docs/identity.md)
    assert.match(m[2]!, new RegExp(`^relay\\.example\\.test:443, 127\\.0\\.0\\.1:${target.port}, 127\\.0\\.0\\.1:\\d+$`))
    const t = await openTunnel(Number(m[1]), `127.0.0.1:${target.port}`)
    assert.equal(t.status, 'HTTP/1.1 200 Connection Established')
    t.socket.write('ping')
    assert.equal(await readBytes(t, 4), 'ping')
    t.socket.destroy()
    child.kill('SIGTERM')
    const [code] = (await exited) as [number | null]
    assert.equal(code, 0, stderr)
    // stdout: the two human lines only; stderr: one JSON object per line
    assert.deepEqual(out.trim().split('\n').slice(1), ['nec01 parent: SIGTERM, stopped'])
    const logLines = stderr.split('\n').filter((l) => l !== '')
    assert.ok(logLines.length > 0 && logLines.every((l) => l.startsWith('{')), stderr)
    assert.ok(logLines.some((l) => (JSON.parse(l) as { event?: string }).event === 'open'))
  })
})

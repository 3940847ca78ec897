// The sealed identity with real processes: `nec01 serve` restarted on one state directory
// keeps its npub (npm start's embedded KMS, and the production rule with an outside KMS
// stand-in); a moved PCR0 is re-pointed in dev only and refused otherwise; and with a real
// `nec01 parent` keeping the blob and passing IMDS credentials in, every byte between the
// enclave and the parent is recorded and searched for the key.
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { connect, createServer, type AddressInfo, type Server } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decode as nip19Decode, nsecEncode } from 'nostr-tools/nip19'
import { getPublicKey } from 'nostr-tools/pure'
import { enclaveKeyPolicy } from '../src/kms/policy.js'
import { unsealKey } from '../src/kms/seal.js'
import { startKmsStandin, STANDIN_CALLER_ARN, type KmsExchange, type KmsStandin } from '../src/kms/standin.js'
import { openSimulator } from '../src/nsm/simulator.js'
import type { HealthReport } from '../src/service/health.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { hexOf, kmsClient, randomPcr } from './kms-helpers.js'
import { freePort, spawnService, startTestRelay, tempDir, type SpawnedService } from './service-harness.js'
import { until } from './talk.js'

const IMDS_ACCESS_KEY = 'ASIANEC01IMDSSTANDIN'
const IMDS_ROLE = 'nec01-parent-role'
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')

const cleanups: Array<() => Promise<void> | void> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

function line(out: string, prefix: string): string | undefined {
  return out.split('\n').find((l) => l.startsWith(prefix))
}

async function run(args: string[]): Promise<{ npub: string; out: string; err: string }> {
  const svc = spawnService(args)
  cleanups.push(() => void svc.stop())
  const npub = await svc.ready
  await svc.stop()
  return { npub, out: svc.stdout(), err: svc.stderr() }
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

describe('serve --dev --embedded-kms (npm start): the same npub across restarts', () => {
  const state = tempDir('nec01-sealed-dev-')
  cleanups.push(() => state.remove())
  const args = ['--dev', '--embedded-relay', '--embedded-port', '0', '--embedded-kms', '--health-port', '0', '--state-dir', state.path]
  let npub = ''

  it('first start: a new identity, sealed; second start: unsealed, the same npub', async () => {
    const first = await run(args)
    assert.match(line(first.out, 'identity:') ?? '', /^identity: new, sealed \(KMS key arn:aws:kms:/)
    assert.match(first.out, /^dev: {5}a new dev KMS key in the stand-in/m)
    assert.ok(existsSync(join(state.path, 'sealed-key.bin')))
    // the AWS SDK's multi-line NodeVersionSupportWarning (Node < 22) is one banner line in dev
    const oldNode = Number(process.versions.node.split('.')[0]) < 22 && process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined
    assert.doesNotMatch(first.err, /NodeVersionSupportWarning/)
    assert.equal((first.out.match(/^node: {4}AWS SDK: Node \d+ support ends .*; move to Node 22$/gm) ?? []).length, oldNode ? 1 : 0, first.out)
    const second = await run(args)
    assert.equal(second.npub, first.npub)
    assert.match(line(second.out, 'identity:') ?? '', /^identity: unsealed: the same npub as before/)
    assert.doesNotMatch(second.out, /^dev:/m)
    npub = first.npub
  })

  it('after a code change moves the simulated PCR0, dev re-points its key policy, says so, and unseals the same npub', async () => {
    // What the last build left: a policy and a record naming another PCR0.
    const old = hexOf(randomPcr())
    const recordPath = join(state.path, 'kms-dev.json')
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as { keyId: string; pcr0: string }
    const simulator = await openSimulator({ stateDir: state.path })
    const standin = await startKmsStandin({ stateDir: state.path, root: simulator.rootPem() })
    standin.putKeyPolicy(record.keyId, enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: old } }))
    await standin.close()
    await simulator.close()
    writeFileSync(recordPath, JSON.stringify({ ...record, pcr0: old }))

    const again = await run(args)
    assert.equal(again.npub, npub)
    assert.match(again.out, /^dev: {5}the simulated PCR0 moved \(the code changed\): the dev KMS key's policy was RE-POINTED/m)
    assert.match(again.out, /Production never does this/)
    assert.match(line(again.out, 'identity:') ?? '', /^identity: unsealed/)
  })
})

describe('serve with an outside KMS (the production rule, on the simulator)', () => {
  it('a moved PCR0 is refused: no new npub, the reason in /health, the blob untouched, SIGTERM exits 0', async () => {
    const state = tempDir('nec01-sealed-prod-')
    cleanups.push(() => state.remove())
    const relay = await startTestRelay()
    cleanups.push(() => relay.close())
    const simulator = await openSimulator({ stateDir: state.path })
    const pcr0 = hexOf((await simulator.describePcr(0)).value)
    const standin = await startKmsStandin({ stateDir: join(state.path, 'kms'), root: simulator.rootPem() })
    cleanups.push(() => standin.close())
    await simulator.close()
    const key = standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: pcr0 } }))
    const healthPort = await freePort()
    const args = ['--dev', '--relay', relay.url, '--state-dir', state.path, '--health-port', String(healthPort), '--kms-key', key.arn, '--kms-endpoint', standin.endpoint]

    const first = await run(args)
    assert.match(line(first.out, 'identity:') ?? '', /^identity: new, sealed/)
    const blob = readFileSync(join(state.path, 'sealed-key.bin'))
    assert.equal((await run(args)).npub, first.npub, 'same measurements: the same npub')

    // a new build: the key policy names its PCR0, not this one
    standin.putKeyPolicy(key.keyId, enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: hexOf(randomPcr()) } }))
    const svc = spawnService(args)
    cleanups.push(() => void svc.stop())
    let report: HealthReport | null = null
    await until(async () => {
      const res = await fetch(`http://127.0.0.1:${healthPort}/health`).catch(() => null)
      if (res === null) return false
      report = (await res.json()) as HealthReport
      return res.status === 503 && report.identity.state === 'refused'
    }, 'health reports the refusal')
    const r = report!
    assert.equal(r.status, 'no_identity')
    assert.equal(r.identity.last_error?.code, 'POLICY_REFUSED')
    assert.equal(r.npub, null)
    assert.doesNotMatch(svc.stdout(), /npub:/, 'no banner, no npub')
    assert.match(svc.stderr(), /"code":"POLICY_REFUSED"/)
    assert.match(svc.stderr(), /no new identity is started/)
    assert.deepEqual(readFileSync(join(state.path, 'sealed-key.bin')), blob)
    assert.equal(await svc.stop(), 0)
  })

  it('--new-identity needs a reason; the sealing flags need a key; --kms-endpoint needs --dev', async () => {
    const state = tempDir('nec01-sealed-flags-')
    cleanups.push(() => state.remove())
    const base = ['--relay', 'ws://127.0.0.1:9', '--state-dir', state.path, '--health-port', '0']
    const cases: Array<[string[], RegExp]> = [
      [['--dev', '--embedded-kms', '--new-identity', ''], /^nec01: --new-identity needs a reason, which is logged/],
      [['--dev', '--embedded-kms', '--new-identity', '   '], /^nec01: --new-identity needs a reason/],
      [['--dev', '--new-identity', 'a reason'], /^nec01: --new-identity applies to a sealed identity: give --kms-key or --embedded-kms$/],
      [['--kms-key', 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab', '--kms-endpoint', 'http://127.0.0.1:9'], /^nec01: --kms-endpoint is for development and tests \(--dev\)/],
      [['--dev', '--kms-key', 'alias/nec01', '--kms-endpoint', 'http://127.0.0.1:9'], /^nec01: --kms-key: an alias can be re-pointed/],
      [['--embedded-kms'], /^nec01: --embedded-kms is for development: use it with --dev$/],
    ]
    for (const [flags, expected] of cases) {
      const svc = spawnService([...base, ...flags])
      const code = await exited(svc.child)
      assert.equal(code, 2, `${flags.join(' ')}: ${svc.stderr()}`)
      const lines = svc.stderr().trimEnd().split('\n')
      assert.equal(lines.length, 1, svc.stderr())
      assert.match(lines[0]!, expected)
      assert.equal(svc.stdout(), '')
    }
    assert.ok(!existsSync(join(state.path, 'sealed-key.bin')), 'nothing was sealed')
  })
})

/** A loopback TCP forwarder in the vsock bridge's place: every byte either way is recorded. */
async function startTap(targetPort: number): Promise<{ port: number; bytes(): Buffer; close(): Promise<void> }> {
  const chunks: Buffer[] = []
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    client.on('data', (d: Buffer) => chunks.push(Buffer.from(d)))
    upstream.on('data', (d: Buffer) => chunks.push(Buffer.from(d)))
    client.pipe(upstream).on('error', () => client.destroy())
    upstream.pipe(client).on('error', () => upstream.destroy())
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => Buffer.concat(chunks),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
      }),
  }
}

/** IMDSv2 on loopback: a token first, then the role's credentials only with it. */
async function startImds(): Promise<{ url: string; close(): Promise<void> }> {
  const token = 'imds-session-token-for-the-test'
  const server: HttpServer = createHttpServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds'] !== undefined) return void res.end(token)
    if (req.headers['x-aws-ec2-metadata-token'] !== token) return void res.writeHead(401).end()
    if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.end(`${IMDS_ROLE}\n`)
    if (req.url === `/latest/meta-data/iam/security-credentials/${IMDS_ROLE}`) {
      return void res.end(
        JSON.stringify({ Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: IMDS_ACCESS_KEY, SecretAccessKey: 'imds-secret-not-real', Token: 'imds-session', Expiration: new Date(Date.now() + 3600_000).toISOString() }),
      )
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

interface Parent {
  child: ChildProcess
  proxyPort: number
  sealedPort: number
  output(): string
}

async function startParent(args: string[]): Promise<Parent> {
  const child = spawn(process.execPath, [CLI, 'parent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d))
  await until(() => /listening on 127\.0\.0\.1:\d+, allowing .*\n/.test(out) || child.exitCode !== null, 'the parent listens')
  const m = /listening on 127\.0\.0\.1:(\d+), allowing .*, 127\.0\.0\.1:(\d+)\n/.exec(out)
  assert.ok(m !== null, out)
  return { child, proxyPort: Number(m[1]), sealedPort: Number(m[2]), output: () => out }
}

describe('with a real nec01 parent: it keeps the blob, passes credentials in, and never sees the key', () => {
  it('two boots through the parent give the same npub; the key is in no byte the parent saw', async () => {
    const state = tempDir('nec01-sealed-parent-')
    cleanups.push(() => state.remove())
    const enclaveDir = join(state.path, 'enclave')
    const relay: EmbeddedRelay = await startTestRelay()
    cleanups.push(() => relay.close())
    const imds = await startImds()
    cleanups.push(() => imds.close())
    const simulator = await openSimulator({ stateDir: enclaveDir })
    cleanups.push(() => simulator.close())
    const exchanges: KmsExchange[] = []
    // Only the role's credentials from IMDS are accepted: they must have come through the parent.
    const standin: KmsStandin = await startKmsStandin({
      stateDir: join(state.path, 'kms'),
      root: simulator.rootPem(),
      principals: { [IMDS_ACCESS_KEY]: STANDIN_CALLER_ARN },
      onExchange: (e) => exchanges.push(e),
    })
    cleanups.push(() => standin.close())
    const key = standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: hexOf((await simulator.describePcr(0)).value) } }))
    mkdirSync(join(state.path, 'parent'))
    const relaysFile = join(state.path, 'parent', 'relays.json')
    writeFileSync(relaysFile, JSON.stringify({ relays: [{ url: relay.url, read: true, write: true }] }))
    const blobFile = join(state.path, 'parent', 'sealed-key.bin')
    const kmsHost = new URL(standin.endpoint).host
    const parent = await startParent(['--relays', relaysFile, '--allow', kmsHost, '--port', '0', '--sealed-key-port', '0', '--sealed-key', blobFile, '--imds', imds.url])
    const tap = await startTap(parent.proxyPort)
    cleanups.push(() => tap.close())

    const args = [
      '--dev',
      '--state-dir',
      enclaveDir,
      '--relay',
      relay.url,
      '--health-port',
      '0',
      '--proxy',
      `http://127.0.0.1:${tap.port}`,
      '--parent',
      `http://127.0.0.1:${parent.sealedPort}`,
      '--kms-key',
      key.arn,
      '--kms-endpoint',
      standin.endpoint,
    ]
    const first = await run(args)
    assert.match(line(first.out, 'identity:') ?? '', /^identity: new, sealed .*kept by the parent/)
    const blob = readFileSync(blobFile)
    const second = await run(args)
    assert.equal(second.npub, first.npub)
    assert.match(line(second.out, 'identity:') ?? '', /^identity: unsealed/)
    assert.deepEqual(readFileSync(blobFile), blob, 'handed in, not replaced')

    // The key, as only an accepted enclave can get it: unseal the parent's blob here.
    const kms = kmsClient(standin, IMDS_ACCESS_KEY)
    cleanups.push(() => kms.destroy())
    const secret = await unsealKey({ kms, blob: new Uint8Array(blob), nsm: simulator })
    const pubkey = getPublicKey(secret)
    assert.equal((nip19Decode(first.npub) as { data: string }).data, pubkey, 'the blob holds the service key')

    const seen = Buffer.concat([
      tap.bytes(),
      blob,
      Buffer.from(parent.output()),
      ...exchanges.flatMap((e) => [e.requestBody, e.responseBody]),
      Buffer.from(first.out + first.err + second.out + second.err),
    ])
    // the tap did carry the channel: the blob went out through it, and came back in
    assert.ok(tap.bytes().indexOf(blob) >= 0, 'the blob crossed the tap')
    assert.ok(tap.bytes().indexOf(Buffer.from(IMDS_ACCESS_KEY)) >= 0, 'the credentials crossed the tap')
    assert.ok(seen.indexOf(Buffer.from(pubkey)) >= 0, 'the search works: the public key is there')
    for (const form of [Buffer.from(secret), Buffer.from(hexOf(secret)), Buffer.from(hexOf(secret).toUpperCase()), Buffer.from(Buffer.from(secret).toString('base64')), Buffer.from(nsecEncode(secret))]) {
      assert.equal(seen.indexOf(form), -1, 'the key never crossed to the parent, in any form')
    }
    // and the parent logged what it did, as JSON lines
    assert.match(parent.output(), /"action":"stored"/)
    assert.match(parent.output(), /"action":"handed-in"/)
    assert.match(parent.output(), /"action":"credentials"/)
    assert.doesNotMatch(parent.output(), /imds-secret-not-real/, 'the parent never logs credentials')
    parent.child.kill('SIGTERM')
    assert.equal(await exited(parent.child), 0)
  })

  it('nec01 parent --new-identity: the blob is not handed in, the enclave starts a new npub, the old blob is kept aside', async () => {
    const state = tempDir('nec01-sealed-parent-new-')
    cleanups.push(() => state.remove())
    const simulator = await openSimulator({ stateDir: state.path })
    cleanups.push(() => simulator.close())
    const standin = await startKmsStandin({ stateDir: state.path, root: simulator.rootPem() })
    cleanups.push(() => standin.close())
    const key = standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: hexOf((await simulator.describePcr(0)).value) } }))
    const relay = await startTestRelay()
    cleanups.push(() => relay.close())
    const imds = await startImds()
    cleanups.push(() => imds.close())
    const blobFile = join(state.path, 'parent-sealed-key.bin')
    const relaysFile = join(state.path, 'relays.json')
    writeFileSync(relaysFile, JSON.stringify({ relays: [{ url: relay.url, read: true, write: true }] }))
    const parentArgs = ['--relays', relaysFile, '--allow', new URL(standin.endpoint).host, '--port', '0', '--sealed-key-port', '0', '--sealed-key', blobFile, '--imds', imds.url]
    const serveArgs = (p: Parent): string[] => [
      '--dev', '--state-dir', state.path, '--relay', relay.url, '--health-port', '0', '--proxy', `http://127.0.0.1:${p.proxyPort}`,
      '--parent', `http://127.0.0.1:${p.sealedPort}`, '--kms-key', key.arn, '--kms-endpoint', standin.endpoint,
    ]
    const p1 = await startParent(parentArgs)
    const first = await run(serveArgs(p1))
    p1.child.kill('SIGTERM')
    await exited(p1.child)
    const oldBlob = readFileSync(blobFile)

    const refused = spawn(process.execPath, [CLI, 'parent', ...parentArgs, '--new-identity', ' '], { stdio: ['ignore', 'pipe', 'pipe'] })
    let refusal = ''
    refused.stderr!.setEncoding('utf8').on('data', (d: string) => (refusal += d))
    assert.equal(await exited(refused), 2)
    assert.match(refusal, /--new-identity needs a reason/)

    const p2 = await startParent([...parentArgs, '--new-identity', 'test: the old key leaked from a backup'])
    const second = await run(serveArgs(p2))
    assert.notEqual(second.npub, first.npub)
    assert.match(second.err, /NEW identity.*test: the old key leaked from a backup/)
    assert.match(p2.output(), /"action":"new-identity"/)
    assert.match(p2.output(), /"kept_aside":"[^"]+\.replaced-/)
    const aside = /"kept_aside":"([^"]+)"/.exec(p2.output())![1]!
    assert.deepEqual(readFileSync(aside), oldBlob)
    // the new blob is the one handed in from now on, while this parent runs
    assert.equal((await run(serveArgs(p2))).npub, second.npub)
    p2.child.kill('SIGTERM')
    await exited(p2.child)
  })
})

// The sealed identity at boot, in process: the real service (startService) on the NSM
// simulator, the real @aws-sdk/client-kms against the KMS stand-in on loopback, the blob kept
// in a file as `serve --dev` keeps it. The same npub comes back; a blob that does not open
// never gives a new one; the service waits, retries and says why in /health.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KMSClient } from '@aws-sdk/client-kms'
import { createLogger } from '../src/log.js'
import { openSimulator, type NsmSimulator } from '../src/nsm/simulator.js'
import { SEALED_KEY_FILE_NAME, sealedKeyFile } from '../src/parent/sealed.js'
import type { HealthReport } from '../src/service/health.js'
import { fileKeyHolder } from '../src/service/sealed-holders.js'
import type { IdentityErrorCode, RetryPolicy } from '../src/service/sealed-identity.js'
import { startService, type Service } from '../src/service/service.js'
import { decodeDocument, field } from './nsm-helpers.js'
import { hexOf, kmsClient, kmsWorld, randomPcr, type KmsWorld } from './kms-helpers.js'
import { freePort, startTestRelay } from './service-harness.js'
import { until } from './talk.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'

const FAST: RetryPolicy = { firstDelayMs: 50, maxDelayMs: 200, operatorDelayMs: 200 }

interface Boot {
  /** resolves with the service once the identity exists; rejects when stopped first */
  started: Promise<Service>
  healthPort: number
  logs: string[]
  health(): Promise<{ status: number; report: HealthReport }>
  stop(): Promise<void>
}

describe('sealed identity: the boot flow against the KMS stand-in', () => {
  let world: KmsWorld
  let relay: EmbeddedRelay
  let keyArn: string
  const clients: KMSClient[] = []

  before(async () => {
    world = await kmsWorld('boot')
    keyArn = world.enclaveKey()
    relay = await startTestRelay()
  })
  after(async () => {
    for (const c of clients) c.destroy()
    await relay.close()
    await world.close()
  })

  const blobPath = (): string => join(world.stateDir, SEALED_KEY_FILE_NAME)

  async function boot(options: { nsm?: NsmSimulator; newIdentity?: string; key?: string; kms?: KMSClient } = {}): Promise<Boot> {
    const logs: string[] = []
    const nsm = options.nsm ?? (await openSimulator({ stateDir: world.stateDir }))
    const kms = options.kms ?? kmsClient(world.standin)
    clients.push(kms)
    const healthPort = await freePort()
    const abort = new AbortController()
    const started = startService({
      nsm,
      trustRoot: world.simulator.rootDer(),
      tee: 'simulated',
      t: 'dev',
      relays: [{ url: relay.url, read: true, write: true }],
      healthPort,
      marginSec: 3600,
      name: 'nec01-sealed-test',
      version: '0.0.0-test',
      log: createLogger({}, { level: 'debug', sink: (line) => logs.push(line) }),
      sealing: {
        kms,
        keyId: options.key ?? keyArn,
        region: world.standin.region,
        holder: fileKeyHolder(sealedKeyFile(blobPath())),
        retry: FAST,
        ...(options.newIdentity === undefined ? {} : { newIdentity: options.newIdentity }),
      },
      signal: abort.signal,
    })
    started.catch(() => undefined)
    return {
      started,
      healthPort,
      logs,
      async health() {
        const res = await fetch(`http://127.0.0.1:${healthPort}/health`)
        return { status: res.status, report: (await res.json()) as HealthReport }
      },
      async stop() {
        abort.abort()
        const service = await started.catch(() => null)
        await service?.close()
        if (service === null) await nsm.close()
      },
    }
  }

  /** Waits until /health reports this refusal (or retry) at least twice: the service keeps trying. */
  async function refusedTwice(b: Boot, code: IdentityErrorCode, state: 'refused' | 'retrying'): Promise<HealthReport> {
    let report: HealthReport | null = null
    await until(async () => {
      // not listening yet: the module is still being described
      const h = await b.health().catch(() => null)
      if (h === null) return false
      report = h.report
      return h.status === 503 && h.report.identity.state === state && h.report.identity.last_error?.code === code && h.report.identity.attempts >= 2
    }, `${code} reported twice`)
    const r = report!
    assert.equal(r.status, 'no_identity')
    assert.equal(r.npub, null)
    assert.equal(r.pubkey, null)
    assert.ok(!r.identity.last_error!.message.includes('\n'))
    assert.ok(b.logs.some((l) => l.includes(code) && l.includes('"no_new_identity":true')), 'the refusal is logged')
    return r
  }

  let firstNpub = ''
  let firstBlob: Buffer

  it('first boot: a new identity, sealed; the blob is kept and holds no trace of the key in the clear', async () => {
    const b = await boot()
    const service = await b.started
    try {
      assert.equal(service.identity.origin, 'new')
      const h = await b.health()
      assert.equal(h.report.identity.origin, 'new')
      assert.equal(h.report.identity.state, 'ready')
      assert.equal(h.report.npub, service.identity.npub)
      firstNpub = service.identity.npub
      firstBlob = readFileSync(blobPath())
      assert.ok(b.logs.some((l) => l.includes('identity created and sealed')))
    } finally {
      await b.stop()
    }
  })

  it('a restart unseals the same npub, with a fresh attested RSA key that is not the NEC-01 root key', async () => {
    const from = world.exchanges.length
    const b = await boot()
    const service = await b.started
    try {
      assert.equal(service.identity.origin, 'unsealed')
      assert.equal(service.identity.npub, firstNpub)
      assert.deepEqual(readFileSync(blobPath()), firstBlob, 'the blob is not rewritten')
      const decrypts = world.exchanges.slice(from).filter((e) => e.operation === 'Decrypt' && e.status === 200)
      assert.equal(decrypts.length, 1)
      // The Recipient's document carries an RSA SPKI; the root event's carries the Nostr key.
      const recipientKey = recipientPublicKey(decrypts[0]!.requestBody)
      assert.equal(recipientKey.length, 294, 'RSA-2048 SubjectPublicKeyInfo')
      const root = service.roots.current()
      assert.ok(root !== null)
      assert.notEqual(hexOf(recipientKey), root.attestation.public_key)
    } finally {
      await b.stop()
    }
    // and the next boot's RSA key is another one
    const again = world.exchanges.length
    const b2 = await boot()
    await b2.started
    await b2.stop()
    const keys = world.exchanges
      .slice(from)
      .filter((e) => e.operation === 'Decrypt' && e.status === 200)
      .map((e) => hexOf(recipientPublicKey(e.requestBody)))
    assert.ok(world.exchanges.length > again)
    assert.equal(keys.length, 2)
    assert.notEqual(keys[0], keys[1], 'a fresh RSA key each boot')
  })

  it('an enclave with another PCR0 is refused, keeps trying, and never starts a new identity', async () => {
    const other = await openSimulator({ stateDir: world.stateDir, bootPcrs: { 0: randomPcr() } })
    const b = await boot({ nsm: other })
    try {
      const report = await refusedTwice(b, 'POLICY_REFUSED', 'refused')
      assert.match(report.identity.last_error!.message, /AccessDeniedException/)
      assert.equal(report.identity.origin, null)
      assert.deepEqual(readFileSync(blobPath()), firstBlob, 'the blob is untouched')
      assert.equal(world.exchanges.filter((e) => e.operation === 'GenerateDataKey').length, 1, 'nothing was sealed since the first boot')
    } finally {
      await b.stop()
    }
    await assert.rejects(b.started, /abort/i, 'startService gives up only when stopped')
  })

  it('a debug-mode enclave is refused, and never starts a new identity', async () => {
    const debug = await openSimulator({ stateDir: world.stateDir, debug: true })
    const b = await boot({ nsm: debug })
    try {
      const report = await refusedTwice(b, 'POLICY_REFUSED', 'refused')
      assert.match(report.identity.last_error!.message, /debug/)
      assert.deepEqual(readFileSync(blobPath()), firstBlob)
    } finally {
      await b.stop()
    }
  })

  it('a truncated blob is refused before KMS is asked; a tampered one by KMS or GCM; neither gives a new identity', async () => {
    try {
      writeFileSync(blobPath(), firstBlob.subarray(0, firstBlob.length - 5))
      const before = world.exchanges.length
      const b = await boot()
      try {
        const report = await refusedTwice(b, 'BLOB_DAMAGED', 'refused')
        assert.match(report.identity.last_error!.message, /truncated|checksum/)
        assert.equal(world.exchanges.length, before, 'no KMS call for a blob that does not parse')
      } finally {
        await b.stop()
      }
      // one bit flipped inside the KMS ciphertext, the checksum made right again
      const tampered = Buffer.from(firstBlob)
      const kmsStart = 10 + tampered.readUInt16BE(8) + 2
      tampered[kmsStart + 40] = tampered[kmsStart + 40]! ^ 1
      tampered.set(createHash('sha256').update(tampered.subarray(0, tampered.length - 32)).digest(), tampered.length - 32)
      writeFileSync(blobPath(), tampered)
      const b2 = await boot()
      try {
        await refusedTwice(b2, 'BLOB_DAMAGED', 'refused')
        assert.deepEqual(readFileSync(blobPath()), tampered, 'the damaged blob is left for the operator')
      } finally {
        await b2.stop()
      }
    } finally {
      writeFileSync(blobPath(), firstBlob)
    }
  })

  it('a blob sealed under another KMS key than the pinned one is refused (KEY_MISMATCH)', async () => {
    const otherKey = world.enclaveKey()
    const b = await boot({ key: otherKey })
    try {
      const report = await refusedTwice(b, 'KEY_MISMATCH', 'refused')
      assert.ok(report.identity.last_error!.message.includes(keyArn))
    } finally {
      await b.stop()
    }
  })

  it('KMS down: the service retries with backoff, reports it, and comes up with the same npub once KMS is back', async () => {
    const { port } = new URL(world.standin.endpoint)
    const kms = kmsClient(world.standin)
    // KMS is gone from its port; it comes back there later
    await world.standin.close()
    const b = await boot({ kms })
    try {
      const report = await refusedTwice(b, 'KMS_UNREACHABLE', 'retrying')
      assert.ok(report.identity.next_attempt_at !== null)
      assert.ok(b.logs.some((l) => l.includes('retrying') && l.includes('KMS_UNREACHABLE')))
      await world.restart({ port: Number(port) })
      const service = await b.started
      assert.equal(service.identity.origin, 'unsealed')
      assert.equal(service.identity.npub, firstNpub)
      const h = await b.health()
      assert.equal(h.report.identity.state, 'ready')
      assert.ok(h.report.identity.attempts >= 2)
      assert.equal(h.report.identity.last_error?.code, 'KMS_UNREACHABLE', 'the last failure stays on record')
    } finally {
      await b.stop()
    }
  })

  it('a new identity only on the operator’s word: a new npub, the reason logged, the old blob kept aside', async () => {
    const b = await boot({ newIdentity: 'test: the old key is retired' })
    try {
      const service = await b.started
      assert.equal(service.identity.origin, 'new')
      assert.notEqual(service.identity.npub, firstNpub)
      const h = await b.health()
      assert.equal(h.report.identity.new_identity_reason, 'test: the old key is retired')
      assert.ok(b.logs.some((l) => l.includes('NEW identity') && l.includes('test: the old key is retired')))
      const aside = readdirSync(world.stateDir).filter((f) => f.startsWith(`${SEALED_KEY_FILE_NAME}.replaced-`))
      assert.equal(aside.length, 1)
      assert.deepEqual(readFileSync(join(world.stateDir, aside[0]!)), firstBlob)
      assert.ok(existsSync(blobPath()))
      assert.notDeepEqual(readFileSync(blobPath()), firstBlob)
    } finally {
      await b.stop()
    }
  })
})

/** The Recipient attestation document's public_key, from a Decrypt request body as it crossed the wire. */
function recipientPublicKey(requestBody: Buffer): Uint8Array {
  const body = JSON.parse(requestBody.toString('utf8')) as { Recipient: { AttestationDocument: string } }
  return field<Uint8Array>(decodeDocument(new Uint8Array(Buffer.from(body.Recipient.AttestationDocument, 'base64'))), 'public_key')
}

// The new build's side of a hand-over as serve runs it: the real `adopt` (src/upgrade/adopt.ts)
// seals the received key under the new build's own KMS key, with the same client, key and
// holder as a first boot, replacing its blob (the old one kept aside); the restarted build
// unseals it like any later boot, skips asking for a key it holds, reads its lineage back
// from the relays, answers as the old npub, and `nec01 history` shows both builds.
// In process (startService), not two `serve` processes: serve has no flag to boot the
// simulator as another image, and a hand-over needs two PCR0s on one simulated CA.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateSecretKey } from 'nostr-tools/pure'
import { ANNOUNCEMENT_KIND } from '../nec01/kinds.js'
import { npub } from '../nec01/nostr.js'
import { lineageOf } from '../nec01/upgrade.js'
import { enclaveKeyPolicy } from '../src/kms/policy.js'
import { startKmsStandin, STANDIN_CALLER_ARN, type KmsStandin } from '../src/kms/standin.js'
import type { NsmSimulator } from '../src/nsm/simulator.js'
import { sealedKeyFile, SEALED_KEY_FILE_NAME } from '../src/parent/sealed.js'
import type { RelayPool } from '../src/relays/pool.js'
import { identityFromSecret } from '../src/service/identity.js'
import { fileKeyHolder } from '../src/service/sealed-holders.js'
import type { SealingConfig } from '../src/service/sealed-identity.js'
import { createAdopt, type Adopted } from '../src/upgrade/adopt.js'
import { createRpcCaller } from '../src/upgrade/call.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { kmsClient } from './kms-helpers.js'
import { quietLogger, startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'
import { until } from './talk.js'
import { person, policyOf, poolOn, randomImage, release, stored } from './upgrade-helpers.js'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

describe('the new build adopts a handed-over key: sealed, restarted, the same npub', () => {
  const dir = tempDir('nec01-adopt-')
  const blobDir = tempDir('nec01-adopt-blob-')
  const [imageA, imageB, m1] = [randomImage(), randomImage(), person()]
  const holderSecret = generateSecretKey()
  const holderKey = identityFromSecret(holderSecret).pubkey
  let relay: EmbeddedRelay
  let reader: RelayPool
  let standin: KmsStandin
  let sealing: SealingConfig
  const services: TestService[] = []

  before(async () => {
    relay = await startTestRelay()
    reader = poolOn(relay.url, identityFromSecret(generateSecretKey()))
    for (const e of [release(m1, imageA.pcrs), release(m1, imageB.pcrs)]) await reader.publish(e)
    const holder = await startTestService({
      relays: [relay.url],
      stateDir: dir.path,
      nsm: { bootPcrs: imageA.boot },
      config: { identitySecret: async () => holderSecret, upgrade: { policy: policyOf([m1], 1, 2), restoreTimeoutMs: 3000 } },
    })
    services.push(holder)
    await until(() => holder.service.upgrade.holder?.state().phase === 'idle', 'the holder to read its past')
    standin = await startKmsStandin({ stateDir: dir.path, root: holder.simulator.rootPem() })
    const keyId = standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: imageB.pcrs[0] } })).arn
    sealing = { kms: kmsClient(standin), keyId, region: standin.region, holder: fileKeyHolder(sealedKeyFile(join(blobDir.path, SEALED_KEY_FILE_NAME))) }
  })

  after(async () => {
    for (const s of services.reverse()) await s.close().catch(() => undefined)
    sealing?.kms.destroy()
    await standin?.close()
    await reader.close()
    await relay.close()
    dir.remove()
    blobDir.remove()
  })

  function startNewBuild(then: (a: Adopted) => void): Promise<TestService> {
    let sim: NsmSimulator | null = null
    return startTestService({
      relays: [relay.url],
      stateDir: dir.path,
      nsm: { bootPcrs: imageB.boot },
      wrapNsm: (s) => (sim = s),
      config: {
        sealing,
        upgrade: {
          policy: null,
          restoreTimeoutMs: 3000,
          request: { holder: holderKey, releases: [release(m1, imageB.pcrs)], pollMs: 300, adopt: (h) => createAdopt({ nsm: sim!, sealing, log: quietLogger, then })(h) },
        },
      },
    })
  }

  it('seals the key under its own KMS key, replaces its blob (the old kept aside), then restarts into the old npub', async () => {
    let adopted: Adopted | null = null
    const first = await startNewBuild((a) => (adopted = a))
    services.push(first)
    assert.equal(first.service.identity.origin, 'new', 'a first boot seals its own key')
    assert.notEqual(first.service.identity.pubkey, holderKey)
    const outcome = await first.service.upgrade.request
    assert.ok(outcome?.ok === true, JSON.stringify(outcome))
    const got = adopted as Adopted | null
    assert.ok(got !== null && got.sealed, 'adopt sealed the key')
    assert.equal(got.pubkey, holderKey)
    assert.ok(!('secret' in got), 'a sealed adoption passes no secret on')
    assert.equal(readdirSync(blobDir.path).filter((f) => f.startsWith(`${SEALED_KEY_FILE_NAME}.replaced-`)).length, 1, "the new build's first blob is kept aside")
    assert.ok(existsSync(join(blobDir.path, SEALED_KEY_FILE_NAME)))
    for (const line of first.logs) assert.ok(!line.includes(Buffer.from(holderSecret).toString('hex')), 'no log line holds the key')
    await first.close()

    // the restart: the same configuration, no secret passed in; the keeper unseals
    const second = await startNewBuild(() => assert.fail('a build holding the key asks for none'))
    services.push(second)
    assert.equal(second.service.identity.pubkey, holderKey, 'the same npub as the old holder')
    assert.equal(second.service.identity.origin, 'unsealed')
    assert.equal(second.service.upgrade.request, null, 'no request for a key it holds')
    const info = async (): Promise<{ pcrs: Record<string, string> } | null> =>
      (createRpcCaller({ pool: reader, identity: identityFromSecret(generateSecretKey()), target: holderKey, timeoutMs: 3000 })('info', {}) as Promise<{ pcrs: Record<string, string> }>).catch(() => null)
    let answer = await info()
    for (let i = 0; answer === null && i < 4; i++) answer = await info()
    assert.equal(answer?.pcrs['0'], imageB.pcrs[0], 'the new build answers as the old npub')
  })

  it('announces the lineage read back from the relays; `nec01 history` shows both builds', async () => {
    await until(async () => {
      const [a] = await stored(reader, { kinds: [ANNOUNCEMENT_KIND], authors: [holderKey] })
      return a !== undefined && lineageOf(a).length === 1
    }, "the restarted build's announcement with its lineage")
    const [announcement] = await stored(reader, { kinds: [ANNOUNCEMENT_KIND], authors: [holderKey] })
    assert.equal(lineageOf(announcement!)[0]?.pcr0, imageA.pcrs[0])
    const pem = join(dir.path, 'nsm-simulator', 'root.pem')
    const { code, stdout, stderr } = await run(['history', npub(holderKey), '--relay', relay.url, '--root', pem, '--expect', 'dev', '--timeout', '5'])
    assert.equal(code, 0, stdout + stderr)
    assert.match(stdout, new RegExp(`1\\. PCR0 ${imageA.pcrs[0]}`))
    assert.match(stdout, new RegExp(`2\\. PCR0 ${imageB.pcrs[0]}.*holds the key now`))
  })

  it('serve --upgrade-from: refused outside dev without a sealed identity, and without release signatures', async () => {
    const prod = await run(['serve', '--upgrade-from', npub(holderKey), '--health-port', '0', '--relay', 'ws://127.0.0.1:9'])
    assert.notEqual(prod.code, 0)
    assert.match(prod.stderr, /--upgrade-from needs a sealed identity outside dev .* would be lost/)
    assert.equal(prod.stderr.trim().split('\n').filter((l) => l.includes('upgrade-from')).length, 1, 'one line')
    const noReleases = await run(['serve', '--dev', '--upgrade-from', npub(holderKey), '--health-port', '0', '--relay', 'ws://127.0.0.1:9', '--state-dir', dir.path])
    assert.notEqual(noReleases.code, 0)
    assert.match(noReleases.stderr, /--upgrade-from needs this build's release signatures/)
    const bad = await run(['serve', '--dev', '--upgrade-from', 'npub1nope', '--health-port', '0', '--relay', 'ws://127.0.0.1:9', '--state-dir', dir.path])
    assert.match(bad.stderr, /--upgrade-from: expected the holder's npub/)
  })
})

// Upgrades that keep the npub, for real: a holder (image A) and new builds (image B, C) on
// one simulated CA, the embedded relay, the KMS stand-in sealing the key the new build
// receives. Every refusal the protocol promises is provoked on purpose, then the whole
// hand-over runs: pending → cooldown → the key moves → the new build answers as the same
// npub, and `nec01 history` shows both builds.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateSecretKey } from 'nostr-tools/pure'
import { UPGRADE_CANCELLED_KIND, UPGRADE_PENDING_KIND, UPGRADED_KIND, ANNOUNCEMENT_KIND } from '../nec01/kinds.js'
import { verifyHistory } from '../nec01/lineage.js'
import type { NostrEvent } from '../nec01/types.js'
import { lineageOf, verifyUpgradeEvent, type LineageEntry } from '../nec01/upgrade.js'
import { enclaveKeyPolicy } from '../src/kms/policy.js'
import { sealKey, unsealKey } from '../src/kms/seal.js'
import { startKmsStandin, STANDIN_CALLER_ARN, type KmsStandin } from '../src/kms/standin.js'
import type { NsmSimulator } from '../src/nsm/simulator.js'
import type { RelayPool } from '../src/relays/pool.js'
import { identityFromSecret } from '../src/service/identity.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { createRpcCaller } from '../src/upgrade/call.js'
import type { ServiceUpgrade } from '../src/upgrade/wiring.js'
import { kmsClient } from './kms-helpers.js'
import { startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'
import { until } from './talk.js'
import { candidate, person, policyOf, poolOn, randomImage, refusal, release, stored, REPO, type Candidate } from './upgrade-helpers.js'

const COOLDOWN_SEC = 4
const NONCE_TTL_SEC = 3
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

describe('hand-over: a holder, new builds, the relay and the KMS stand-in', () => {
  const dir = tempDir('nec01-upgrade-')
  const [imageA, imageB, imageC] = [randomImage(), randomImage(), randomImage()]
  const [m1, m2, stranger, operator] = [person(), person(), person(), person()]
  const holderSecret = generateSecretKey()
  const holderKey = identityFromSecret(holderSecret).pubkey
  const releasesB = [release(m1, imageB.pcrs), release(m2, imageB.pcrs)]
  let relay: EmbeddedRelay
  let reader: RelayPool
  let v1: TestService
  const candidates: Candidate[] = []
  const others: TestService[] = []

  const upgradeConfig = (extra: Partial<ServiceUpgrade> = {}): ServiceUpgrade => ({
    policy: policyOf([m1, m2], 2, COOLDOWN_SEC),
    restoreTimeoutMs: 3000,
    nonceTtlSec: NONCE_TTL_SEC,
    ...extra,
  })

  /** The holder (image A), always with the same key, as a sealed identity would give it. */
  function startHolder(extra: Partial<ServiceUpgrade> = {}): Promise<TestService> {
    return startTestService({
      relays: [relay.url],
      stateDir: dir.path,
      nsm: { bootPcrs: imageA.boot },
      config: { identitySecret: async () => holderSecret, operator: operator.pubkey, upgrade: upgradeConfig(extra) },
    })
  }

  async function newCandidate(image = imageB, extra: { debug?: boolean; stateDir?: string } = {}): Promise<Candidate> {
    const c = await candidate({ stateDir: extra.stateDir ?? dir.path, relay: relay.url, holder: holderKey, image, ...(extra.debug === undefined ? {} : { debug: extra.debug }) })
    candidates.push(c)
    return c
  }

  const phase = (): string => v1.service.upgrade.holder?.state().phase ?? 'none'

  before(async () => {
    relay = await startTestRelay()
    reader = poolOn(relay.url, identityFromSecret(generateSecretKey()))
    // image A's own release, on the relay: history finds it there
    for (const e of [release(m1, imageA.pcrs), ...releasesB]) await reader.publish(e)
    v1 = await startHolder()
    await until(() => phase() === 'idle', 'the holder to read its (empty) past from the relay')
  })

  after(async () => {
    for (const c of candidates) await c.close()
    for (const s of others) await s.close().catch(() => undefined)
    await v1.close().catch(() => undefined)
    await reader.close()
    await relay.close()
    dir.remove()
  })

  it('refuses a request without release signatures, with too few, or with signatures for other PCRs', async () => {
    const c = await newCandidate()
    const ask = async (releases: NostrEvent[]): Promise<string> => refusal(c.call('upgrade_request', { ...(await c.proof()), releases }))
    assert.equal(await ask([]), 'RELEASES_TOO_FEW')
    assert.equal(await ask([releasesB[0]!]), 'RELEASES_TOO_FEW', 'one of two maintainers')
    assert.equal(await ask([release(m1, imageA.pcrs), release(m2, imageC.pcrs)]), 'RELEASES_TOO_FEW', 'released, but other PCRs')
    assert.equal(await ask([release(m1, imageB.pcrs), release(stranger, imageB.pcrs)]), 'RELEASES_TOO_FEW', 'a stranger is no maintainer')
    assert.equal(await ask([release(m1, imageB.pcrs, 'dev', 'https://example.test/other'), release(m2, imageB.pcrs, 'dev', 'https://example.test/other')]), 'RELEASES_TOO_FEW', 'another repository')
    assert.equal(phase(), 'idle')
  })

  it('refuses a debug build, a build from another root, and a root not made by the sender', async () => {
    const debug = await newCandidate(imageB, { debug: true })
    assert.equal(await refusal(debug.call('upgrade_request', { ...(await debug.proof()), releases: releasesB })), 'DEBUG')
    const elsewhere = tempDir('nec01-upgrade-otherca-')
    try {
      const foreign = await newCandidate(imageB, { stateDir: elsewhere.path })
      assert.equal(await refusal(foreign.call('upgrade_request', { ...(await foreign.proof()), releases: releasesB })), 'OTHER_ROOT')
    } finally {
      elsewhere.remove()
    }
    const c = await newCandidate()
    const thief = await newCandidate()
    const { nonce } = (await thief.call('upgrade_challenge', {})) as { nonce: string }
    assert.equal(await refusal(thief.call('upgrade_request', { nonce, root: await c.root(nonce), releases: releasesB })), 'NOT_ATTESTED_SENDER')
    assert.equal(phase(), 'idle')
  })

  it('refuses a replayed, a stale, an unbound or a borrowed nonce', async () => {
    const c = await newCandidate()
    const other = await newCandidate()
    assert.equal(await refusal(c.call('upgrade_request', { nonce: 'ab'.repeat(32), root: await c.root('ab'.repeat(32)), releases: releasesB })), 'NONCE_UNKNOWN', 'never issued')
    const { nonce } = (await other.call('upgrade_challenge', {})) as { nonce: string }
    assert.equal(await refusal(c.call('upgrade_request', { nonce, root: await c.root(nonce), releases: releasesB })), 'NONCE_UNKNOWN', "another sender's nonce")
    const unbound = (await c.call('upgrade_challenge', {})) as { nonce: string }
    assert.equal(await refusal(c.call('upgrade_request', { nonce: unbound.nonce, root: await c.root(), releases: releasesB })), 'NONCE_UNKNOWN', 'a root without the nonce')
    const stale = await c.proof()
    await new Promise((r) => setTimeout(r, (NONCE_TTL_SEC + 1) * 1000))
    assert.equal(await refusal(c.call('upgrade_request', { ...stale, releases: releasesB })), 'NONCE_UNKNOWN', 'expired')
    assert.equal(phase(), 'idle')
  })

  let pending: NostrEvent
  let activation: number

  it('a released build asks: "upgrade pending" is published, attested, with the activation time; asking again keeps the clock', async () => {
    const c = await newCandidate()
    const proof = await c.proof()
    const answer = (await c.call('upgrade_request', { ...proof, releases: releasesB })) as { pending: string; activation: number }
    assert.equal(phase(), 'pending')
    const [event] = await stored(reader, { ids: [answer.pending] })
    assert.ok(event !== undefined, 'the pending event is on the relay')
    pending = event
    activation = answer.activation
    assert.equal(activation, event.created_at + COOLDOWN_SEC)
    const verdict = await verifyUpgradeEvent(event, { root: v1.rootDer, expect: 'dev', releaseSigners: [m1.pubkey, m2.pubkey], releaseThreshold: 2, repo: REPO })
    assert.ok(verdict.valid, JSON.stringify(verdict.checks.filter((x) => !x.ok)))
    assert.equal(verdict.upgrade?.target[0], imageB.pcrs[0])
    assert.equal(verdict.upgrade?.source[0], imageA.pcrs[0])
    assert.equal(verdict.upgrade?.releases.length, 2)
    const again = (await c.call('upgrade_request', { ...(await c.proof()), releases: releasesB })) as { pending: string; activation: number }
    assert.deepEqual(again, answer, 'the same build asking again gets the same pending upgrade')
    assert.equal(await refusal(c.call('upgrade_complete', await c.proof())), 'TOO_EARLY')
  })

  it('a second build asking meanwhile is refused (BUSY)', async () => {
    const c = await newCandidate(imageC)
    assert.equal(await refusal(c.call('upgrade_request', { ...(await c.proof()), releases: [release(m1, imageC.pcrs), release(m2, imageC.pcrs)] })), 'BUSY')
  })

  it('a holder that restarts during the cooldown reads its pending upgrade back, activation unchanged', async () => {
    await v1.close()
    v1 = await startHolder()
    await until(() => phase() === 'pending', 'the restarted holder to read its pending upgrade')
    const state = v1.service.upgrade.holder?.state()
    assert.ok(state?.phase === 'pending')
    assert.equal(state.event.id, pending.id)
    assert.equal(state.record.activation, activation)
  })

  it("a stranger's cancel is refused; a maintainer's cancels, in public; then nothing can complete", async () => {
    const asStranger = createRpcCaller({ pool: reader, identity: identityFromSecret(stranger.sk), target: holderKey, timeoutMs: 15_000 })
    assert.equal(await refusal(asStranger('upgrade_cancel', { pending: pending.id })), 'NOT_ALLOWED')
    assert.equal(phase(), 'pending')
    const asMaintainer = createRpcCaller({ pool: reader, identity: identityFromSecret(m2.sk), target: holderKey, timeoutMs: 15_000 })
    const { cancelled } = (await asMaintainer('upgrade_cancel', { pending: pending.id })) as { cancelled: string }
    assert.equal(phase(), 'idle')
    const [event] = await stored(reader, { ids: [cancelled] })
    assert.ok(event !== undefined && event.kind === UPGRADE_CANCELLED_KIND)
    const verdict = await verifyUpgradeEvent(event, { root: v1.rootDer, expect: 'dev' })
    assert.ok(verdict.valid, JSON.stringify(verdict.checks.filter((x) => !x.ok)))
    assert.deepEqual(verdict.upgrade?.canceller, { pubkey: m2.pubkey, role: 'maintainer' })
    await new Promise((r) => setTimeout(r, Math.max(0, activation * 1000 - Date.now() + 200)))
    const c = await newCandidate()
    assert.equal(await refusal(c.call('upgrade_complete', await c.proof())), 'NOT_PENDING', 'the cancelled upgrade cannot complete after its activation time')
  })

  let v2b: TestService
  let lineage: LineageEntry[]

  it('end to end: pending → cooldown → the key moves → the new build answers as the same npub', async () => {
    const dirKms = tempDir('nec01-upgrade-kms-')
    let standin: KmsStandin | null = null
    try {
      standin = await startKmsStandin({ stateDir: dirKms.path, root: v1.simulator.rootPem() })
      const kms = kmsClient(standin)
      const keyId = standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: imageB.pcrs[0] } })).arn
      let sealed: { blob: Uint8Array; lineage: LineageEntry[] } | null = null
      let v2Simulator: NsmSimulator | null = null
      const v2 = await startTestService({
        relays: [relay.url],
        stateDir: dir.path,
        nsm: { bootPcrs: imageB.boot },
        wrapNsm: (sim) => (v2Simulator = sim),
        config: {
          upgrade: {
            policy: null,
            request: {
              holder: holderKey,
              releases: releasesB,
              pollMs: 500,
              // the sealed-identity seam: seal under this build's own KMS key; the reboot below opens it
              adopt: async (h) => {
                sealed = { blob: await sealKey({ kms, keyId, secret: h.secret, nsm: v2Simulator! }), lineage: h.lineage }
              },
            },
          },
        },
      })
      others.push(v2)
      assert.notEqual(v2.service.identity.pubkey, holderKey, 'the new build starts with its own key')
      const outcome = await v2.service.upgrade.request
      assert.ok(outcome?.ok === true, JSON.stringify(outcome))
      assert.equal(v1.service.upgrade.holder?.state().phase, 'handed_over')
      assert.ok(sealed !== null)
      const got = sealed as { blob: Uint8Array; lineage: LineageEntry[] }
      lineage = got.lineage
      assert.equal(lineage.length, 1)
      assert.equal(lineage[0]?.pcr0, imageA.pcrs[0])
      const [upgraded] = await stored(reader, { ids: [lineage[0]!.upgraded] })
      assert.ok(upgraded !== undefined && upgraded.kind === UPGRADED_KIND, 'the upgraded event is on the relay')
      for (const line of [...v1.logs, ...v2.logs]) assert.ok(!line.includes(Buffer.from(holderSecret).toString('hex')), 'no log line holds the key')

      // the holder stopped answering
      const ask = createRpcCaller({ pool: reader, identity: identityFromSecret(generateSecretKey()), target: holderKey, timeoutMs: 3000 })
      assert.equal(await refusal(ask('ping', {})), 'NO_REPLY')

      // the new build reboots into the sealed key
      await v2.close()
      let rebooted: NsmSimulator | null = null
      v2b = await startTestService({
        relays: [relay.url],
        stateDir: dir.path,
        nsm: { bootPcrs: imageB.boot },
        wrapNsm: (sim) => (rebooted = sim),
        config: { identitySecret: () => unsealKey({ kms, blob: got.blob, nsm: rebooted! }), upgrade: { policy: null, lineage } },
      })
      others.push(v2b)
      assert.equal(v2b.service.identity.pubkey, holderKey, 'the same npub')
      // RPC events are ephemeral: one that reaches the relay before the new build's
      // subscription is registered there is lost, so ask again as any client would
      const info = async (): Promise<{ pcrs: Record<string, string> } | null> => {
        try {
          return (await createRpcCaller({ pool: reader, identity: identityFromSecret(generateSecretKey()), target: holderKey, timeoutMs: 3000 })('info', {})) as { pcrs: Record<string, string> }
        } catch {
          return null
        }
      }
      let answer = await info()
      for (let i = 0; answer === null && i < 4; i++) answer = await info()
      assert.equal(answer?.pcrs['0'], imageB.pcrs[0], 'answered by the new build')
      kms.destroy()
    } finally {
      await standin?.close()
      dirKms.remove()
    }
  })

  it('the announcement carries the lineage, and `nec01 history` shows both builds', async () => {
    await until(async () => {
      const [a] = await stored(reader, { kinds: [ANNOUNCEMENT_KIND], authors: [holderKey] })
      return a !== undefined && lineageOf(a).length === 1
    }, "the new build's announcement")
    const [announcement] = await stored(reader, { kinds: [ANNOUNCEMENT_KIND], authors: [holderKey] })
    assert.deepEqual(lineageOf(announcement!), lineage)
    const pem = v1.simulator.rootPemPath()
    const { code, stdout, stderr } = await run(['history', holderKey, '--relay', relay.url, '--root', pem, '--expect', 'dev', '--timeout', '5'])
    assert.equal(code, 0, stdout + stderr)
    assert.match(stdout, new RegExp(`1\\. PCR0 ${imageA.pcrs[0]}`))
    assert.match(stdout, new RegExp(`2\\. PCR0 ${imageB.pcrs[0]}.*holds the key now`))
    assert.match(stdout, /cancelled by the maintainer [0-9a-f]{12}…: upgrade from PCR0/)
    assert.match(stdout, /completed: upgrade from PCR0/)
    const trusted = await run(['history', holderKey, '--relay', relay.url, '--root', pem, '--expect', 'dev', '--release-signers', `${m1.pubkey},${m2.pubkey}`, '--release-threshold', '2', '--timeout', '5'])
    assert.equal(trusted.code, 1, 'image A was released by one maintainer only')
    assert.match(trusted.stdout, new RegExp(`build PCR0 ${imageA.pcrs[0].slice(0, 12)}… is released by 1 of the 2 needed`))
  })

  it('the old holder restarted with its key never serves again: it reads its hand-over and stays silent', async () => {
    await v1.close()
    let retired: string | null = null
    v1 = await startHolder({ onRetired: (id) => (retired = id) })
    await until(() => phase() === 'handed_over', 'the restarted old holder to find its hand-over')
    await until(() => retired !== null, 'the old holder to retire')
    const [announcement] = await stored(reader, { kinds: [ANNOUNCEMENT_KIND], authors: [holderKey] })
    assert.equal(lineageOf(announcement!).length, 1, "the new build's announcement stands")
  })

  it('history fails on a gap, an unsigned build, and a hand-over event that does not verify', async () => {
    const [announcement] = await stored(reader, { kinds: [ANNOUNCEMENT_KIND], authors: [holderKey] })
    const events = await stored(reader, { kinds: [UPGRADE_PENDING_KIND, UPGRADE_CANCELLED_KIND, UPGRADED_KIND], authors: [holderKey] })
    const releases = await stored(reader, { kinds: [63794] })
    const input = { pubkey: holderKey, announcement: announcement!, events, releases }
    const options = { root: v1.rootDer, expect: 'dev' as const }
    const good = await verifyHistory(input, options)
    assert.ok(good.valid, good.problems.join('; '))
    assert.equal(good.builds.length, 2)
    const noUpgraded = await verifyHistory({ ...input, events: events.filter((e) => e.kind !== UPGRADED_KIND) }, options)
    assert.ok(!noUpgraded.valid && noUpgraded.problems.some((p) => p.startsWith('gap:')), noUpgraded.problems.join('; '))
    const noPending = await verifyHistory({ ...input, events: events.filter((e) => e.kind !== UPGRADE_PENDING_KIND || e.id === pending.id) }, options)
    assert.ok(!noPending.valid && noPending.problems.some((p) => /hand-over .* does not verify: the pending event/.test(p)), noPending.problems.join('; '))
    const unsigned = await verifyHistory({ ...input, releases: releases.filter((e) => !e.tags.some((t) => t[1] === imageA.pcrs[0])) }, options)
    assert.ok(!unsigned.valid && unsigned.problems.some((p) => p.includes('is unsigned')), unsigned.problems.join('; '))
    const upgraded = events.find((e) => e.kind === UPGRADED_KIND)!
    const forged = { ...upgraded, tags: upgraded.tags.map((t) => (t[0] === 'x' && t[2] === 'PCR1' ? ['x', imageC.pcrs[1], 'PCR1'] : t)) }
    const broken = await verifyHistory({ ...input, events: events.map((e) => (e.id === upgraded.id ? forged : e)) }, options)
    assert.ok(!broken.valid && broken.problems.some((p) => p.includes('does not verify')), broken.problems.join('; '))
  })
})

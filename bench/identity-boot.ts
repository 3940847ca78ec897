// The persistent identity's cost at boot (issue 15), in this process: startService on the NSM
// simulator, the real @aws-sdk/client-kms against the KMS stand-in on loopback. Rows:
//   boot, ephemeral key (no KMS) vs boot unsealing the sealed key (a later boot) vs first boot
//   (draw, seal, hand out); the unseal alone; and the second attestation: a fresh RSA-2048
//   key plus an NSM document carrying it, split into its two parts.
// The simulator signs documents in software and the stand-in answers on loopback, so the KMS
// round trip here is a floor: in an enclave add the proxy hop and KMS's own latency.
// The boots talk to a real relay on loopback: an unsealed key's boot reads its lineage back
// from the relays before it announces, and with no relay answering it would wait the whole
// read-back window (8 s) and this row would measure that timeout, not the boot.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { webcrypto } from 'node:crypto'
import type { KMSClient } from '@aws-sdk/client-kms'
import { createKmsClient } from '../src/kms/client.js'
import { enclaveKeyPolicy } from '../src/kms/policy.js'
import { attestedRecipient, sealKey, unsealKey } from '../src/kms/seal.js'
import { startKmsStandin, STANDIN_CALLER_ARN } from '../src/kms/standin.js'
import { openSimulator, type NsmSimulator } from '../src/nsm/simulator.js'
import { sealedKeyFile, SEALED_KEY_FILE_NAME } from '../src/parent/sealed.js'
import { fileKeyHolder } from '../src/service/sealed-holders.js'
import type { SealingConfig } from '../src/service/sealed-identity.js'
import { startService } from '../src/service/service.js'
import { startEmbeddedRelay } from '../src/embedded/relay.js'
import { ms, ratio, row, type Row } from './report.js'
import { quietLogger } from './simulated.js'
import { median, nowMs } from './stats.js'

const CREDENTIALS = { accessKeyId: 'AKIANEC01BENCH000000', secretAccessKey: 'bench-not-a-secret' }

async function timed(rounds: number, once: () => Promise<void>): Promise<number> {
  const samples: number[] = []
  for (let i = 0; i < rounds; i++) {
    const start = nowMs()
    await once()
    samples.push(nowMs() - start)
  }
  return median(samples)
}

/** One boot of the whole service, from startService to its return (first root attested). */
async function boot(stateDir: string, relayUrl: string, sealing: () => SealingConfig | undefined): Promise<number> {
  const nsm = await openSimulator({ stateDir })
  const config = sealing()
  const start = nowMs()
  const service = await startService({
    nsm,
    trustRoot: nsm.rootDer(),
    tee: 'simulated',
    t: 'dev',
    relays: [{ url: relayUrl, read: true, write: true }],
    healthPort: 0,
    marginSec: 3600,
    name: 'nec01-bench',
    version: '0.0.0-bench',
    log: quietLogger,
    ...(config === undefined ? {} : { sealing: config }),
  })
  const elapsed = nowMs() - start
  await service.close()
  return elapsed
}

export async function runIdentityBench(opts: { quick: boolean; log: (line: string) => void }): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const rounds = opts.quick ? 5 : 20
  const stateDir = mkdtempSync(join(tmpdir(), 'nec01-bench-identity-'))
  const probe = await openSimulator({ stateDir })
  const standin = await startKmsStandin({ stateDir, root: probe.rootPem() })
  const pcr0 = Buffer.from((await probe.describePcr(0)).value).toString('hex')
  const { arn } = standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: pcr0 } }))
  const kms: KMSClient = createKmsClient({ region: standin.region, endpoint: standin.endpoint, credentials: CREDENTIALS })
  const relay = await startEmbeddedRelay({ host: '127.0.0.1', port: 0, logger: quietLogger })
  const file = sealedKeyFile(join(stateDir, SEALED_KEY_FILE_NAME))
  const sealing = (newIdentity?: string): SealingConfig => ({ kms, keyId: arn, region: standin.region, holder: fileKeyHolder(file), ...(newIdentity === undefined ? {} : { newIdentity }) })
  try {
    opts.log(`identity: ${rounds} boots each way, the stand-in on ${standin.endpoint}, the relay on ${relay.url}`)
    // warm up the SDK, the stand-in and the code paths once
    await boot(stateDir, relay.url, () => sealing())
    const ephemeral = await timedBoots(rounds, stateDir, relay.url, () => undefined)
    const unsealing = await timedBoots(rounds, stateDir, relay.url, () => sealing())
    const first = await timedBoots(rounds, stateDir, relay.url, () => sealing('bench: a first boot each round'))
    const blob = file.read()!
    const unsealOnly = await timed(rounds, async () => void (await unsealKey({ kms, blob, nsm: probe })))
    const sealOnly = await timed(rounds, async () => void (await sealKey({ kms, keyId: arn, secret: new Uint8Array(32).fill(7), nsm: probe })))
    const second = await secondAttestation(rounds, probe)
    const rows = [
      row({ id: 'identity.boot_ephemeral', section: 'identity', figure: 'boot, ephemeral key (no KMS): startService → first root', value: ms(ephemeral), raw: ephemeral, unit: 'ms' }),
      row({ id: 'identity.boot_unsealed', section: 'identity', figure: 'boot, unsealing the sealed key (a later boot; its lineage read back from the relay)', value: ms(unsealing), raw: unsealing, unit: 'ms', comparison: `${ratio(unsealing / ephemeral)} the ephemeral boot, +${ms(unsealing - ephemeral)}` }),
      row({ id: 'identity.boot_first', section: 'identity', figure: 'boot, first (draw, seal, hand the blob out)', value: ms(first), raw: first, unit: 'ms', comparison: `+${ms(first - ephemeral)} over the ephemeral boot` }),
      row({ id: 'identity.unseal', section: 'identity', figure: 'unsealKey alone (attestation + KMS Decrypt on loopback + CMS + GCM)', value: ms(unsealOnly), raw: unsealOnly, unit: 'ms' }),
      row({ id: 'identity.seal', section: 'identity', figure: 'sealKey alone (attestation + GenerateDataKey + CMS + GCM)', value: ms(sealOnly), raw: sealOnly, unit: 'ms' }),
      row({ id: 'identity.second_attestation', section: 'identity', figure: 'second attestation: RSA-2048 key + NSM document with it', value: ms(second.total), raw: second.total, unit: 'ms', comparison: `RSA keygen ${ms(second.rsa)}, document ${ms(second.attest)}` }),
    ]
    return { rows, details: { rounds, ephemeral, unsealing, first, unsealOnly, sealOnly, second } }
  } finally {
    kms.destroy()
    await relay.close()
    await standin.close()
    await probe.close()
    rmSync(stateDir, { recursive: true, force: true })
  }
}

async function timedBoots(rounds: number, stateDir: string, relayUrl: string, sealing: () => SealingConfig | undefined): Promise<number> {
  const samples: number[] = []
  for (let i = 0; i < rounds; i++) samples.push(await boot(stateDir, relayUrl, sealing))
  return median(samples)
}

/** The second document's cost, whole and in its parts (RSA key generation, the NSM call). */
async function secondAttestation(rounds: number, nsm: NsmSimulator): Promise<{ total: number; rsa: number; attest: number }> {
  const total = await timed(rounds, async () => void (await attestedRecipient(nsm)))
  const params = { name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
  const rsa = await timed(rounds, async () => void (await webcrypto.subtle.generateKey(params, false, ['encrypt', 'decrypt'])))
  const pair = await webcrypto.subtle.generateKey(params, false, ['encrypt', 'decrypt'])
  const publicKey = new Uint8Array(await webcrypto.subtle.exportKey('spki', pair.publicKey))
  const attest = await timed(rounds, async () => void (await nsm.attest({ publicKey })))
  return { total, rsa, attest }
}

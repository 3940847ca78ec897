// Development only: the KMS stand-in embedded in `serve --dev --embedded-kms` (npm start), as
// the relay is, so `npm start`, Ctrl-C, `npm start` gives the same npub. Its key is created on
// the first run and remembered in <stateDir>/kms-dev.json; its keys live in the state directory.
//
// The simulated PCR0 is measured from the compiled code, so every code change moves it, and a
// key policy pinned to the old value would refuse the new build. In development this module
// re-points the dev key's policy at the current PCR0 and says so (the banner's "dev:" line).
// Production never does this: a moved PCR0 is refused and the identity moves to a new build
// only through the upgrade hand-over (docs/identity.md).
import { mkdirSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { writeTempFile } from '../files.js'
import { enclaveKeyPolicy } from '../kms/policy.js'
import { startKmsStandin, STANDIN_CALLER_ARN } from '../kms/standin.js'
import type { NsmSimulator } from '../nsm/simulator.js'

const DEV_KEY_FILE = 'kms-dev.json'
const DEV_KEY_FORMAT = 'nec01/kms-dev/v1'
/** Not secret: the stand-in accepts any signed caller as STANDIN_CALLER_ARN. */
export const DEV_CREDENTIALS = { accessKeyId: 'AKIANEC01DEVSTANDIN0', secretAccessKey: 'nec01-dev-stand-in-not-a-secret' } as const

interface DevKeyRecord {
  format: typeof DEV_KEY_FORMAT
  keyId: string
  keyArn: string
  /** the PCR0 the key's policy names */
  pcr0: string
}

export interface EmbeddedKms {
  endpoint: string
  region: string
  keyArn: string
  /** true when this run created the dev key */
  created: boolean
  /** set when the simulated PCR0 moved and the dev key's policy was re-pointed at the new one */
  repointed: { from: string; to: string } | null
  close(): Promise<void>
}

function readRecord(path: string): DevKeyRecord | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new Error(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const r = JSON.parse(text) as Partial<DevKeyRecord>
  if (r.format !== DEV_KEY_FORMAT || typeof r.keyId !== 'string' || typeof r.keyArn !== 'string' || typeof r.pcr0 !== 'string') {
    throw new Error(`${path}: not a ${DEV_KEY_FORMAT} file (remove it to create a new dev key; the old sealed key is then lost)`)
  }
  return r as DevKeyRecord
}

function writeRecord(path: string, record: DevKeyRecord): void {
  renameSync(writeTempFile(path, `${JSON.stringify(record, null, 2)}\n`, 0o600), path)
}

/** Starts the stand-in on loopback, trusting the simulator's root, with the dev key ready for this build. */
export async function startEmbeddedKms(options: { stateDir: string; simulator: NsmSimulator }): Promise<EmbeddedKms> {
  const { stateDir, simulator } = options
  const pcr0 = Buffer.from((await simulator.describePcr(0)).value).toString('hex')
  const policy = enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: pcr0 } })
  const path = join(stateDir, DEV_KEY_FILE)
  const record = readRecord(path)
  const standin = await startKmsStandin({ stateDir, root: simulator.rootPem() })
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    if (record === null) {
      const key = standin.createKey(policy, 'nec01 dev identity key (stand-in, not AWS)')
      writeRecord(path, { format: DEV_KEY_FORMAT, keyId: key.keyId, keyArn: key.arn, pcr0 })
      return { endpoint: standin.endpoint, region: standin.region, keyArn: key.arn, created: true, repointed: null, close: () => standin.close() }
    }
    let repointed: EmbeddedKms['repointed'] = null
    if (record.pcr0 !== pcr0) {
      standin.putKeyPolicy(record.keyId, policy)
      writeRecord(path, { ...record, pcr0 })
      repointed = { from: record.pcr0, to: pcr0 }
    }
    return { endpoint: standin.endpoint, region: standin.region, keyArn: record.keyArn, created: false, repointed, close: () => standin.close() }
  } catch (error) {
    await standin.close()
    throw error
  }
}

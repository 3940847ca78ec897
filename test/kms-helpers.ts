// Shared by the KMS tests: a state directory with the NSM simulator's CA, the KMS stand-in
// trusting that root on loopback, every exchange captured, and the real SDK client pointed at it.
import { KMSClient } from '@aws-sdk/client-kms'
import { randomBytes } from 'node:crypto'
import { openSimulator, type NsmSimulator } from '../src/nsm/simulator.js'
import { enclaveKeyPolicy } from '../src/kms/policy.js'
import { startKmsStandin, STANDIN_CALLER_ARN, type KmsExchange, type KmsStandin, type KmsStandinOptions } from '../src/kms/standin.js'
import { tempStateDir } from './nsm-helpers.js'

export const TEST_ACCESS_KEY = 'AKIANEC01TESTEXAMPLE'

export interface KmsWorld {
  stateDir: string
  simulator: NsmSimulator
  standin: KmsStandin
  exchanges: KmsExchange[]
  /** the simulator's PCR0, hex */
  pcr0: string
  client(accessKeyId?: string): KMSClient
  /** a key whose policy lets an enclave with this simulator's PCR0 seal and unseal */
  enclaveKey(extraPcrs?: Record<number, string>): string
  /** another simulated enclave on the same CA (same trusted root) */
  otherEnclave(options: { bootPcrs?: Record<number, Uint8Array>; debug?: boolean }): Promise<NsmSimulator>
  restart(overrides?: Partial<KmsStandinOptions>): Promise<void>
  close(): Promise<void>
}

export function kmsClient(standin: KmsStandin, accessKeyId = TEST_ACCESS_KEY): KMSClient {
  return new KMSClient({
    region: standin.region,
    endpoint: standin.endpoint,
    credentials: { accessKeyId, secretAccessKey: 'nec01-test-secret-not-a-real-one' },
    maxAttempts: 1,
  })
}

export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

export function randomPcr(): Uint8Array {
  return new Uint8Array(randomBytes(48))
}

export async function kmsWorld(label: string, options: Partial<KmsStandinOptions> = {}): Promise<KmsWorld> {
  const { dir, cleanup } = tempStateDir(`kms-${label}`)
  const simulator = await openSimulator({ stateDir: dir })
  const pcr0 = hexOf((await simulator.describePcr(0)).value)
  const exchanges: KmsExchange[] = []
  const base: KmsStandinOptions = { stateDir: dir, root: simulator.rootPem(), onExchange: (e) => exchanges.push(e), ...options }
  let standin = await startKmsStandin(base)
  const clients: KMSClient[] = []
  const others: NsmSimulator[] = []
  const world: KmsWorld = {
    stateDir: dir,
    simulator,
    get standin() {
      return standin
    },
    exchanges,
    pcr0,
    client(accessKeyId) {
      const c = kmsClient(standin, accessKeyId)
      clients.push(c)
      return c
    },
    enclaveKey(extraPcrs = {}) {
      return standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: pcr0, ...extraPcrs } })).arn
    },
    async otherEnclave(opts) {
      const other = await openSimulator({ stateDir: dir, ...opts })
      others.push(other)
      return other
    },
    async restart(overrides = {}) {
      await standin.close()
      standin = await startKmsStandin({ ...base, ...overrides })
    },
    async close() {
      for (const c of clients) c.destroy()
      await standin.close()
      for (const o of others) await o.close()
      await simulator.close()
      cleanup()
    },
  }
  return world
}

// A Nitro Secure Module simulator for development and tests (`--dev`). It follows the real
// module's PCR rules and limits and emits documents byte-compatible with real ones, signed by
// a local PKI (pki.ts) that nothing trusts unless its root is given to the verifier.
// It proves the code path and the byte format; it proves nothing about isolation.
import { randomBytes } from 'node:crypto'
import { derToPem } from '../../nec01/cert.js'
import { DEFAULT_PAYLOAD_MAP_FORM, encodeAttestationDocument, PAYLOAD_MAP_FORMS, type PayloadMapForm } from './document.js'
import {
  checkAttestRequest,
  checkExtendData,
  checkPcrIndex,
  checkRandomLength,
  NSM_BOOT_PCRS,
  NSM_MAX_PCRS,
} from './limits.js'
import { bootPcrs, extendPcrValue, zeroPcr, type MeasureOptions } from './pcrs.js'
import {
  DEFAULT_LEAF_LIFETIME_SEC,
  DEFAULT_LEAF_RENEW_MARGIN_SEC,
  INSTANCE_LIFETIME_SEC,
  issueLeaf,
  loadOrRenewChain,
  rootPemPath,
  SIM_INSTANCE_ID,
  type CaChain,
  type Leaf,
} from './pki.js'
import { NsmError, type AttestRequest, type Nsm, type NsmDescription, type PcrDescription } from './types.js'

/** The simulator reports itself as this NSM API version. */
export const SIMULATOR_VERSION = { major: 1, minor: 0, patch: 0 } as const

export interface SimulatorOptions {
  /** where the simulated CA lives (tests: always a temp dir) */
  stateDir: string
  /** clock in ms since the epoch; injectable so tests can move time */
  now?: () => number
  /** leaf lifetime, default 3 h */
  leafLifetimeSec?: number
  /** renew the leaf when less than this is left, default 15 min */
  leafRenewMarginSec?: number
  /** debug-mode enclave: PCR0..2 read as zeros */
  debug?: boolean
  /** explicit boot values for any of PCR0..15 */
  bootPcrs?: Record<number, Uint8Array>
  /** where the measured code lives (see pcrs.ts) */
  measure?: MeasureOptions
  /** payload map framing: 'indefinite' (default, the NSM since 2025-09) or 'definite' (before) */
  payloadMapForm?: PayloadMapForm
  /** the EC2 instance id the enclave runs on: PCR4 and the module id (default SIM_INSTANCE_ID) */
  instanceId?: string
  /** DER of the builder's certificate the image is taken as signed with: PCR8 (default: unsigned, zero) */
  signingCertificate?: Uint8Array
}

/** An EC2 instance id as AWS writes them (NEC-04 hashes exactly this text). */
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/

function instanceIdOption(value: string | undefined): string {
  if (value === undefined) return SIM_INSTANCE_ID
  if (!INSTANCE_ID.test(value)) throw new NsmError('InvalidArgument', `instanceId must look like i-0123456789abcdef0, got '${value.slice(0, 40)}'`)
  return value
}

interface PcrSlot {
  value: Uint8Array
  locked: boolean
}

function positiveInteger(value: number | undefined, fallback: number, what: string): number {
  const n = value ?? fallback
  if (!Number.isInteger(n) || n <= 0) throw new NsmError('InvalidArgument', `${what} must be a positive integer, got ${n}`)
  return n
}

/** Enclave id as the real ones are made: 6 bytes of boot time in ms, 2 random bytes. */
function enclaveIdAt(nowMs: number): Uint8Array {
  const id = new Uint8Array(8)
  const view = new DataView(id.buffer)
  view.setUint16(0, Math.floor(nowMs / 2 ** 32) & 0xffff)
  view.setUint32(2, nowMs >>> 0)
  id.set(randomBytes(2), 6)
  return id
}

export class NsmSimulator implements Nsm {
  readonly moduleId: string
  readonly stateDir: string
  private readonly enclaveId: Uint8Array
  private readonly now: () => number
  private readonly leafLifetimeSec: number
  private readonly leafRenewMarginSec: number
  private readonly pcrs: PcrSlot[]
  private readonly payloadMapForm: PayloadMapForm
  private chain: CaChain
  private leaf: Leaf | null = null
  private pendingLeaf: Promise<Leaf> | null = null
  private closed = false

  private constructor(options: SimulatorOptions, chain: CaChain, pcrs: PcrSlot[], enclaveId: Uint8Array, now: () => number) {
    this.stateDir = options.stateDir
    this.now = now
    this.leafLifetimeSec = positiveInteger(options.leafLifetimeSec, DEFAULT_LEAF_LIFETIME_SEC, 'leafLifetimeSec')
    this.leafRenewMarginSec = positiveInteger(options.leafRenewMarginSec, DEFAULT_LEAF_RENEW_MARGIN_SEC, 'leafRenewMarginSec')
    this.chain = chain
    this.pcrs = pcrs
    this.enclaveId = enclaveId
    this.payloadMapForm = options.payloadMapForm ?? DEFAULT_PAYLOAD_MAP_FORM
    this.moduleId = `${instanceIdOption(options.instanceId)}-enc${Buffer.from(enclaveId).toString('hex')}`
  }

  /** Boot a simulated enclave: load or create the CA, measure the boot PCRs. */
  static async open(options: SimulatorOptions): Promise<NsmSimulator> {
    const now = options.now ?? Date.now
    const leafLifetimeSec = positiveInteger(options.leafLifetimeSec, DEFAULT_LEAF_LIFETIME_SEC, 'leafLifetimeSec')
    const margin = positiveInteger(options.leafRenewMarginSec, DEFAULT_LEAF_RENEW_MARGIN_SEC, 'leafRenewMarginSec')
    if (leafLifetimeSec > INSTANCE_LIFETIME_SEC) {
      throw new NsmError('InvalidArgument', `leafLifetimeSec ${leafLifetimeSec} exceeds the instance certificate's ${INSTANCE_LIFETIME_SEC}`)
    }
    if (margin >= leafLifetimeSec) {
      throw new NsmError('InvalidArgument', `leafRenewMarginSec ${margin} must be shorter than leafLifetimeSec ${leafLifetimeSec}`)
    }
    if (options.payloadMapForm !== undefined && !PAYLOAD_MAP_FORMS.includes(options.payloadMapForm)) {
      throw new NsmError('InvalidArgument', `payloadMapForm must be ${PAYLOAD_MAP_FORMS.join(' or ')}`)
    }
    const boot = bootPcrs({
      ...options.measure,
      instanceId: instanceIdOption(options.instanceId),
      ...(options.signingCertificate === undefined ? {} : { signingCertificate: options.signingCertificate }),
      debug: options.debug ?? false,
      overrides: options.bootPcrs ?? {},
    })
    const pcrs: PcrSlot[] = []
    for (let index = 0; index < NSM_MAX_PCRS; index++) {
      pcrs.push(index < NSM_BOOT_PCRS ? { value: boot[index] ?? zeroPcr(), locked: true } : { value: zeroPcr(), locked: false })
    }
    const t = now()
    const chain = await loadOrRenewChain({ stateDir: options.stateDir, now: t, leafLifetimeSec })
    return new NsmSimulator(options, chain, pcrs, enclaveIdAt(t), now)
  }

  private ensureOpen(): void {
    if (this.closed) throw new NsmError('Closed', 'the simulated NSM was closed')
  }

  private slot(index: number): PcrSlot {
    const slot = this.pcrs[index]
    if (slot === undefined) throw new NsmError('InvalidIndex', `PCR index ${index} is out of range`)
    return slot
  }

  async describe(): Promise<NsmDescription> {
    this.ensureOpen()
    const zero = zeroPcr()
    const debug = [0, 1, 2].every((i) => Buffer.from(this.slot(i).value).equals(zero))
    return {
      moduleId: this.moduleId,
      maxPcrs: NSM_MAX_PCRS,
      lockedPcrs: this.pcrs.flatMap((slot, index) => (slot.locked ? [index] : [])),
      digest: 'SHA384',
      version: { ...SIMULATOR_VERSION },
      tee: 'simulated',
      debug,
    }
  }

  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    this.ensureOpen()
    const i = checkPcrIndex(index)
    const bytes = checkExtendData(i, data)
    const slot = this.slot(i)
    if (slot.locked) throw new NsmError('ReadOnlyIndex', `PCR${i} is locked`)
    slot.value = extendPcrValue(slot.value, bytes)
    return new Uint8Array(slot.value)
  }

  /** Locking a PCR that is already locked (0..15 always are) fails, as on the real module. */
  async lockPcr(index: number): Promise<void> {
    this.ensureOpen()
    const i = checkPcrIndex(index)
    const slot = this.slot(i)
    if (slot.locked) throw new NsmError('ReadOnlyIndex', `PCR${i} is already locked`)
    slot.locked = true
  }

  async describePcr(index: number): Promise<PcrDescription> {
    this.ensureOpen()
    const slot = this.slot(checkPcrIndex(index))
    return { locked: slot.locked, value: new Uint8Array(slot.value) }
  }

  async attest(request?: AttestRequest): Promise<Uint8Array> {
    this.ensureOpen()
    const fields = checkAttestRequest(request)
    const timestamp = this.now()
    const leaf = await this.currentLeaf(timestamp)
    this.ensureOpen()
    // the document carries the boot PCRs and every PCR locked since, like the real module
    const pcrs = new Map<number, Uint8Array>()
    this.pcrs.forEach((slot, index) => {
      if (index < NSM_BOOT_PCRS || slot.locked) pcrs.set(index, new Uint8Array(slot.value))
    })
    return encodeAttestationDocument(
      {
        moduleId: this.moduleId,
        timestamp,
        pcrs,
        certificate: leaf.der,
        cabundle: [this.chain.root.der, this.chain.regional.der, this.chain.zonal.der, this.chain.instance.der],
        publicKey: fields.publicKey ?? null,
        userData: fields.userData ?? null,
        nonce: fields.nonce ?? null,
      },
      leaf.signingKey,
      this.payloadMapForm,
    )
  }

  async random(n: number): Promise<Uint8Array> {
    this.ensureOpen()
    return new Uint8Array(randomBytes(checkRandomLength(n)))
  }

  async close(): Promise<void> {
    this.closed = true
    this.leaf = null
  }

  /** DER of the simulated root that signs this simulator's documents. */
  rootDer(): Uint8Array {
    return new Uint8Array(this.chain.root.der)
  }

  /** The simulated root as PEM, for a verifier's --root. */
  rootPem(): string {
    return derToPem(this.chain.root.der)
  }

  /** The file in the state directory holding rootPem(). */
  rootPemPath(): string {
    return rootPemPath(this.stateDir)
  }

  /** The leaf stays in use until less than the renew margin is left, as real leaves are reused. */
  private async currentLeaf(t: number): Promise<Leaf> {
    const leaf = this.leaf
    if (leaf !== null && leaf.notBefore <= t && leaf.notAfter - t >= this.leafRenewMarginSec * 1000) return leaf
    // concurrent attest() calls share one renewal
    if (this.pendingLeaf === null) {
      this.pendingLeaf = this.renewLeaf(t).finally(() => {
        this.pendingLeaf = null
      })
    }
    return this.pendingLeaf
  }

  private async renewLeaf(t: number): Promise<Leaf> {
    this.chain = await loadOrRenewChain({ stateDir: this.stateDir, now: t, leafLifetimeSec: this.leafLifetimeSec })
    const leaf = await issueLeaf(this.chain, {
      moduleId: this.moduleId,
      enclaveId: this.enclaveId,
      now: t,
      lifetimeSec: this.leafLifetimeSec,
    })
    this.leaf = leaf
    return leaf
  }
}

export function openSimulator(options: SimulatorOptions): Promise<NsmSimulator> {
  return NsmSimulator.open(options)
}

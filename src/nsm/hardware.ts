// The real Nitro Secure Module through the aws-nitro-enclaves-nsm-node addon (napi-rs, all
// calls synchronous). The addon has sharp edges that this adapter keeps away from callers:
// open() returns -1 instead of throwing when /dev/nsm is missing (every later call then fails
// with a bare "InternalError"), and a non-Buffer argument to getAttestationDoc panics inside
// Rust and aborts the whole Node process. So every argument is checked and converted to a
// Buffer here, before the addon sees it, and the addon is loaded only when this adapter is
// chosen, so the project installs and runs where the addon cannot load.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import {
  checkAttestRequest,
  checkExtendData,
  checkPcrIndex,
  checkRandomLength,
  NSM_MAX_PCRS,
  PCR_BYTES,
} from './limits.js'
import {
  NSM_API_ERROR_CODES,
  NsmError,
  type AttestRequest,
  type Nsm,
  type NsmApiErrorCode,
  type NsmDescription,
  type PcrDescription,
} from './types.js'
import { errorText } from '../../nec01/errors.js'

export const NSM_DEVICE_PATH = '/dev/nsm'
export const NSM_ADDON_PACKAGE = 'aws-nitro-enclaves-nsm-node'
export const NO_DEVICE_MESSAGE = 'not inside a Nitro Enclave: /dev/nsm is missing; run with --dev to use the simulator'
/** GetRandom returns a bounded chunk (256 bytes on the real module); give up after this many empty ones. */
const MAX_EMPTY_RANDOM_CHUNKS = 8

/** The part of the addon's API this adapter uses (its index.d.ts). */
export interface NsmAddon {
  open(): number
  close(fd: number): void
  extendPcr(fd: number, index: number, data: Buffer): Buffer
  getPcrDescription(fd: number, index: number): { lock: boolean; data: Buffer }
  lockPcr(fd: number, index: number): void
  getDescription(fd: number): {
    versionMajor: number
    versionMinor: number
    versionPatch: number
    moduleId: string
    maxPcrs: number
    lockedPcrs: number[]
    digest: string
  }
  getAttestationDoc(fd: number, userData?: Buffer | null, nonce?: Buffer | null, publicKey?: Buffer | null): Buffer
  getRandom(fd: number): Buffer
}

const ADDON_FUNCTIONS = [
  'open',
  'close',
  'extendPcr',
  'getPcrDescription',
  'lockPcr',
  'getDescription',
  'getAttestationDoc',
  'getRandom',
] as const

export interface HardwareOptions {
  /** checked for existence before anything else (the addon itself always opens /dev/nsm) */
  devicePath?: string
  /** a stand-in for the addon (tests); default: the real addon, loaded on first use */
  addon?: NsmAddon
}

function loadAddon(): NsmAddon {
  let loaded: unknown
  try {
    loaded = createRequire(import.meta.url)(NSM_ADDON_PACKAGE)
  } catch (error) {
    const detail = errorText(error)
    throw new NsmError('AddonUnavailable', `cannot load ${NSM_ADDON_PACKAGE} on ${process.platform}/${process.arch}: ${detail}`, {
      cause: error,
    })
  }
  return checkAddon(loaded)
}

function checkAddon(candidate: unknown): NsmAddon {
  if (typeof candidate !== 'object' || candidate === null) {
    throw new NsmError('AddonUnavailable', `${NSM_ADDON_PACKAGE} did not load as a module`)
  }
  const record = candidate as Record<string, unknown>
  const missing = ADDON_FUNCTIONS.filter((name) => typeof record[name] !== 'function')
  if (missing.length > 0) {
    throw new NsmError('AddonUnavailable', `${NSM_ADDON_PACKAGE} lacks ${missing.join(', ')}`)
  }
  return candidate as NsmAddon
}

function isApiErrorCode(value: string): value is NsmApiErrorCode {
  return (NSM_API_ERROR_CODES as readonly string[]).includes(value)
}

/**
 * The addon reports NSM errors as Error(message = the ErrorCode name) and argument
 * conversion failures as napi errors ("Failed to convert …").
 */
function mapAddonError(operation: string, error: unknown): NsmError {
  if (error instanceof NsmError) return error
  const message = errorText(error)
  if (isApiErrorCode(message)) return new NsmError(message, `NSM ${operation} failed: ${message}`, { cause: error })
  if (/failed to convert/i.test(message)) {
    return new NsmError('InvalidArgument', `NSM ${operation} rejected an argument: ${message}`, { cause: error })
  }
  return new NsmError('InternalError', `NSM ${operation} failed: ${message}`, { cause: error })
}

function toBuffer(bytes: Uint8Array): Buffer {
  // a copy: the addon must never see a caller's buffer change underneath it
  return Buffer.from(bytes)
}

function responseBytes(operation: string, value: unknown, expectedLength?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new NsmError('InvalidResponse', `NSM ${operation} returned no bytes`)
  }
  if (expectedLength !== undefined && value.length !== expectedLength) {
    throw new NsmError('InvalidResponse', `NSM ${operation} returned ${value.length} bytes, expected ${expectedLength}`)
  }
  return new Uint8Array(value)
}

function describeResponse(raw: unknown): NsmDescription {
  if (typeof raw !== 'object' || raw === null) throw new NsmError('InvalidResponse', 'NSM Describe returned nothing')
  const d = raw as Record<string, unknown>
  const ints = ['versionMajor', 'versionMinor', 'versionPatch', 'maxPcrs'] as const
  for (const key of ints) {
    if (typeof d[key] !== 'number' || !Number.isInteger(d[key])) throw new NsmError('InvalidResponse', `NSM Describe: bad ${key}`)
  }
  const maxPcrs = d.maxPcrs as number
  if (maxPcrs < 1 || maxPcrs > NSM_MAX_PCRS) throw new NsmError('InvalidResponse', `NSM Describe: maxPcrs ${maxPcrs}`)
  if (typeof d.moduleId !== 'string' || d.moduleId.length === 0) throw new NsmError('InvalidResponse', 'NSM Describe: no module id')
  if (!Array.isArray(d.lockedPcrs) || !d.lockedPcrs.every((i) => Number.isInteger(i))) {
    throw new NsmError('InvalidResponse', 'NSM Describe: bad lockedPcrs')
  }
  // the addon spells the digest "sha384"; this project only handles the SHA-384 bank
  if (typeof d.digest !== 'string' || d.digest.toUpperCase() !== 'SHA384') {
    throw new NsmError('InvalidResponse', `NSM Describe: unsupported digest ${String(d.digest)}`)
  }
  return {
    moduleId: d.moduleId,
    maxPcrs,
    lockedPcrs: [...(d.lockedPcrs as number[])].sort((a, b) => a - b),
    digest: 'SHA384',
    version: { major: d.versionMajor as number, minor: d.versionMinor as number, patch: d.versionPatch as number },
    tee: 'nsm',
    debug: false,
  }
}

export class HardwareNsm implements Nsm {
  private readonly addon: NsmAddon
  private readonly fd: number
  private readonly maxPcrs: number
  private closed = false

  private constructor(addon: NsmAddon, fd: number, maxPcrs: number) {
    this.addon = addon
    this.fd = fd
    this.maxPcrs = maxPcrs
  }

  /** Fails with NoDevice outside an enclave, before the addon is even loaded. */
  static async open(options: HardwareOptions = {}): Promise<HardwareNsm> {
    const devicePath = options.devicePath ?? NSM_DEVICE_PATH
    if (!existsSync(devicePath)) throw new NsmError('NoDevice', NO_DEVICE_MESSAGE)
    const addon = options.addon !== undefined ? checkAddon(options.addon) : loadAddon()
    let fd: unknown
    try {
      fd = addon.open()
    } catch (error) {
      throw mapAddonError('open', error)
    }
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
      throw new NsmError('OpenFailed', `${devicePath} exists but the NSM library could not open ${NSM_DEVICE_PATH} (it returned ${String(fd)}): no access to the device?`)
    }
    let description: NsmDescription
    try {
      description = describeResponse(addon.getDescription(fd))
    } catch (error) {
      try {
        addon.close(fd)
      } catch {
        // already failing: report the first error
      }
      throw mapAddonError('Describe', error)
    }
    return new HardwareNsm(addon, fd, description.maxPcrs)
  }

  private call<T>(operation: string, run: () => T): T {
    if (this.closed) throw new NsmError('Closed', 'the NSM handle was closed')
    try {
      return run()
    } catch (error) {
      throw mapAddonError(operation, error)
    }
  }

  async describe(): Promise<NsmDescription> {
    const description = describeResponse(this.call('Describe', () => this.addon.getDescription(this.fd)))
    // debug mode shows as all-zero PCR0..2, the same test a verifier applies
    const zero = Buffer.alloc(PCR_BYTES)
    let debug = true
    for (const index of [0, 1, 2]) {
      const pcr = await this.describePcr(index)
      if (!Buffer.from(pcr.value).equals(zero)) debug = false
    }
    return { ...description, debug }
  }

  async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
    const i = checkPcrIndex(index, this.maxPcrs)
    const buffer = toBuffer(checkExtendData(i, data))
    const value = this.call('ExtendPCR', () => this.addon.extendPcr(this.fd, i, buffer))
    return responseBytes('ExtendPCR', value, PCR_BYTES)
  }

  async lockPcr(index: number): Promise<void> {
    const i = checkPcrIndex(index, this.maxPcrs)
    this.call('LockPCR', () => this.addon.lockPcr(this.fd, i))
  }

  async describePcr(index: number): Promise<PcrDescription> {
    const i = checkPcrIndex(index, this.maxPcrs)
    const raw: unknown = this.call('DescribePCR', () => this.addon.getPcrDescription(this.fd, i))
    if (typeof raw !== 'object' || raw === null || typeof (raw as { lock?: unknown }).lock !== 'boolean') {
      throw new NsmError('InvalidResponse', 'NSM DescribePCR returned no lock state')
    }
    const { lock, data } = raw as { lock: boolean; data: unknown }
    return { locked: lock, value: responseBytes('DescribePCR', data, PCR_BYTES) }
  }

  async attest(request?: AttestRequest): Promise<Uint8Array> {
    const fields = checkAttestRequest(request)
    // only Buffers or null ever reach the addon: anything else aborts the process
    const userData = fields.userData === undefined ? null : toBuffer(fields.userData)
    const nonce = fields.nonce === undefined ? null : toBuffer(fields.nonce)
    const publicKey = fields.publicKey === undefined ? null : toBuffer(fields.publicKey)
    const document = this.call('Attestation', () => this.addon.getAttestationDoc(this.fd, userData, nonce, publicKey))
    const bytes = responseBytes('Attestation', document)
    if (bytes.length === 0) throw new NsmError('InvalidResponse', 'NSM Attestation returned an empty document')
    return bytes
  }

  async random(n: number): Promise<Uint8Array> {
    const length = checkRandomLength(n)
    const out = new Uint8Array(length)
    let filled = 0
    let empty = 0
    while (filled < length) {
      const chunk = responseBytes('GetRandom', this.call('GetRandom', () => this.addon.getRandom(this.fd)))
      if (chunk.length === 0) {
        if (++empty >= MAX_EMPTY_RANDOM_CHUNKS) throw new NsmError('InternalError', 'NSM GetRandom keeps returning no bytes')
        continue
      }
      const take = Math.min(chunk.length, length - filled)
      out.set(chunk.subarray(0, take), filled)
      filled += take
    }
    return out
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      this.addon.close(this.fd)
    } catch (error) {
      throw mapAddonError('close', error)
    }
  }
}

export function openHardwareNsm(options: HardwareOptions = {}): Promise<HardwareNsm> {
  return HardwareNsm.open(options)
}

// Boot PCRs for the simulator, measured from the project's own code so that a code change
// shows up as a PCR change, as it does when a real enclave image is rebuilt. The exact
// recipe is in docs/nsm.md; change it only together with that page.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NSM_BOOT_PCRS, PCR_BYTES } from './limits.js'
import { NsmError } from './types.js'

/** Domain labels, so a simulated measurement can never equal another hash of the same bytes. */
export const PCR0_LABEL = 'nec01/simulated-nsm/pcr0/v1'
export const PCR1_LABEL = 'nec01/simulated-nsm/pcr1/v1'
export const PCR2_LABEL = 'nec01/simulated-nsm/pcr2/v1'

/** Compiled folders that make up the application (PCR2) and the image's file list (PCR0). */
export const APPLICATION_DIRS = ['src', 'nec01'] as const
const APPLICATION_EXTENSION = '.js'
const LOCKFILE = 'package-lock.json'

export function sha384(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha384')
  for (const part of parts) hash.update(part)
  return new Uint8Array(hash.digest())
}

/** The NSM extend operation: new = SHA384(old ‖ data). */
export function extendPcrValue(old: Uint8Array, data: Uint8Array): Uint8Array {
  return sha384(old, data)
}

export function zeroPcr(): Uint8Array {
  return new Uint8Array(PCR_BYTES)
}

/** A PCR as the NSM leaves it after one extend from zero, the way the boot measurements land. */
export function measuredPcr(measurement: Uint8Array): Uint8Array {
  return extendPcrValue(zeroPcr(), measurement)
}

const utf8 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'))

function u32be(n: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

function u64be(n: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt(n))
  return out
}

/** Length-prefixed, so that concatenations of different parts can never collide. */
function framed(bytes: Uint8Array): Uint8Array[] {
  return [u64be(bytes.length), bytes]
}

export interface ApplicationFile {
  /** path relative to the dist directory, '/'-separated, e.g. "src/nsm/simulator.js" */
  path: string
  content: Uint8Array
}

function walk(root: string, relative: string, out: ApplicationFile[]): void {
  let entries
  try {
    entries = readdirSync(join(root, relative), { withFileTypes: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  for (const entry of entries) {
    const path = relative === '' ? entry.name : `${relative}/${entry.name}`
    if (entry.isDirectory()) walk(root, path, out)
    else if (entry.isFile() && entry.name.endsWith(APPLICATION_EXTENSION)) {
      out.push({ path, content: new Uint8Array(readFileSync(join(root, path))) })
    }
  }
}

/**
 * Files at the image's top level that decide what the code lets others do (operator.json:
 * who may configure the enclave). The image measures them with the code, so must this.
 */
export const MEASURED_CONFIG_FILES = ['operator.json'] as const

/**
 * The compiled application: every .js file under dist/src and dist/nec01, and with a
 * projectRoot each MEASURED_CONFIG_FILES file found there (named by its file name), sorted
 * by path bytes.
 */
export function applicationFiles(distDir: string, projectRoot?: string): ApplicationFile[] {
  const files: ApplicationFile[] = []
  for (const dir of APPLICATION_DIRS) walk(distDir, dir, files)
  if (projectRoot !== undefined) {
    for (const name of MEASURED_CONFIG_FILES) {
      const content = readOptional(join(projectRoot, name))
      if (content.length > 0) files.push({ path: name, content })
    }
  }
  return files.sort((a, b) => Buffer.compare(Buffer.from(a.path, 'utf8'), Buffer.from(b.path, 'utf8')))
}

export interface MeasureOptions {
  /** the compiled output holding src/ and nec01/; default: the one this file was loaded from */
  distDir?: string
  /** the project root holding package-lock.json; default: the parent of distDir */
  projectRoot?: string
  /** the runtime identity measured into PCR1; default: this process */
  runtime?: { node: string; platform: string; arch: string }
}

/** dist/src/nsm/pcrs.js → dist */
export function defaultDistDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
}

function readOptional(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Uint8Array(0)
    throw error
  }
}

/**
 * PCR0 ("enclave image"): the dependency lock file and the list of files the image holds.
 * measurement = SHA384(label ‖ framed(package-lock.json) ‖ framed(paths joined by "\n"))
 */
export function measurePcr0(files: ApplicationFile[], lockfile: Uint8Array): Uint8Array {
  const list = utf8(files.map((f) => f.path).join('\n'))
  return measuredPcr(sha384(utf8(PCR0_LABEL), ...framed(lockfile), ...framed(list)))
}

/** PCR1 ("kernel and bootstrap"): the runtime, "node/<version> <platform>/<arch>". */
export function measurePcr1(runtime: { node: string; platform: string; arch: string }): Uint8Array {
  return measuredPcr(sha384(utf8(PCR1_LABEL), ...framed(utf8(`node/${runtime.node} ${runtime.platform}/${runtime.arch}`))))
}

/**
 * PCR2 ("application"): every compiled file, in path order.
 * measurement = SHA384(label ‖ for each file: u32be(path length) ‖ path ‖ SHA384(content))
 */
export function measurePcr2(files: ApplicationFile[]): Uint8Array {
  const parts: Uint8Array[] = [utf8(PCR2_LABEL)]
  for (const file of files) {
    const path = utf8(file.path)
    parts.push(u32be(path.length), path, sha384(file.content))
  }
  return measuredPcr(sha384(...parts))
}

/** PCR4 as the real module sets it: SHA384(0^48 ‖ instance id). */
export function measurePcr4(instanceId: string): Uint8Array {
  return measuredPcr(utf8(instanceId))
}

/** PCR8 of an image nitro-cli signed: SHA384(0^48 ‖ SHA384(signing certificate DER)) (NEC-03). */
export function measurePcr8(certificateDer: Uint8Array): Uint8Array {
  return measuredPcr(sha384(certificateDer))
}

export interface BootPcrOptions extends MeasureOptions {
  instanceId: string
  /** DER of the certificate the image was signed with (nitro-cli --signing-certificate): sets PCR8 */
  signingCertificate?: Uint8Array
  /** like `nitro-cli run-enclave --debug-mode`: PCR0, PCR1 and PCR2 read as zeros */
  debug?: boolean
  /** explicit values for any of PCR0..15 (48 bytes each); they replace the measured ones */
  overrides?: Record<number, Uint8Array>
}

/** The 16 boot PCRs of a simulated enclave, index 0..15. */
export function bootPcrs(options: BootPcrOptions): Uint8Array[] {
  const distDir = resolve(options.distDir ?? defaultDistDir())
  const projectRoot = resolve(options.projectRoot ?? join(distDir, '..'))
  const runtime = options.runtime ?? { node: process.versions.node, platform: process.platform, arch: process.arch }
  const overrides = options.overrides ?? {}
  for (const key of Object.keys(overrides)) {
    const index = Number(key)
    if (!Number.isInteger(index) || index < 0 || index >= NSM_BOOT_PCRS) {
      throw new NsmError('InvalidIndex', `boot PCR override ${key} is outside 0..${NSM_BOOT_PCRS - 1}`)
    }
  }
  const files = applicationFiles(distDir, projectRoot)
  const pcrs: Uint8Array[] = []
  for (let index = 0; index < NSM_BOOT_PCRS; index++) pcrs.push(zeroPcr())
  pcrs[0] = measurePcr0(files, readOptional(join(projectRoot, LOCKFILE)))
  pcrs[1] = measurePcr1(runtime)
  pcrs[2] = measurePcr2(files)
  pcrs[4] = measurePcr4(options.instanceId)
  if (options.signingCertificate !== undefined) pcrs[8] = measurePcr8(options.signingCertificate)
  for (const [key, value] of Object.entries(overrides)) {
    if (!(value instanceof Uint8Array) || value.length !== PCR_BYTES) {
      throw new NsmError('InvalidArgument', `boot PCR override ${key} must be ${PCR_BYTES} bytes`)
    }
    pcrs[Number(key)] = new Uint8Array(value)
  }
  if (options.debug === true) {
    for (const index of [0, 1, 2]) pcrs[index] = zeroPcr()
  }
  return pcrs
}

// The example page: paste an event or an attestation, set the trust options, see every
// check. Everything shown comes from the input, so it is written with textContent only.
import {
  ROOT_KIND,
  TEE_ROOT_TAG,
  verifyAttestation,
  verifyRootEvent,
  verifyTeeRoot,
  type Expect,
  type VerifyOptions,
  type VerifyResult,
} from '../../nec01/index.js'
import { setupHistory } from './history.js'

type Detected =
  | { kind: 'root-event'; event: unknown }
  | { kind: 'carrier'; event: unknown }
  | { kind: 'attestation'; document: Uint8Array }

/** A message for the user: bad input or options, shown instead of a verdict. */
class InputError extends Error {}

const HEX_TEXT = /^(?:[0-9a-fA-F]{2})+$/
const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/
const PCR_HEX = /^[0-9a-fA-F]{96}$/

/** CBOR heads that can open a COSE_Sign1: array(4), or tag 18 then array(4). */
function looksLikeCbor(bytes: Uint8Array): boolean {
  return bytes[0] === 0x84 || (bytes[0] === 0xd2 && bytes[1] === 0x84)
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

function base64ToBytes(text: string): Uint8Array | null {
  try {
    const standard = text.replace(/-/g, '+').replace(/_/g, '/')
    return Uint8Array.from(atob(standard.padEnd(Math.ceil(standard.length / 4) * 4, '=')), (c) => c.charCodeAt(0))
  } catch {
    return null
  }
}

/** The same decision as `nec01 verify`: an event (root or carrier) or a document in base64 or hex. */
function detectInput(raw: string): Detected {
  const text = raw.trim()
  if (text === '') throw new InputError('paste an event or an attestation document first')
  if (text.startsWith('{')) {
    let event: unknown
    try {
      event = JSON.parse(text)
    } catch (err) {
      throw new InputError(`not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
    }
    const e = event as { kind?: unknown; tags?: unknown }
    if (e.kind === ROOT_KIND) return { kind: 'root-event', event }
    if (Array.isArray(e.tags) && e.tags.some((t) => Array.isArray(t) && t[0] === TEE_ROOT_TAG)) return { kind: 'carrier', event }
    throw new InputError(`a JSON object, but neither a kind:${ROOT_KIND} event nor an event with a ${TEE_ROOT_TAG} tag`)
  }
  const compact = text.replace(/\s+/g, '')
  if (HEX_TEXT.test(compact)) return { kind: 'attestation', document: hexToBytes(compact) }
  if (BASE64_TEXT.test(compact)) {
    const bytes = base64ToBytes(compact)
    if (bytes !== null && looksLikeCbor(bytes)) return { kind: 'attestation', document: bytes }
  }
  throw new InputError('neither JSON, base64 nor hex of an attestation document')
}

/** nitro-cli build-enclave output ({"Measurements":{"PCR0":…}}) or a plain {"PCR0":…} / {"0":…} map. */
function parsePcrs(text: string): Record<string, string> | undefined {
  if (text.trim() === '') return undefined
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new InputError('expected PCRs: not JSON')
  }
  const measurements = (json as { Measurements?: unknown } | null)?.Measurements
  const map = typeof measurements === 'object' && measurements !== null ? measurements : json
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new InputError('expected PCRs: expected a JSON object')
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(map)) {
    if (key === 'HashAlgorithm') continue // nitro-cli prints it beside the values
    const m = /^(?:PCR)?([0-9]{1,2})$/i.exec(key)
    if (m?.[1] === undefined || Number(m[1]) > 31) throw new InputError(`expected PCRs: '${key}' is not a PCR index 0..31`)
    if (typeof value !== 'string' || !PCR_HEX.test(value)) throw new InputError(`expected PCRs: ${key} is not 96 hex characters`)
    out[String(Number(m[1]))] = value.toLowerCase()
  }
  if (Object.keys(out).length === 0) throw new InputError('expected PCRs: none given')
  return out
}

/** unix seconds, or undefined for now. A time of day needs a zone: a bare one would be local time. */
function parseTime(text: string): number | undefined {
  const t = text.trim()
  if (t === '') return undefined
  if (/^[0-9]{1,12}$/.test(t)) return Number(t)
  const ms = Date.parse(t)
  const zoned = /^\d{4}-\d{2}-\d{2}$/.test(t) || /^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:\d{2})$/i.test(t)
  if (!zoned || !Number.isFinite(ms)) throw new InputError(`validation time: '${t}' is neither ISO 8601 with a zone (…Z) nor unix seconds`)
  return Math.floor(ms / 1000)
}

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const el = document.getElementById(id)
  if (!(el instanceof type)) throw new Error(`page is missing #${id}`)
  return el
}

const form = {
  input: element('input', HTMLTextAreaElement),
  pcrs: element('pcrs', HTMLTextAreaElement),
  anyPcrs: element('any-pcrs', HTMLInputElement),
  expect: element('expect', HTMLSelectElement),
  at: element('at', HTMLInputElement),
  root: element('root', HTMLTextAreaElement),
  verify: element('verify', HTMLButtonElement),
}
const out = {
  result: element('result', HTMLElement),
  error: element('error', HTMLParagraphElement),
  what: element('what', HTMLParagraphElement),
  verdict: element('verdict', HTMLParagraphElement),
  checks: element('checks', HTMLUListElement),
  pcrs: element('pcrs-out', HTMLTableSectionElement),
  info: element('info', HTMLDListElement),
}

function readOptions(): VerifyOptions {
  const options: VerifyOptions = {}
  const pcrs = parsePcrs(form.pcrs.value)
  if (pcrs !== undefined) options.expectedPcrs = pcrs
  if (form.anyPcrs.checked) options.anyPcrs = true
  options.expect = form.expect.value as Expect
  const now = parseTime(form.at.value)
  if (now !== undefined) options.now = now
  if (form.root.value.trim() !== '') options.root = form.root.value
  return options
}

const DESCRIBE: Record<Detected['kind'], string> = {
  'root-event': `a kind:${ROOT_KIND} root event`,
  carrier: `an event carrying a ${TEE_ROOT_TAG} tag`,
  attestation: 'a bare attestation document',
}

function verify(input: Detected, options: VerifyOptions): Promise<VerifyResult> {
  if (input.kind === 'root-event') return verifyRootEvent(input.event, options)
  if (input.kind === 'carrier') return verifyTeeRoot(input.event, options)
  return verifyAttestation(input.document, options)
}

function append(parent: HTMLElement, tag: string, text: string, className?: string): HTMLElement {
  const el = document.createElement(tag)
  el.textContent = text
  if (className !== undefined) el.className = className
  parent.append(el)
  return el
}

function clear(): void {
  for (const el of [out.error, out.what, out.verdict]) el.textContent = ''
  for (const el of [out.checks, out.pcrs, out.info]) el.replaceChildren()
  out.result.dataset.valid = ''
}

function render(result: VerifyResult): void {
  out.verdict.textContent = result.valid ? '✓ valid' : `✗ invalid: ${result.reason ?? 'unknown'}`
  out.verdict.className = result.valid ? 'ok' : 'bad'
  out.result.dataset.valid = String(result.valid)
  for (const c of result.checks) {
    const li = document.createElement('li')
    li.dataset.id = c.id
    li.dataset.ok = String(c.ok)
    li.className = c.ok ? 'ok' : 'bad'
    append(li, 'span', c.ok ? '✓' : '✗', 'mark')
    append(li, 'span', c.id, 'id')
    append(li, 'span', c.detail, 'detail')
    out.checks.append(li)
  }
  const att = result.attestation
  if (att === null) return
  for (const [index, value] of Object.entries(att.pcrs)) {
    const tr = document.createElement('tr')
    tr.dataset.index = index
    append(tr, 'td', `PCR${index}`)
    append(tr, 'td', value, 'hex')
    out.pcrs.append(tr)
  }
  const info: [string, string][] = [
    ['module_id', att.module_id],
    ['timestamp', new Date(att.timestamp).toISOString()],
    ['public_key', att.public_key ?? 'none'],
    ['leaf certificate', `${new Date(att.certificate.notBefore * 1000).toISOString()} .. ${new Date(att.certificate.notAfter * 1000).toISOString()}`],
  ]
  if (result.event !== undefined) info.push(['root event', `${result.event.id} by ${result.event.pubkey}`])
  for (const [k, v] of info) {
    append(out.info, 'dt', k)
    append(out.info, 'dd', v, 'hex')
  }
}

let runs = 0

async function onVerify(): Promise<void> {
  form.verify.disabled = true
  clear()
  try {
    const input = detectInput(form.input.value)
    const options = readOptions()
    out.what.textContent = `Verifying ${DESCRIBE[input.kind]}${options.now === undefined ? ' now' : ` at ${new Date(Number(options.now) * 1000).toISOString()}`}.`
    render(await verify(input, options))
  } catch (err) {
    // the verifier never throws: anything here is the page's own input handling
    out.error.textContent = err instanceof InputError ? err.message : `unexpected error: ${err instanceof Error ? err.message : String(err)}`
  } finally {
    form.verify.disabled = false
    // tests wait for this counter: one increment per finished run
    out.result.dataset.run = String(++runs)
  }
}

form.verify.addEventListener('click', () => void onVerify())
setupHistory(() => {
  const expect = form.expect.value as Expect
  return { expect, ...(form.root.value.trim() === '' ? {} : { root: form.root.value }) }
})
out.result.dataset.ready = 'true'

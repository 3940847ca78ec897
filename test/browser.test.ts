// The browser bundle (npm run build:web) in a real Chromium: the same inputs verified in the
// page and in Node must give the same result, check by check, and the example page must
// show exactly that result. Inputs: real AWS documents (valid, debug, tampered, expired)
// and a live dev service's root event and a carrier it signed (simulator root).
// Needs Debian's chromium at /usr/bin/chromium, or another build named by NEC01_CHROMIUM.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { build } from 'esbuild'
import { chromium, type Browser, type Page } from 'playwright-core'
import {
  clearTeeRootMemo,
  clearVerifierCaches,
  verifyAttestation,
  verifyRootEvent,
  verifyTeeRoot,
  type CheckId,
  type Expect,
  type NostrEvent,
  type VerifyResult,
} from '../nec01/index.js'
import { MAX_GZIP_RATIO, PROJECT_ROOT, buildWeb, noNodeBuiltins } from '../scripts/build-web.js'
import { nitroFixtures, type NitroFixture } from './fixtures.js'
import { startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'
import { startStaticServer, type StaticServer } from './static-server.js'
import { requireTools, type SystemTool } from './system-tools.js'
import { twoBuilds } from './upgrade-helpers.js'
import { npubEncode } from 'nostr-tools/nip19'

const CHROMIUM: SystemTool = { command: 'chromium', debian: 'chromium', path: process.env.NEC01_CHROMIUM || '/usr/bin/chromium' }
// --user-data-dir is not passed: Playwright refuses it in launch() and gives every launch a
// fresh temporary profile itself. The background-networking flags keep Chromium off the network.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
/** Upper bound for any single browser wait: a verification takes milliseconds. */
const WAIT_MS = 20_000

type Nec01Module = typeof import('../nec01/index.js')

type CaseInput = { type: 'attestation'; base64: string } | { type: 'root-event' | 'carrier'; event: NostrEvent }

/** VerifyOptions as they cross into the page: JSON values only. */
interface WireOptions {
  now: number
  root?: string
  expectedPcrs?: Record<string, string>
  anyPcrs?: boolean
  expect?: Expect
}

/** What the example page's form gets for the same case. */
interface FormValues {
  input: string
  pcrs: string
  anyPcrs: boolean
  expect: Expect
  at: string
  root: string
}

interface Case {
  name: string
  input: CaseInput
  options: WireOptions
  form: FormValues
  valid: boolean
  reason: CheckId | null
}

const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value)) as unknown

async function verifyInNode(c: Case): Promise<VerifyResult> {
  // cold caches on both sides: a cached chain says so in its check detail
  clearVerifierCaches()
  clearTeeRootMemo()
  const { input, options } = c
  if (input.type === 'attestation') return verifyAttestation(new Uint8Array(Buffer.from(input.base64, 'base64')), options)
  if (input.type === 'root-event') return verifyRootEvent(input.event, options)
  return verifyTeeRoot(input.event, options)
}

async function verifyInBrowser(page: Page, bundleUrl: string, c: Case): Promise<unknown> {
  const text = await page.evaluate(
    async ({ url, input, options }) => {
      const m = (await import(url)) as Nec01Module
      m.clearVerifierCaches()
      m.clearTeeRootMemo()
      const result =
        input.type === 'attestation'
          ? await m.verifyAttestation(Uint8Array.from(atob(input.base64), (ch) => ch.charCodeAt(0)), options)
          : input.type === 'root-event'
            ? await m.verifyRootEvent(input.event, options)
            : await m.verifyTeeRoot(input.event, options)
      return JSON.stringify(result)
    },
    { url: bundleUrl, input: c.input, options: c.options },
  )
  return JSON.parse(text) as unknown
}

async function clearBrowserCaches(page: Page, bundleUrl: string): Promise<void> {
  await page.evaluate(async (url) => {
    const m = (await import(url)) as Nec01Module
    m.clearVerifierCaches()
    m.clearTeeRootMemo()
  }, bundleUrl)
}

interface Shown {
  error: string
  verdict: string
  marks: string[]
  ids: string[]
  details: string[]
  pcrIndices: string[]
  pcrValues: string[]
}

let runs = 0

/** Fills the form, clicks Verify, waits for that run to finish and reads the page. */
async function runExample(page: Page, form: FormValues): Promise<Shown> {
  await page.fill('#input', form.input)
  await page.fill('#pcrs', form.pcrs)
  await page.setChecked('#any-pcrs', form.anyPcrs)
  await page.selectOption('#expect', form.expect)
  await page.fill('#at', form.at)
  await page.fill('#root', form.root)
  await page.click('#verify')
  runs++
  await page.locator(`#result[data-run="${runs}"]`).waitFor({ state: 'attached', timeout: WAIT_MS })
  return {
    error: (await page.locator('#error').textContent()) ?? '',
    verdict: (await page.locator('#verdict').textContent()) ?? '',
    marks: await page.locator('#checks li .mark').allTextContents(),
    ids: await page.locator('#checks li .id').allTextContents(),
    details: await page.locator('#checks li .detail').allTextContents(),
    pcrIndices: await page.locator('#pcrs-out tr td:first-child').allTextContents(),
    pcrValues: await page.locator('#pcrs-out td.hex').allTextContents(),
  }
}

function fixture(all: NitroFixture[], name: string): NitroFixture {
  const f = all.find((x) => x.name === name)
  assert.ok(f, `fixture ${name} missing from ../shared/fixtures/nitro`)
  return f
}

const middle = (f: NitroFixture): number => Math.floor((f.validFrom + f.validUntil) / 2)
const isoAt = (unix: number): string => new Date(unix * 1000).toISOString()
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

/** A form that matches WireOptions, with the PCRs given the way nitro-cli prints them. */
function formFor(input: string, o: WireOptions, at: string): FormValues {
  const measurements =
    o.expectedPcrs === undefined
      ? ''
      : JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', ...Object.fromEntries(Object.entries(o.expectedPcrs).map(([k, v]) => [`PCR${k}`, v])) } })
  return { input, pcrs: measurements, anyPcrs: o.anyPcrs === true, expect: o.expect ?? 'prod', at, root: o.root ?? '' }
}

function documentCases(): Case[] {
  const all = nitroFixtures()
  const good = fixture(all, 'marlin-2024-12-13-nondebug')
  const debug = fixture(all, 'eternis-2024-09-09-debug')
  const badsig = fixture(all, 'eternis-2024-07-23-debug-BADSIG')
  const pinned: WireOptions = { now: middle(good), expectedPcrs: { 0: good.pcr0, 1: good.pcr1, 2: good.pcr2 } }
  // the document ends with the 96-byte signature: change its last byte
  const flipped = good.bytes.slice()
  flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01
  const cases: Case[] = [
    { name: 'real non-debug document, expected PCRs, inside its window', input: { type: 'attestation', base64: b64(good.bytes) }, options: pinned, valid: true, reason: null, form: formFor(b64(good.bytes), pinned, isoAt(pinned.now)) },
    {
      name: 'real debug-mode document',
      input: { type: 'attestation', base64: b64(debug.bytes) },
      options: { now: middle(debug), anyPcrs: true },
      valid: false,
      reason: 'debug',
      form: formFor(b64(debug.bytes), { now: middle(debug), anyPcrs: true }, String(middle(debug))),
    },
    {
      name: 'published tampered document (BADSIG)',
      input: { type: 'attestation', base64: b64(badsig.bytes) },
      options: { now: middle(badsig), anyPcrs: true },
      valid: false,
      reason: 'signature',
      form: formFor(b64(badsig.bytes), { now: middle(badsig), anyPcrs: true }, isoAt(middle(badsig))),
    },
    {
      name: 'non-debug document with one signature bit flipped (pasted as hex)',
      input: { type: 'attestation', base64: b64(flipped) },
      options: pinned,
      valid: false,
      reason: 'signature',
      form: formFor(Buffer.from(flipped).toString('hex'), pinned, isoAt(pinned.now)),
    },
    {
      name: 'non-debug document one second after its window',
      input: { type: 'attestation', base64: b64(good.bytes) },
      options: { ...pinned, now: good.validUntil + 1 },
      valid: false,
      reason: 'time',
      form: formFor(b64(good.bytes), { ...pinned, now: good.validUntil + 1 }, String(good.validUntil + 1)),
    },
  ]
  return cases
}

function serviceCases(svc: TestService, now: number): Case[] {
  const root = svc.service.roots.current()
  assert.ok(root, 'the test service has no valid root event')
  const carrier = svc.service.publisher.sign({ kind: 1, created_at: now, tags: [], content: 'hello from the enclave' })
  const pem = svc.simulator.rootPem()
  const dev: WireOptions = { now, root: pem, anyPcrs: true, expect: 'dev' }
  const hostile = { ...root.event, tags: root.event.tags.map((t) => (t[0] === 't' ? ['t', '<img src=x id=injected onerror="window.pwned=1">'] : t)) }
  return [
    { name: 'simulated service root event, simulator root', input: { type: 'root-event', event: root.event }, options: dev, valid: true, reason: null, form: formFor(JSON.stringify(root.event), dev, String(now)) },
    { name: 'carrier signed by the simulated service', input: { type: 'carrier', event: carrier }, options: dev, valid: true, reason: null, form: formFor(JSON.stringify(carrier), dev, String(now)) },
    {
      name: 'simulated service root event expected as prod',
      input: { type: 'root-event', event: root.event },
      options: { ...dev, expect: 'prod' },
      valid: false,
      reason: 't',
      form: formFor(JSON.stringify(root.event), { ...dev, expect: 'prod' }, String(now)),
    },
    {
      name: 'root event with markup in its t tag (edited, so unsigned)',
      input: { type: 'root-event', event: hostile },
      options: dev,
      valid: false,
      reason: 'event',
      form: formFor(JSON.stringify(hostile), dev, String(now)),
    },
  ]
}

test('the build refuses Node builtins in a browser bundle', async () => {
  for (const contents of ["import { createHash } from 'node:crypto'; export const h = createHash", "import { readFileSync } from 'fs'; export const r = readFileSync"]) {
    await assert.rejects(
      build({ stdin: { contents, resolveDir: PROJECT_ROOT }, bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', plugins: [noNodeBuiltins()] }),
      /is a Node builtin: a browser bundle cannot use it/,
    )
  }
})

test('the nec01 bundle verifies in Chromium exactly as in Node', { timeout: 180_000 }, async (t) => {
  if (!requireTools(t, [CHROMIUM])) return
  const out = tempDir('nec01-web-')
  let relay: Awaited<ReturnType<typeof startTestRelay>> | undefined
  let svc: TestService | undefined
  let server: StaticServer | undefined
  let browser: Browser | undefined
  try {
    const report = await buildWeb({ outDir: out.path })
    await t.test('bundle is at most half the reference, gzipped', () => {
      assert.ok(report.reference !== null && report.ratio !== null)
      assert.ok(report.bundle.gzip > 0 && report.bundle.raw > report.bundle.gzip)
      assert.ok(
        report.ratio <= MAX_GZIP_RATIO,
        `nec01.js ${report.bundle.gzip} B gzip vs nostr-enclaves ${report.reference.gzip} B: ratio ${report.ratio.toFixed(3)} > ${MAX_GZIP_RATIO}`,
      )
    })

    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url] })
    const now = Math.floor(Date.now() / 1000)
    const cases = [...documentCases(), ...serviceCases(svc, now)]

    server = await startStaticServer({ '/dist/web/': out.path, '/docs/example/': join(PROJECT_ROOT, 'docs', 'example') })
    const origin = server.origin
    const bundleUrl = `${origin}/dist/web/nec01.js`
    browser = await chromium.launch({ executablePath: CHROMIUM.path, args: CHROMIUM_ARGS, timeout: WAIT_MS })
    const page = await browser.newPage()
    page.setDefaultTimeout(WAIT_MS)
    page.setDefaultNavigationTimeout(WAIT_MS)
    const offsite: string[] = []
    const pageErrors: string[] = []
    await page.route('**/*', (route) => {
      const url = route.request().url()
      if (url.startsWith(`${origin}/`)) return route.continue()
      offsite.push(url)
      return route.abort()
    })
    page.on('pageerror', (err) => pageErrors.push(err.message))
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text())
    })
    await page.goto(`${origin}/docs/example/index.html`)
    await page.locator('#result[data-ready="true"]').waitFor({ state: 'attached' })

    for (const c of cases) {
      await t.test(`same result in the browser: ${c.name}`, async () => {
        const node = await verifyInNode(c)
        assert.equal(node.valid, c.valid, `Node: ${JSON.stringify(node.checks.filter((x) => !x.ok))}`)
        assert.equal(node.reason, c.reason)
        assert.deepStrictEqual(await verifyInBrowser(page, bundleUrl, c), json(node))
      })
    }

    for (const c of cases) {
      await t.test(`example page shows it: ${c.name}`, async () => {
        await clearBrowserCaches(page, bundleUrl)
        const shown = await runExample(page, c.form)
        const node = await verifyInNode(c)
        assert.equal(shown.error, '')
        assert.equal(shown.verdict, node.valid ? '✓ valid' : `✗ invalid: ${node.reason ?? ''}`)
        assert.deepStrictEqual(shown.ids, node.checks.map((x) => x.id))
        assert.deepStrictEqual(shown.marks, node.checks.map((x) => (x.ok ? '✓' : '✗')))
        assert.deepStrictEqual(shown.details, node.checks.map((x) => x.detail))
        const pcrs = Object.entries(node.attestation?.pcrs ?? {})
        assert.deepStrictEqual(shown.pcrIndices, pcrs.map(([i]) => `PCR${i}`))
        assert.deepStrictEqual(shown.pcrValues, pcrs.map(([, v]) => v))
      })
    }

    await t.test('example page inserts data as text, never as markup', async () => {
      const hostile = cases.find((c) => c.name.startsWith('root event with markup'))
      assert.ok(hostile)
      const shown = await runExample(page, hostile.form)
      assert.ok(shown.details.some((d) => d.includes('<img src=x id=injected')), 'the t tag value is shown')
      assert.equal(await page.locator('#injected').count(), 0)
      assert.equal(await page.evaluate(() => (globalThis as { pwned?: unknown }).pwned), undefined)
    })

    await t.test('example page reports unusable input and options instead of a verdict', async () => {
      const base = cases[0]!.form
      const badPcrs = await runExample(page, { ...base, pcrs: '{"PCR0": "00"}' })
      assert.equal(badPcrs.error, 'expected PCRs: PCR0 is not 96 hex characters')
      assert.equal(badPcrs.verdict, '')
      assert.deepStrictEqual(badPcrs.ids, [])
      const badInput = await runExample(page, { ...base, input: 'not an attestation' })
      assert.equal(badInput.error, 'neither JSON, base64 nor hex of an attestation document')
      const badTime = await runExample(page, { ...base, at: '2024-12-13T06:00:00' })
      assert.match(badTime.error, /^validation time: .* with a zone/)
    })

    await t.test('example page shows the history of an npub from a relay: announcement and lineage timeline', async () => {
      const dir = tempDir('nec01-web-history-')
      const builds = await twoBuilds(relay!.url, dir.path)
      try {
        const pem = builds.current.simulator.rootPem()
        const shown = async (expect: Expect): Promise<{ verdict: string; timeline: Array<string | null>; current: Array<string | null>; build: string; problems: string[]; error: string }> => {
          await page.fill('#npub', npubEncode(builds.pubkey))
          await page.fill('#relay', relay!.url)
          await page.fill('#root', pem)
          await page.selectOption('#expect', expect)
          const before = Number((await page.locator('#history').getAttribute('data-run')) ?? '0')
          await page.click('#history-go')
          await page.locator(`#history[data-run="${before + 1}"]`).waitFor({ state: 'attached', timeout: WAIT_MS })
          const items = page.locator('#timeline li[data-pcr0]')
          return {
            verdict: (await page.locator('#history-verdict').textContent()) ?? '',
            timeline: await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-pcr0'))),
            current: await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-current'))),
            build: (await page.locator('#announcement dd[data-field="build"]').textContent()) ?? '',
            problems: await page.locator('#problems li').allTextContents(),
            error: (await page.locator('#history-error').textContent()) ?? '',
          }
        }
        const good = await shown('dev')
        assert.equal(good.error, '')
        assert.equal(good.verdict, '✓ 2 builds, every hand-over verified', good.problems.join('; '))
        assert.deepStrictEqual(good.timeline, [builds.imageA.pcrs[0], builds.imageB.pcrs[0]])
        assert.deepStrictEqual(good.current, ['false', 'true'])
        assert.match(good.build, new RegExp(`^PCR0 ${builds.imageB.pcrs[0]}`))
        const prod = await shown('prod')
        assert.equal(prod.verdict, '✗ history invalid')
        assert.match(prod.problems[0] ?? '', /^the announcement does not verify/)
      } finally {
        await builds.close()
        dir.remove()
      }
    })

    await t.test('the page loaded nothing from elsewhere and raised no errors', () => {
      assert.deepStrictEqual(offsite, [])
      assert.deepStrictEqual(pageErrors, [])
    })
  } finally {
    await browser?.close()
    await server?.close()
    await svc?.close()
    await relay?.close()
    out.remove()
  }
})

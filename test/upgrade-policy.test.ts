// upgrade.json: what it may say, the typed error for anything else, the prod floor on the
// cooldown, and that the simulator measures it into PCR2 like the image does.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { npubEncode } from 'nostr-tools/nip19'
import { bootPcrs } from '../src/nsm/pcrs.js'
import { checkPolicyFor, DEFAULT_COOLDOWN_SEC, loadUpgradeFile, parseUpgradeFile, UpgradePolicyError, type UpgradePolicyErrorCode } from '../src/upgrade/policy.js'
import { tempDir } from './service-harness.js'
import { person } from './upgrade-helpers.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

function code(fn: () => unknown): UpgradePolicyErrorCode | 'none' {
  try {
    fn()
    return 'none'
  } catch (err) {
    assert.ok(err instanceof UpgradePolicyError, String(err))
    assert.ok(!err.message.includes('\n'), 'one line')
    return err.code
  }
}

describe('upgrade.json', () => {
  const [a, b] = [person(), person()]
  const file = (upgrade: unknown): string => JSON.stringify({ upgrade })
  const base = { maintainers: [npubEncode(a.pubkey), b.pubkey], threshold: 2, repo: 'https://example.test/r' }

  it('the shipped file says the key never moves', () => {
    assert.equal(parseUpgradeFile(readFileSync(join(root, 'upgrade.json'), 'utf8')), null)
  })

  it('reads maintainers (npub or hex), threshold, repo, cooldown (default a day) and dev_may_receive_prod (default no)', () => {
    assert.deepEqual(parseUpgradeFile(file(base)), { maintainers: [a.pubkey, b.pubkey], threshold: 2, repo: base.repo, cooldownSec: DEFAULT_COOLDOWN_SEC, devMayReceiveProd: false })
    const p = parseUpgradeFile(file({ ...base, threshold: undefined, cooldown_sec: 5, dev_may_receive_prod: true }))
    assert.equal(p?.threshold, 1)
    assert.equal(p?.cooldownSec, 5)
    assert.equal(p?.devMayReceiveProd, true)
  })

  it('refuses anything else with a typed one-line error', () => {
    assert.equal(code(() => parseUpgradeFile('{')), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile('{}')), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, maintainers: [] }))), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, maintainers: [a.pubkey, a.pubkey] }))), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, maintainers: ['npub1nothing'] }))), 'UPGRADE_KEY_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, threshold: 3 }))), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, repo: '' }))), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, cooldown_sec: 0 }))), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, dev_may_receive_prod: 'yes' }))), 'UPGRADE_FILE_INVALID')
    assert.equal(code(() => parseUpgradeFile(file({ ...base, coldown_sec: 5 }))), 'UPGRADE_FILE_INVALID', 'a misspelt key is not ignored')
    const dir = tempDir('nec01-upol-')
    try {
      assert.equal(loadUpgradeFile(join(dir.path, 'missing.json')), null, 'no file: no policy')
      assert.equal(code(() => loadUpgradeFile(dir.path)), 'UPGRADE_FILE_UNREADABLE')
    } finally {
      dir.remove()
    }
  })

  it('a cooldown shorter than a day is for dev only', () => {
    const short = parseUpgradeFile(file({ ...base, cooldown_sec: 5 }))!
    assert.equal(code(() => checkPolicyFor(short, 'dev')), 'none')
    assert.equal(code(() => checkPolicyFor(short, 'prod')), 'UPGRADE_COOLDOWN_REFUSED')
    assert.equal(code(() => checkPolicyFor(parseUpgradeFile(file(base))!, 'prod')), 'none')
  })

  it('nec01 serve takes --upgrade-policy in dev only, and refuses a bad file before starting', async () => {
    const cli = join(root, 'dist', 'src', 'cli.js')
    const run = (args: string[]): Promise<{ code: number; stderr: string }> =>
      new Promise((resolve) => execFile(process.execPath, [cli, 'serve', ...args], { timeout: 30_000 }, (err, _out, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stderr })))
    const dir = tempDir('nec01-upol-cli-')
    try {
      const bad = join(dir.path, 'bad.json')
      writeFileSync(bad, file({ ...base, threshold: 9 }))
      const prod = await run(['--upgrade-policy', bad, '--relay', 'ws://127.0.0.1:1'])
      assert.equal(prod.code, 2)
      assert.match(prod.stderr, /--upgrade-policy only applies in dev/)
      const invalid = await run(['--dev', '--upgrade-policy', bad, '--relay', 'ws://127.0.0.1:1', '--state-dir', dir.path])
      assert.equal(invalid.code, 2)
      assert.match(invalid.stderr, /^nec01: upgrade\.json: "threshold" must be/)
    } finally {
      dir.remove()
    }
  })

  it('is measured with the code: PCR2 moves when it is added or changed', () => {
    const dir = tempDir('nec01-upcr-')
    try {
      const dist = join(dir.path, 'dist')
      mkdirSync(join(dist, 'src'), { recursive: true })
      writeFileSync(join(dist, 'src', 'cli.js'), 'export {}\n')
      const measure = (): Uint8Array[] => bootPcrs({ distDir: dist, runtime: { node: '20.0.0', platform: 'linux', arch: 'x64' }, instanceId: 'i-00000000000000000' })
      const none = measure()
      writeFileSync(join(dir.path, 'upgrade.json'), '{ "upgrade": null }\n')
      const withNull = measure()
      writeFileSync(join(dir.path, 'upgrade.json'), file(base))
      const withPolicy = measure()
      assert.notDeepEqual(withNull[2], none[2])
      assert.notDeepEqual(withPolicy[2], withNull[2], 'another policy is another image')
    } finally {
      dir.remove()
    }
  })
})

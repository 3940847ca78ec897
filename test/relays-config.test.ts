import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadRelayConfig, normalizeRelayUrl, parseRelayConfig, relaysFromUrls, MAX_CONFIG_BYTES, MAX_RELAYS } from '../src/relays/config.js'

/** The ConfigError `fn` throws (fails the test if it throws anything else or nothing). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    assert.doesNotMatch(err.message, /\n/, 'one line')
    return err
  }
  assert.fail('expected a ConfigError')
}

const entry = (url: string, read = true, write = true) => ({ url, read, write })

test('a valid file: URLs normalised, markers kept, omitted markers mean both', () => {
  const text = JSON.stringify({
    relays: [
      { url: 'wss://Relay.Example.COM/', read: true, write: false },
      { url: 'wss://nos.lol:443', read: false, write: true },
      { url: 'ws://127.0.0.1:7777/path/' },
    ],
  })
  assert.deepEqual(parseRelayConfig(text, 'relays.json'), {
    relays: [entry('wss://relay.example.com', true, false), entry('wss://nos.lol', false, true), entry('ws://127.0.0.1:7777/path')],
  })
})

test('each kind of broken file gives its one-line message naming the file', () => {
  const cases: Array<[string, string, string]> = [
    ['{"relays": [', 'config/json', 'relays.json: not valid JSON: '],
    ['[]', 'config/shape', 'relays.json: expected an object { "relays": [ ... ] }'],
    ['{"relays": {}}', 'config/shape', 'relays.json: expected an object { "relays": [ ... ] }'],
    ['{"relays": [], "extra": 1}', 'config/shape', 'relays.json: unknown key "extra"'],
    ['{"relays": []}', 'config/shape', 'relays.json: relays: the list is empty'],
    ['{"relays": ["wss://nos.lol"]}', 'config/shape', 'relays.json: relays[0]: expected an object'],
    ['{"relays": [{"url": 5}]}', 'config/shape', 'relays.json: relays[0].url: expected a string'],
    ['{"relays": [{"url": "wss://a.example", "wirte": true}]}', 'config/shape', 'relays.json: relays[0]: unknown key "wirte"'],
    ['{"relays": [{"url": "wss://a.example", "read": "yes"}]}', 'config/shape', 'relays.json: relays[0].read: expected true or false'],
    ['{"relays": [{"url": "wss://a.example", "read": false, "write": false}]}', 'config/shape', 'relays.json: relays[0]: neither read nor write'],
    [
      '{"relays": [{"url": "wss://a.example"}, {"url": "wss://b.example"}, {"url": "http://x"}]}',
      'config/url',
      'relays.json: relays[2].url: not a ws:// or wss:// URL: "http://x"',
    ],
    ['{"relays": [{"url": "wss://user:pw@a.example"}]}', 'config/url', 'relays.json: relays[0].url: not a ws:// or wss:// URL: "wss://user:pw@a.example"'],
    ['{"relays": [{"url": "not a url"}]}', 'config/url', 'relays.json: relays[0].url: not a ws:// or wss:// URL: "not a url"'],
    [
      '{"relays": [{"url": "wss://A.example/"}, {"url": "wss://a.example"}]}',
      'config/duplicate',
      'relays.json: relays[1].url: duplicate of relays[0] (wss://a.example)',
    ],
    ['{"relays": [{"url": "wss://a.example", "read": false}]}', 'config/no-read', 'relays.json: relays: no relay has "read": true'],
    ['{"relays": [{"url": "wss://a.example", "write": false}]}', 'config/no-write', 'relays.json: relays: no relay has "write": true'],
  ]
  for (const [text, code, message] of cases) {
    const err = configError(() => parseRelayConfig(text, 'relays.json'))
    assert.equal(err.code, code, text)
    assert.equal(err.source, 'relays.json')
    if (code === 'config/json') assert.ok(err.message.startsWith(message), err.message)
    else assert.equal(err.message, message, text)
  }
})

test('a huge or hostile url value is cut short in the message', () => {
  const long = 'http://' + 'a'.repeat(5000)
  const err = configError(() => parseRelayConfig(JSON.stringify({ relays: [{ url: long }] }), 'r.json'))
  assert.ok(err.message.length < 200, err.message)
  const nl = configError(() => parseRelayConfig(JSON.stringify({ relays: [{ url: 'wss://a\nb' }] }), 'r.json'))
  assert.equal(nl.code, 'config/url')
})

test('too many relays is refused', () => {
  const relays = Array.from({ length: MAX_RELAYS + 1 }, (_, i) => ({ url: `wss://r${i}.example` }))
  assert.equal(configError(() => parseRelayConfig(JSON.stringify({ relays }), 'r.json')).code, 'config/shape')
})

test('loadRelayConfig reads a file and names it in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nec01-config-'))
  try {
    const good = join(dir, 'good.json')
    writeFileSync(good, JSON.stringify({ relays: [{ url: 'wss://nos.lol' }] }))
    assert.deepEqual(loadRelayConfig(good), { relays: [entry('wss://nos.lol')] })

    const bad = join(dir, 'bad.json')
    writeFileSync(bad, '{')
    const err = configError(() => loadRelayConfig(bad))
    assert.equal(err.code, 'config/json')
    assert.ok(err.message.startsWith(`${bad}: not valid JSON`), err.message)

    const missing = configError(() => loadRelayConfig(join(dir, 'missing.json')))
    assert.equal(missing.code, 'config/unreadable')
    assert.equal(missing.message, `${join(dir, 'missing.json')}: cannot read (ENOENT)`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

// The timeout is a safety net: without the bound, /dev/zero is read until memory runs out.
test('a huge file, a directory or a device is refused with one line, without reading it all', { timeout: 20_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'nec01-config-'))
  try {
    // A valid list padded with spaces past the bound: refused for its size, not parsed.
    const huge = join(dir, 'huge.json')
    const list = JSON.stringify({ relays: [{ url: 'wss://nos.lol' }] })
    writeFileSync(huge, list + ' '.repeat(MAX_CONFIG_BYTES + 1 - list.length))
    const big = configError(() => loadRelayConfig(huge))
    assert.equal(big.code, 'config/too-large')
    assert.equal(big.message, `${huge}: larger than ${MAX_CONFIG_BYTES} bytes: not a relay list`)
    // Exactly at the bound it still loads.
    const edge = join(dir, 'edge.json')
    writeFileSync(edge, list + ' '.repeat(MAX_CONFIG_BYTES - list.length))
    assert.deepEqual(loadRelayConfig(edge), { relays: [entry('wss://nos.lol')] })

    const isDir = configError(() => loadRelayConfig(dir))
    assert.equal(isDir.code, 'config/unreadable')
    assert.equal(isDir.message, `${dir}: is a directory`)

    if (existsSync('/dev/zero')) {
      const device = configError(() => loadRelayConfig('/dev/zero'))
      assert.equal(device.code, 'config/too-large')
      assert.equal(device.message, `/dev/zero: larger than ${MAX_CONFIG_BYTES} bytes: not a relay list`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the shipped relays.json is valid, with secure relays that read and write', () => {
  const { relays } = loadRelayConfig(join(process.cwd(), 'relays.json'))
  assert.ok(relays.length >= 3 && relays.length <= 5, `${relays.length} relays`)
  for (const r of relays) assert.ok(r.url.startsWith('wss://'), r.url)
  assert.ok(relays.every((r) => r.read && r.write))
})

test('relaysFromUrls: --relay URLs are read+write, normalised and deduplicated', () => {
  assert.deepEqual(relaysFromUrls(['ws://127.0.0.1:7777/', 'WS://127.0.0.1:7777', 'wss://nos.lol']), {
    relays: [entry('ws://127.0.0.1:7777'), entry('wss://nos.lol')],
  })
  const err = configError(() => relaysFromUrls(['wss://ok.example', 'ftp://x']))
  assert.equal(err.message, '--relay: not a ws:// or wss:// URL: "ftp://x"')
  assert.equal(configError(() => relaysFromUrls([])).message, '--relay: no relay given')
})

test('normalizeRelayUrl', () => {
  assert.equal(normalizeRelayUrl('wss://relay.damus.io/'), 'wss://relay.damus.io')
  assert.equal(normalizeRelayUrl('ws://example.com:80'), 'ws://example.com')
  assert.equal(normalizeRelayUrl('wss://example.com:8443/a//'), 'wss://example.com:8443/a')
  assert.equal(normalizeRelayUrl('wss://example.com/?b=1'), 'wss://example.com?b=1')
  assert.equal(normalizeRelayUrl('https://example.com'), null)
  assert.equal(normalizeRelayUrl('wss://example.com/#frag'), null)
  assert.equal(normalizeRelayUrl(''), null)
})

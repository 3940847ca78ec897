// The example page's history of an npub: its announcement (build, instance, release) and
// every build that has held its key, from a relay the user names, checked with nec01's
// verifyHistory. One plain WebSocket per lookup; everything shown is written as text.
import {
  ANNOUNCEMENT_KIND,
  RELEASE_KIND,
  UPGRADE_CANCELLED_KIND,
  UPGRADE_PENDING_KIND,
  UPGRADED_KIND,
  verifyHistory,
  type History,
  type NostrEvent,
  type UpgradeVerifyOptions,
} from '../../nec01/index.js'

/** A relay that sends nothing more within this is done with the lookup. */
const RELAY_TIMEOUT_MS = 10_000
const NPUB_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'

/** Stored events for the filters: until EOSE, or the timeout. */
function query(url: string, filters: object[]): Promise<NostrEvent[]> {
  return new Promise((resolve, reject) => {
    const events: NostrEvent[] = []
    const ws = new WebSocket(url)
    const done = (): void => {
      clearTimeout(timer)
      ws.close()
      resolve(events)
    }
    const timer = setTimeout(done, RELAY_TIMEOUT_MS)
    ws.onopen = () => ws.send(JSON.stringify(['REQ', 'history', ...filters]))
    ws.onerror = () => {
      clearTimeout(timer)
      reject(new Error(`cannot reach ${url}`))
    }
    ws.onmessage = (m) => {
      let msg: unknown[]
      try {
        msg = JSON.parse(String(m.data)) as unknown[]
      } catch {
        return // not NIP-01: ignored
      }
      if (!Array.isArray(msg)) return
      if (msg[0] === 'EVENT' && msg[1] === 'history') events.push(msg[2] as NostrEvent)
      if ((msg[0] === 'EOSE' || msg[0] === 'CLOSED') && msg[1] === 'history') done()
    }
  })
}

/** npub (bech32, checksum not re-checked: the events' own signatures decide) or hex → hex. */
function pubkeyOf(text: string): string | null {
  const t = text.trim().toLowerCase()
  if (/^[0-9a-f]{64}$/.test(t)) return t
  if (!/^npub1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/.test(t)) return null
  let acc = 0
  let bits = 0
  const out: number[] = []
  for (const ch of t.slice(5, -6)) {
    acc = (acc << 5) | NPUB_CHARSET.indexOf(ch)
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out.push((acc >> bits) & 0xff)
    }
  }
  return out.length === 32 ? out.map((b) => b.toString(16).padStart(2, '0')).join('') : null
}

async function fetchHistory(relay: string, pubkey: string, options: UpgradeVerifyOptions): Promise<History> {
  const [announcements, events] = await Promise.all([
    query(relay, [{ kinds: [ANNOUNCEMENT_KIND], authors: [pubkey] }]),
    query(relay, [{ kinds: [UPGRADE_PENDING_KIND, UPGRADE_CANCELLED_KIND, UPGRADED_KIND], authors: [pubkey] }]),
  ])
  const announcement = announcements.filter((e) => e.pubkey === pubkey).sort((a, b) => b.created_at - a.created_at)[0] ?? null
  const pcr0s = new Set<string>()
  for (const e of [...(announcement === null ? [] : [announcement]), ...events]) for (const t of e.tags) if ((t[0] === 'x' && t[2] === 'PCR0') || t[0] === 'from') pcr0s.add(t[1] ?? '')
  const releases = pcr0s.size === 0 ? [] : await query(relay, [{ kinds: [RELEASE_KIND], '#x': [...pcr0s] }])
  return verifyHistory({ pubkey, announcement, events, releases }, options)
}

function el(id: string): HTMLElement {
  const e = document.getElementById(id)
  if (e === null) throw new Error(`page is missing #${id}`)
  return e
}

function add(parent: HTMLElement, tag: string, text: string, className?: string): HTMLElement {
  const e = document.createElement(tag)
  e.textContent = text
  if (className !== undefined) e.className = className
  parent.append(e)
  return e
}

const iso = (unix: number): string => new Date(unix * 1000).toISOString().replace('.000Z', 'Z')

function renderAnnouncement(h: History): void {
  const dl = el('announcement')
  const a = h.announcement
  if (a === null) return
  const pcrs = a.attestation?.pcrs ?? {}
  const rows: [string, string][] = [
    ['announcement', a.valid ? '✓ valid' : `✗ invalid: ${a.reason ?? ''}`],
    ['build', `PCR0 ${pcrs['0'] ?? '?'} · PCR1 ${pcrs['1'] ?? '?'} · PCR2 ${pcrs['2'] ?? '?'}${a.signers?.builder === null || a.signers === undefined ? '' : `, built by ${a.signers.builder}`}`],
    ['instance', `${pcrs['4'] === undefined || /^0+$/.test(pcrs['4']) ? 'no PCR4' : `PCR4 ${pcrs['4']}`}${a.signers?.launcher === null || a.signers === undefined ? '' : `, launched by ${a.signers.launcher}`}`],
    ['release', a.signers === undefined || a.signers.releasers.length === 0 ? 'none carried' : a.signers.releasers.join(', ')],
  ]
  for (const [k, v] of rows) {
    add(dl, 'dt', k)
    add(dl, 'dd', v, 'hex').dataset.field = k
  }
}

function renderTimeline(h: History): void {
  const ol = el('timeline')
  for (const b of h.builds) {
    const li = document.createElement('li')
    li.dataset.pcr0 = b.pcrs[0]
    li.dataset.current = String(b.current)
    add(li, 'div', `PCR0 ${b.pcrs[0]} (t=${b.t ?? '?'})`, 'hex')
    add(li, 'div', `${b.heldFrom === null ? 'first build' : `from ${iso(b.heldFrom)}`}${b.heldUntil === null ? ' · holds the key now' : ` until ${iso(b.heldUntil)}`}`, 'when')
    add(li, 'div', b.releasers.length === 0 ? 'UNSIGNED' : `released by ${b.releasers.join(', ')}`, b.releasers.length === 0 ? 'bad' : undefined)
    if (b.handover !== null) add(li, 'div', `hand-over ${b.handover}`, 'hex')
    ol.append(li)
  }
  for (const p of h.pending) {
    const li = add(ol, 'li', `${p.state}: PCR0 ${p.from.slice(0, 12)}… → PCR0 ${p.target[0].slice(0, 12)}…, activation ${iso(p.activation)}`, p.state === 'pending' ? 'pending' : 'when')
    li.dataset.pending = p.state
  }
}

/** Wires the form; `trust` reads the page's root and t fields. */
export function setupHistory(trust: () => UpgradeVerifyOptions): void {
  const button = el('history-go') as HTMLButtonElement
  const section = el('history')
  let runs = 0
  button.addEventListener('click', () => {
    void (async () => {
      button.disabled = true
      for (const id of ['history-error', 'history-verdict']) el(id).textContent = ''
      for (const id of ['announcement', 'timeline', 'problems']) el(id).replaceChildren()
      try {
        const pubkey = pubkeyOf((el('npub') as HTMLInputElement).value)
        const relay = (el('relay') as HTMLInputElement).value.trim()
        if (pubkey === null) throw new Error('the npub is neither an npub nor 64 hex characters')
        if (!/^wss?:\/\/\S+$/.test(relay)) throw new Error('the relay must be a ws:// or wss:// URL')
        const h = await fetchHistory(relay, pubkey, trust())
        el('history-verdict').textContent = h.valid ? `✓ ${h.builds.length} build${h.builds.length === 1 ? '' : 's'}, every hand-over verified` : '✗ history invalid'
        el('history-verdict').className = h.valid ? 'ok' : 'bad'
        section.dataset.valid = String(h.valid)
        renderAnnouncement(h)
        renderTimeline(h)
        for (const p of h.problems) add(el('problems'), 'li', p, 'bad')
      } catch (err) {
        el('history-error').textContent = err instanceof Error ? err.message : String(err)
        el('history-error').className = 'bad'
      } finally {
        button.disabled = false
        section.dataset.run = String(++runs)
      }
    })()
  })
}

// The hardware adapter against a stand-in for the aws-nitro-enclaves-nsm-node addon that
// behaves like the real one (errors as Error(<ErrorCode name>), Buffers in and out) and
// records what it was given, so the guards in front of the addon are tested without /dev/nsm.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { HardwareNsm, NO_DEVICE_MESSAGE, openHardwareNsm, type NsmAddon } from '../src/nsm/hardware.js'
import { maxExtendDataLength, NSM_MAX_FIELD_BYTES } from '../src/nsm/limits.js'
import { openNsm } from '../src/nsm/open.js'
import { NsmError, type NsmErrorCode } from '../src/nsm/types.js'
import { tempStateDir } from './nsm-helpers.js'

interface Call {
  name: string
  args: unknown[]
}

const FD = 7

/** Whether the real addon has been loaded into this process (CommonJS module cache). */
function addonLoaded(): boolean {
  return Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('aws-nitro-enclaves-nsm-node'))
}

function standIn(overrides: Partial<NsmAddon> = {}): { addon: NsmAddon; calls: Call[] } {
  const calls: Call[] = []
  const record = (name: string, args: unknown[]): void => {
    calls.push({ name, args })
  }
  const pcrs = Array.from({ length: 32 }, (_, i) => Buffer.alloc(48, i < 3 ? 0x11 : 0))
  const base: NsmAddon = {
    open: () => {
      record('open', [])
      return FD
    },
    close: (fd) => record('close', [fd]),
    extendPcr: (fd, index, data) => {
      record('extendPcr', [fd, index, data])
      return Buffer.alloc(48, 0xee)
    },
    getPcrDescription: (fd, index) => {
      record('getPcrDescription', [fd, index])
      return { lock: index < 16, data: pcrs[index] ?? Buffer.alloc(48) }
    },
    lockPcr: (fd, index) => record('lockPcr', [fd, index]),
    getDescription: (fd) => {
      record('getDescription', [fd])
      return {
        versionMajor: 1,
        versionMinor: 0,
        versionPatch: 0,
        moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
        maxPcrs: 32,
        lockedPcrs: [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        digest: 'sha384',
      }
    },
    getAttestationDoc: (fd, userData, nonce, publicKey) => {
      record('getAttestationDoc', [fd, userData, nonce, publicKey])
      return Buffer.from('84440a', 'hex')
    },
    getRandom: (fd) => {
      record('getRandom', [fd])
      return Buffer.alloc(256, 0x5a)
    },
  }
  return { addon: { ...base, ...overrides }, calls }
}

function fakeDevice(): { path: string; cleanup: () => void } {
  const s = tempStateDir('dev')
  const path = join(s.dir, 'nsm')
  writeFileSync(path, '')
  return { path, cleanup: s.cleanup }
}

async function rejectsWith(promise: Promise<unknown>, code: NsmErrorCode, message?: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof NsmError, `expected NsmError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    if (message !== undefined) assert.equal(error.message, message)
    return true
  })
}

async function withAdapter(
  overrides: Partial<NsmAddon>,
  run: (nsm: HardwareNsm, calls: Call[]) => Promise<void>,
): Promise<void> {
  const device = fakeDevice()
  const { addon, calls } = standIn(overrides)
  try {
    const nsm = await openHardwareNsm({ devicePath: device.path, addon })
    await run(nsm, calls)
  } finally {
    device.cleanup()
  }
}

describe('hardware NSM adapter', () => {
  it('fails with the exact NoDevice message when the device is missing, before touching the addon', async () => {
    const s = tempStateDir('nodev')
    const { addon, calls } = standIn()
    try {
      await rejectsWith(openHardwareNsm({ devicePath: join(s.dir, 'nsm'), addon }), 'NoDevice', NO_DEVICE_MESSAGE)
      assert.equal(NO_DEVICE_MESSAGE, 'not inside a Nitro Enclave: /dev/nsm is missing; run with --dev to use the simulator')
      assert.deepEqual(calls, [])
    } finally {
      s.cleanup()
    }
  })

  it('turns open() returning -1 into OpenFailed instead of a handle that fails later', async () => {
    const device = fakeDevice()
    try {
      const { addon, calls } = standIn({ open: () => -1 })
      await rejectsWith(openHardwareNsm({ devicePath: device.path, addon }), 'OpenFailed')
      assert.ok(!calls.some((c) => c.name === 'getDescription'), 'nothing is called on fd -1')
    } finally {
      device.cleanup()
    }
  })

  it('rejects an addon that lacks functions (AddonUnavailable)', async () => {
    const device = fakeDevice()
    try {
      const partial = { open: () => 3 } as unknown as NsmAddon
      await rejectsWith(openHardwareNsm({ devicePath: device.path, addon: partial }), 'AddonUnavailable')
    } finally {
      device.cleanup()
    }
  })

  it('describes the module, normalizing the digest name and sorting locked PCRs', async () => {
    await withAdapter({}, async (nsm) => {
      const d = await nsm.describe()
      assert.equal(d.digest, 'SHA384')
      assert.equal(d.tee, 'nsm')
      assert.equal(d.maxPcrs, 32)
      assert.deepEqual(d.lockedPcrs, Array.from({ length: 16 }, (_, i) => i))
      assert.equal(d.debug, false)
      assert.deepEqual(d.version, { major: 1, minor: 0, patch: 0 })
    })
  })

  it('reports debug mode when PCR0..2 are all zero', async () => {
    await withAdapter(
      { getPcrDescription: (_fd, index) => ({ lock: index < 16, data: Buffer.alloc(48) }) },
      async (nsm) => assert.equal((await nsm.describe()).debug, true),
    )
  })

  it('passes only Buffers (or null) to getAttestationDoc, in the addon’s argument order', async () => {
    await withAdapter({}, async (nsm, calls) => {
      const publicKey = new Uint8Array(32).fill(1)
      const userData = new Uint8Array(5).fill(2)
      const doc = await nsm.attest({ publicKey, userData })
      assert.deepEqual(doc, new Uint8Array([0x84, 0x44, 0x0a]))
      assert.ok(!Buffer.isBuffer(doc), 'callers get a plain Uint8Array')
      const call = calls.find((c) => c.name === 'getAttestationDoc')!
      const [fd, u, n, p] = call.args
      assert.equal(fd, FD)
      assert.ok(Buffer.isBuffer(u) && Buffer.isBuffer(p))
      assert.equal(n, null)
      assert.deepEqual(new Uint8Array(u), userData)
      assert.deepEqual(new Uint8Array(p as Buffer), publicKey)
      // a view into a larger buffer is passed as exactly its bytes
      const backing = new Uint8Array(100).fill(9)
      await nsm.attest({ nonce: backing.subarray(10, 20) })
      const last = calls.filter((c) => c.name === 'getAttestationDoc').at(-1)!
      assert.ok(Buffer.isBuffer(last.args[2]))
      assert.equal((last.args[2] as Buffer).length, 10)
    })
  })

  it('checks field sizes and types before the addon sees them', async () => {
    await withAdapter({}, async (nsm, calls) => {
      const before = calls.length
      await rejectsWith(nsm.attest({ userData: new Uint8Array(NSM_MAX_FIELD_BYTES + 1) }), 'InputTooLarge')
      await rejectsWith(nsm.attest({ nonce: new Uint8Array(NSM_MAX_FIELD_BYTES + 1) }), 'InputTooLarge')
      await rejectsWith(nsm.attest({ publicKey: new Uint8Array(NSM_MAX_FIELD_BYTES + 1) }), 'InputTooLarge')
      // a string here would abort the whole process inside the real addon
      await rejectsWith(nsm.attest({ publicKey: 'abcd' as unknown as Uint8Array }), 'InvalidArgument')
      await rejectsWith(nsm.attest({ nonce: [1, 2] as unknown as Uint8Array }), 'InvalidArgument')
      await rejectsWith(nsm.attest('x' as unknown as undefined), 'InvalidArgument')
      assert.equal(calls.length, before, 'the addon was not called')
      await nsm.attest({ publicKey: new Uint8Array(NSM_MAX_FIELD_BYTES) })
      assert.equal(calls.length, before + 1)
    })
  })

  it('checks PCR indices and extend data before the addon sees them', async () => {
    await withAdapter({}, async (nsm, calls) => {
      const before = calls.length
      await rejectsWith(nsm.extendPcr(32, Buffer.from('x')), 'InvalidIndex')
      await rejectsWith(nsm.extendPcr(-1, Buffer.from('x')), 'InvalidIndex')
      await rejectsWith(nsm.lockPcr(70000), 'InvalidIndex')
      await rejectsWith(nsm.describePcr(2.5), 'InvalidArgument')
      await rejectsWith(nsm.extendPcr(16, 'data' as unknown as Uint8Array), 'InvalidArgument')
      await rejectsWith(nsm.extendPcr(16, new Uint8Array(maxExtendDataLength(16) + 1)), 'InputTooLarge')
      assert.equal(calls.length, before, 'the addon was not called')
      const value = await nsm.extendPcr(16, new Uint8Array([1, 2, 3]))
      assert.deepEqual(value, new Uint8Array(48).fill(0xee))
      const call = calls.at(-1)!
      assert.equal(call.name, 'extendPcr')
      assert.equal(call.args[1], 16)
      assert.ok(Buffer.isBuffer(call.args[2]))
      assert.deepEqual([...(call.args[2] as Buffer)], [1, 2, 3])
    })
  })

  it('maps the addon’s errors to NsmError codes', async () => {
    const cases: Array<[string, NsmErrorCode]> = [
      ['ReadOnlyIndex', 'ReadOnlyIndex'],
      ['InvalidIndex', 'InvalidIndex'],
      ['InputTooLarge', 'InputTooLarge'],
      ['InvalidOperation', 'InvalidOperation'],
      ['BufferTooSmall', 'BufferTooSmall'],
      ['InternalError', 'InternalError'],
      ['Failed to convert u32 to u16', 'InvalidArgument'],
      ['something else entirely', 'InternalError'],
    ]
    for (const [message, code] of cases) {
      await withAdapter(
        {
          extendPcr: () => {
            throw new Error(message)
          },
          lockPcr: () => {
            throw new Error(message)
          },
        },
        async (nsm) => {
          await rejectsWith(nsm.extendPcr(16, Buffer.from('x')), code)
          await rejectsWith(nsm.lockPcr(16), code)
        },
      )
    }
  })

  it('treats malformed addon results as InvalidResponse', async () => {
    await withAdapter(
      {
        extendPcr: () => Buffer.alloc(12),
        getAttestationDoc: () => 'not bytes' as unknown as Buffer,
        getPcrDescription: () => ({ lock: 'yes' }) as unknown as { lock: boolean; data: Buffer },
      },
      async (nsm) => {
        await rejectsWith(nsm.extendPcr(16, Buffer.from('x')), 'InvalidResponse')
        await rejectsWith(nsm.attest(), 'InvalidResponse')
        await rejectsWith(nsm.describePcr(16), 'InvalidResponse')
      },
    )
    const device = fakeDevice()
    try {
      const { addon } = standIn({ getDescription: () => ({}) as ReturnType<NsmAddon['getDescription']> })
      await rejectsWith(openHardwareNsm({ devicePath: device.path, addon }), 'InvalidResponse')
    } finally {
      device.cleanup()
    }
  })

  it('loops getRandom until n bytes, and gives up on a module that returns nothing', async () => {
    let counter = 0
    await withAdapter(
      {
        getRandom: () => {
          counter++
          return Buffer.alloc(256, counter)
        },
      },
      async (nsm) => {
        const bytes = await nsm.random(600)
        assert.equal(bytes.length, 600)
        assert.equal(counter, 3)
        assert.equal(bytes[0], 1)
        assert.equal(bytes[256], 2)
        assert.equal(bytes[599], 3)
        assert.equal((await nsm.random(0)).length, 0)
        await rejectsWith(nsm.random(-5), 'InvalidArgument')
      },
    )
    await withAdapter({ getRandom: () => Buffer.alloc(0) }, async (nsm) => {
      await rejectsWith(nsm.random(10), 'InternalError')
    })
  })

  it('closes the descriptor once and fails later calls with Closed', async () => {
    await withAdapter({}, async (nsm, calls) => {
      await nsm.close()
      await nsm.close()
      assert.deepEqual(
        calls.filter((c) => c.name === 'close'),
        [{ name: 'close', args: [FD] }],
      )
      await rejectsWith(nsm.attest(), 'Closed')
      await rejectsWith(nsm.extendPcr(16, Buffer.from('x')), 'Closed')
      await rejectsWith(nsm.random(1), 'Closed')
    })
  })

  it('selects hardware by default in openNsm, and says how to get the simulator', async () => {
    const s = tempStateDir('opennsm')
    try {
      await rejectsWith(openNsm({ devicePath: join(s.dir, 'missing') }), 'NoDevice', NO_DEVICE_MESSAGE)
    } finally {
      s.cleanup()
    }
  })

  const insideEnclave = existsSync('/dev/nsm')
  it(
    'with the real addon outside an enclave: NoDevice for /dev/nsm, OpenFailed or AddonUnavailable past the path check',
    { skip: insideEnclave ? '/dev/nsm exists here' : false },
    async () => {
      // every test before this one used a stand-in: the addon is loaded only on real use
      assert.equal(addonLoaded(), false, 'the addon is not loaded before the hardware adapter is opened')
      await rejectsWith(openHardwareNsm(), 'NoDevice', NO_DEVICE_MESSAGE)
      assert.equal(addonLoaded(), false, 'a missing /dev/nsm fails before the addon is loaded')
      const device = fakeDevice()
      try {
        // the addon itself always opens /dev/nsm, so past our path check it returns -1 here
        let code = ''
        await assert.rejects(openHardwareNsm({ devicePath: device.path }), (error: unknown) => {
          assert.ok(error instanceof NsmError)
          assert.ok(['OpenFailed', 'AddonUnavailable'].includes(error.code), `${error.code}: ${error.message}`)
          code = error.code
          return true
        })
        // where the addon could load, it now has: the checks above can tell
        if (code === 'OpenFailed') assert.equal(addonLoaded(), true)
      } finally {
        device.cleanup()
      }
    },
  )
})

// @peculiar/x509 registers its algorithm classes with tsyringe, and tsyringe throws at load
// time unless a Reflect metadata API is present (it expects the reflect-metadata package,
// which this project does not ship). x509's build emits no design-type metadata, so
// tsyringe only ever reads back what it wrote itself: a WeakMap-backed stand-in for the
// three functions it calls is enough. Import this module before '@peculiar/x509'.

type MetadataTarget = object
type MetadataStore = WeakMap<MetadataTarget, Map<unknown, unknown>>

const store: MetadataStore = new WeakMap()

function ownMetadata(key: unknown, target: MetadataTarget): unknown {
  return store.get(target)?.get(key)
}

function metadata(key: unknown, target: MetadataTarget): unknown {
  // walk the prototype chain as reflect-metadata's getMetadata does
  for (let t: MetadataTarget | null = target; t !== null; t = Object.getPrototypeOf(t) as MetadataTarget | null) {
    const value = ownMetadata(key, t)
    if (value !== undefined) return value
  }
  return undefined
}

function defineMetadata(key: unknown, value: unknown, target: MetadataTarget): void {
  let entries = store.get(target)
  if (entries === undefined) {
    entries = new Map()
    store.set(target, entries)
  }
  entries.set(key, value)
}

const reflect = Reflect as unknown as Record<string, unknown>
if (typeof reflect.getMetadata !== 'function') {
  reflect.getMetadata = metadata
  reflect.getOwnMetadata = ownMetadata
  reflect.defineMetadata = defineMetadata
}

/** true once the stand-in (or a real reflect-metadata) is installed */
export const reflectMetadataReady = typeof reflect.getMetadata === 'function'

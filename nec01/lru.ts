// A bounded map that forgets its least recently used entry first: every cache of the
// verifier, the service and the relay pool is capped with it, so no input can grow one
// without limit. Map iteration is insertion order, so the first key is always the one to drop.

export interface Lru<K, V> {
  readonly limit: number
  readonly size: number
  /** The value, which now counts as the most recently used. */
  get(key: K): V | undefined
  /** The value, without counting as a use: a cache read this way evicts in order of `set`. */
  peek(key: K): V | undefined
  has(key: K): boolean
  /** Stores the value as the most recently used, then drops the least recently used beyond `limit`. */
  set(key: K, value: V): void
  delete(key: K): boolean
  clear(): void
}

export function createLru<K, V>(limit: number): Lru<K, V> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`lru: limit must be a positive integer, got ${limit}`)
  const map = new Map<K, V>()
  return {
    limit,
    get size() {
      return map.size
    },
    get(key) {
      const value = map.get(key)
      if (value === undefined) return undefined
      map.delete(key)
      map.set(key, value)
      return value
    },
    peek: (key) => map.get(key),
    has: (key) => map.has(key),
    set(key, value) {
      map.delete(key)
      map.set(key, value)
      while (map.size > limit) map.delete(map.keys().next().value as K)
    },
    delete: (key) => map.delete(key),
    clear: () => map.clear(),
  }
}

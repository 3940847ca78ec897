// The bounded LRU every cache uses: the least recently used entry leaves first, a read
// through get() counts as a use and one through peek() does not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLru } from '../nec01/lru.js'

test('set beyond the limit drops the oldest entry', () => {
  const lru = createLru<string, number>(2)
  lru.set('a', 1)
  lru.set('b', 2)
  lru.set('c', 3)
  assert.equal(lru.size, 2)
  assert.equal(lru.peek('a'), undefined)
  assert.deepEqual([lru.peek('b'), lru.peek('c')], [2, 3])
})

test('get refreshes recency, peek and has do not', () => {
  const lru = createLru<string, number>(2)
  lru.set('a', 1)
  lru.set('b', 2)
  assert.equal(lru.get('a'), 1)
  lru.set('c', 3)
  assert.equal(lru.has('b'), false, 'b was the least recently used')
  assert.equal(lru.peek('a'), 1)
  assert.equal(lru.has('c'), true)
  lru.set('d', 4)
  assert.equal(lru.has('a'), false, 'peek and has did not keep a')
  assert.deepEqual([lru.peek('c'), lru.peek('d')], [3, 4])
})

test('setting a present key replaces it as the most recent and evicts nothing', () => {
  const lru = createLru<string, number>(2)
  lru.set('a', 1)
  lru.set('b', 2)
  lru.set('a', 10)
  assert.equal(lru.size, 2)
  lru.set('c', 3)
  assert.equal(lru.has('b'), false)
  assert.equal(lru.get('a'), 10)
})

test('delete, clear and a bad limit', () => {
  const lru = createLru<string, number>(3)
  lru.set('a', 1)
  lru.set('b', 2)
  assert.equal(lru.delete('a'), true)
  assert.equal(lru.delete('a'), false)
  assert.equal(lru.size, 1)
  lru.clear()
  assert.equal(lru.size, 0)
  assert.equal(lru.get('b'), undefined)
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => createLru(bad), RangeError)
})

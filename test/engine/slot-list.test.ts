/**
 * SlotList: an unordered list whose members keep their own index, with the
 * last member taking a removed one's place.
 */
import t from 'tap'
import { SlotList } from '../../lib/engine/slot-list.js'
import { prng } from '../helpers/random.js'

class Item {
  slot = -1
  other = -1
  constructor (readonly id: number) {}
}

/** What a correct list looks like: every item once, each knowing its index. */
function consistent (list: SlotList<Item, 'slot'>): boolean {
  return list.items.every((item, index) => item.slot === index) && new Set(list.items).size === list.items.length
}

t.test('add, has, remove, size: removals from the front, the back and the middle', async t => {
  const list = new SlotList<Item, 'slot'>('slot')
  const items = Array.from({ length: 6 }, (_, i) => new Item(i))
  for (const item of items) t.equal(list.add(item), true)
  t.equal(list.add(items[2]), false, 'adding twice keeps one place')
  t.equal(list.size, 6)
  for (const index of [0, 5, 2]) t.equal(list.remove(items[index]), true)
  t.equal(list.remove(items[0]), false, 'removing twice is harmless')
  t.same(new Set(list.items), new Set([items[1], items[3], items[4]]))
  t.ok(consistent(list))
  t.ok(!list.has(items[0]) && items[0].slot === -1, 'a removed item is marked out')
  t.ok(list.has(items[4]))
})

t.test('two lists on two fields hold the same items independently', async t => {
  const a = new SlotList<Item, 'slot'>('slot')
  const b = new SlotList<Item, 'other'>('other')
  const items = Array.from({ length: 4 }, (_, i) => new Item(i))
  for (const item of items) { a.add(item); b.add(item) }
  a.remove(items[0])
  b.remove(items[3])
  t.same(new Set(a.items), new Set(items.slice(1)))
  t.same(new Set(b.items), new Set(items.slice(0, 3)))
  t.ok(b.has(items[0]) && !a.has(items[0]))
})

t.test('an item of another list on the same field is not taken for a member', async t => {
  const a = new SlotList<Item, 'slot'>('slot')
  const b = new SlotList<Item, 'slot'>('slot')
  const x = new Item(1)
  const y = new Item(2)
  a.add(x)
  b.add(y)
  t.notOk(b.has(x), 'same index, other list')
  t.equal(b.remove(x), false)
  t.ok(a.has(x) && b.has(y))
})

t.test('random adds and removes agree with a Set', async t => {
  const random = prng(5)
  const list = new SlotList<Item, 'slot'>('slot')
  const reference = new Set<Item>()
  const pool = Array.from({ length: 40 }, (_, i) => new Item(i))
  const failures: string[] = []
  for (let step = 0; step < 5000; step++) {
    const item = pool[Math.floor(random() * pool.length)]
    if (random() < 0.5) {
      if (list.add(item) !== !reference.has(item)) failures.push(`step ${step}: add ${item.id}`)
      reference.add(item)
    } else {
      if (list.remove(item) !== reference.has(item)) failures.push(`step ${step}: remove ${item.id}`)
      reference.delete(item)
    }
    if (!consistent(list) || list.size !== reference.size) failures.push(`step ${step}: inconsistent`)
  }
  t.same(failures.slice(0, 5), [])
  t.same(new Set(list.items), reference)
})

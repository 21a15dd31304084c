// The WIT's packed-bytes, as the Node host packs and unpacks them.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { pack, unpack } from '../src/packed.js';

test('bytes round-trip through their words at every length, aligned or not', () => {
  for (let length = 0; length <= 40; length++) {
    const source = Uint8Array.from({ length }, (_, i) => (i * 7 + 3) % 256);
    for (const offset of [0, 3, 8]) {
      const backing = new Uint8Array(length + offset);
      backing.set(source, offset);
      const bytes = backing.subarray(offset);
      const packed = pack(bytes);
      assert.equal(packed.len, length);
      assert.equal(packed.words.length, Math.ceil(length / 8));
      if (length) assert.equal(Number(packed.words[0] & 0xffn), source[0]); // the first byte is the lowest
      assert.deepEqual(unpack(packed), source);
    }
  }
});

test('a count the words do not hold is refused', () => {
  const packed = pack(new Uint8Array(9));
  for (const len of [0, 8, 17, 100]) assert.equal(unpack({ words: packed.words, len }), null);
});

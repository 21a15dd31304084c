// The WIT's `packed-bytes`: bytes carried as little-endian 64-bit words and a byte count.
// jco copies a BigUint64Array in and out of the component in one pass, as it would a
// Uint8Array; words are what Python's host needs to be fast (see wit/nats-sink.wit).

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The words `length` bytes take. */
export const wordsFor = (length) => Math.ceil(length / 8);

/** `bytes` (a Uint8Array) as a `packed-bytes` record: a view of the same memory where it is
 * 8-byte aligned and whole words, otherwise a padded copy. */
export function pack(bytes) {
  if (!littleEndian) throw new Error('nats-sink packs bytes as little-endian words; this machine is big-endian');
  const words = wordsFor(bytes.length);
  if (bytes.byteOffset % 8 === 0 && bytes.length === words * 8) {
    return { words: new BigUint64Array(bytes.buffer, bytes.byteOffset, words), len: bytes.length };
  }
  const padded = new Uint8Array(words * 8);
  padded.set(bytes);
  return { words: new BigUint64Array(padded.buffer), len: bytes.length };
}

/** The bytes of a `packed-bytes` record from the guest, as a view of its words; null when
 * the count does not match the words. */
export function unpack({ words, len }) {
  if (!littleEndian || wordsFor(len) !== words.length) return null;
  return new Uint8Array(words.buffer, words.byteOffset, len);
}

// Upsert sinks from Node (issue 30): a changelog keeps a NATS KV bucket equal to the final
// table through a frozen server and a restart; a key's next value waits for its earlier one's
// ack; the bucket is found, created or refused as the Rust host does. Against real nats-servers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import * as natsSink from '../src/index.js';
import { natsServer } from './helpers.js';

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });
async function server() {
  const s = await natsServer('jetstream { store_dir: "{dir}/js" }');
  servers.push(s);
  return s;
}

const SCHEMA = [['id', 'integer'], ['v', 'varchar']];
const upsert = (s, bucket, extra = {}) => ({
  server_url: s.url, connect_mode: 'plain', type: 'upsert', primary_key: 'id', 'kv.bucket': bucket, sink_id: 'up', ...extra,
});
const utf8 = new TextDecoder();

/** Every live key of the bucket with its value: each key's last message, read with nats.js
 * (a key whose last message is a delete or purge is gone). */
async function bucketContents(s, bucket) {
  const nc = await connect({ servers: s.url });
  try {
    const jsm = await nc.jetstreamManager();
    const stream = `KV_${bucket}`;
    const { state } = await jsm.streams.info(stream, { subjects_filter: '>' });
    const out = {};
    for (const subject of Object.keys(state.subjects ?? {})) {
      const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
      if (!m.header || !m.header.get('KV-Operation')) out[subject.slice(`$KV.${bucket}.`.length)] = utf8.decode(m.data);
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Inserts, update pairs and deletes over `keys` keys (a seeded generator), and the table they leave. */
function changelog(keys, changes, seed) {
  let state = seed;
  const next = () => { state = (state * 1103515245 + 12345) % 2 ** 31; return state / 2 ** 31; };
  const table = new Map();
  const log = [];
  for (let n = 0; n < changes; n += 1) {
    const key = Math.floor(next() * keys);
    const value = `v${n}`;
    if (!table.has(key)) {
      log.push(['insert', [key, value]]);
      table.set(key, value);
    } else if (next() < 0.25) {
      log.push({ op: 'delete', row: [key, table.get(key)] });
      table.delete(key);
    } else {
      log.push(['update_delete', [key, table.get(key)]], ['update_insert', [key, value]]);
      table.set(key, value);
    }
  }
  return { log, table };
}

test('a changelog through a frozen server and a restart leaves the final table', async () => {
  const s = await server();
  const { log, table } = changelog(1000, 4000, 30);
  const sink = await natsSink.open(upsert(s, 'FINAL', { allow_create_stream: 'true', ack_timeout_ms: '300', 'retry.max_attempts': '1000' }), SCHEMA);
  const parts = [[]];
  for (const change of log) { // writes of some 500 changes, an update pair never split across two
    const op = Array.isArray(change) ? change[0] : change.op;
    if (parts.at(-1).length >= 500 && op !== 'update_insert') parts.push([]);
    parts.at(-1).push(change);
  }
  for (const [i, part] of parts.entries()) {
    sink.beginCheckpoint(i + 1);
    if (i === 2) {
      // Acks held back past ack_timeout_ms: every message in flight is resent.
      await s.pause();
      const write = sink.writeChanges(part);
      await new Promise((r) => setTimeout(r, 900)); // three ack timeouts, so resends happen
      s.resume();
      await write;
    } else if (i === 5) {
      await sink.writeChanges(part);
      await s.restart(); // the connection breaks with these unconfirmed
    } else {
      await sink.writeChanges(part);
    }
    await sink.flush();
  }
  await sink.close();
  const expected = Object.fromEntries([...table].map(([k, v]) => [String(k), JSON.stringify({ id: k, v })]));
  assert.deepEqual(await bucketContents(s, 'FINAL'), expected);
});

test("a key's next value waits until the earlier one is acked", async () => {
  const s = await server();
  const sink = await natsSink.open(upsert(s, 'ORDER', { allow_create_stream: 'true', ack_timeout_ms: '5000' }), SCHEMA);
  const nc = await connect({ servers: s.url });
  const proto = Object.getPrototypeOf(nc.jetstream());
  const publish = proto.publish;
  const sent = [];
  proto.publish = function recording(subject, ...rest) {
    sent.push(subject);
    return publish.call(this, subject, ...rest);
  };
  try {
    sink.beginCheckpoint(1);
    await s.pause();
    await sink.write([[1, 'first'], [2, 'other'], [1, 'second']]);
    for (let i = 0; i < 50; i += 1) await new Promise((r) => setTimeout(r, 5)); // every send it may
    // Key 2 goes out beside key 1's first value; key 1's second is held back.
    assert.deepEqual(sent, ['$KV.ORDER.1', '$KV.ORDER.2']);
    s.resume();
    await sink.flush();
    assert.deepEqual(sent, ['$KV.ORDER.1', '$KV.ORDER.2', '$KV.ORDER.1']);
  } finally {
    s.resume();
    proto.publish = publish;
    await nc.close();
    await sink.close();
  }
  assert.equal((await bucketContents(s, 'ORDER'))['1'], '{"id":1,"v":"second"}');
});

test('a missing bucket is refused, allow_create_stream creates it, a wrong stream is refused', async () => {
  const s = await server();
  await assert.rejects(natsSink.open(upsert(s, 'NOPE'), SCHEMA), (e) => e instanceof natsSink.PublishError && /KV bucket `NOPE` does not exist/.test(e.message));
  const sink = await natsSink.open(upsert(s, 'MADE', { allow_create_stream: 'true', 'kv.history': '5' }), SCHEMA);
  await sink.close();
  const nc = await connect({ servers: s.url });
  const jsm = await nc.jetstreamManager();
  const c = (await jsm.streams.info('KV_MADE')).config;
  assert.deepEqual([c.subjects, c.max_msgs_per_subject, c.allow_rollup_hdrs, c.deny_delete, c.allow_direct, c.discard],
    [['$KV.MADE.>'], 5, true, true, true, 'new']);
  await jsm.streams.add({ name: 'KV_WRONG', subjects: ['elsewhere.>'] });
  await nc.close();
  await assert.rejects(natsSink.open(upsert(s, 'WRONG', { allow_create_stream: 'true' }), SCHEMA), /does not capture `\$KV.WRONG.>`/);
});

test('bad changes and bad keys are InvalidRow, the changes before them stored', async () => {
  const s = await server();
  const sink = await natsSink.open(upsert(s, 'BAD', { allow_create_stream: 'true' }), SCHEMA);
  await assert.rejects(sink.writeChanges([['insert', [1, 'a']], ['upsert', [2, 'b']]]),
    (e) => e instanceof natsSink.InvalidRow && e.row === 1 && /'upsert'|"upsert"/.test(e.message));
  await assert.rejects(sink.writeChanges([['insert', [3, 'c']], ['update_insert', [4, 'd']]]),
    (e) => e instanceof natsSink.InvalidRow && e.row === 1);
  await sink.flush();
  await sink.close();
  assert.deepEqual(Object.keys(await bucketContents(s, 'BAD')).sort(), ['1', '3']);
  const keyed = await natsSink.open(upsert(s, 'BAD', { primary_key: 'v' }), SCHEMA);
  await assert.rejects(keyed.write([[5, 'fine'], [6, 'a b']]), (e) => e instanceof natsSink.InvalidRow && e.row === 1 && e.column === 'v');
  await keyed.flush();
  await keyed.close();
  const encoded = await natsSink.open(upsert(s, 'BAD', { primary_key: 'v', key_encoding: 'base64url' }), SCHEMA);
  await encoded.write([[6, 'a b']]);
  await encoded.flush();
  await encoded.close();
  const stored = await bucketContents(s, 'BAD');
  assert.equal(stored.fine, '{"id":5,"v":"fine"}');
  assert.equal(stored.YSBi, '{"id":6,"v":"a b"}');
});

test('an update pair at the crossing bound stays in one crossing', async () => {
  const s = await server();
  const changes = Array.from({ length: 1024 }, (_, i) => ['insert', [i, 'x']]);
  changes.push(['update_delete', [7, 'x']], ['update_insert', [7, 'moved']]);
  const sink = await natsSink.open(upsert(s, 'PAIR', { allow_create_stream: 'true' }), SCHEMA);
  await sink.writeChanges(changes);
  await sink.flush();
  await sink.close();
  assert.equal((await bucketContents(s, 'PAIR'))['7'], '{"id":7,"v":"moved"}');
});

test('the values are the bytes the Rust CLI puts', async () => {
  const s = await server();
  const rows = Array.from({ length: 50 }, (_, i) => ({ id: i, v: `é${i}\u2028"${i / 3}` }));
  const dir = mkdtempSync(join(tmpdir(), 'nats-sink-js-upsert-'));
  writeFileSync(join(dir, 'schema.json'), JSON.stringify({ columns: SCHEMA.map(([name, type]) => ({ name, type })) }));
  writeFileSync(join(dir, 'rows.jsonl'), rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const cli = process.env.NATS_SINK_CLI ?? new URL('../../target/debug/nats-sink', import.meta.url).pathname;
  const args = ['run', '--schema', join(dir, 'schema.json'), '--input', join(dir, 'rows.jsonl')];
  for (const [k, v] of Object.entries(upsert(s, 'FROMCLI', { allow_create_stream: 'true' }))) args.push('--with', `${k}=${v}`);
  execFileSync(cli, args, { stdio: 'pipe', timeout: 60_000 });
  const sink = await natsSink.open(upsert(s, 'FROMJS', { allow_create_stream: 'true' }), SCHEMA);
  await sink.write(rows);
  await sink.flush();
  await sink.close();
  const fromJs = await bucketContents(s, 'FROMJS');
  assert.equal(Object.keys(fromJs).length, 50);
  assert.deepEqual(fromJs, await bucketContents(s, 'FROMCLI'));
});

test('writeArrow never splits an update pair across its slices of a Table', async () => {
  const { Int16, Int32, Table, Utf8, vectorFromArray } = await import('apache-arrow');
  const s = await server();
  // 20,000 updates in rows of some 314 bytes of columns: about 3,339 rows a slice, an odd
  // count, so slices would end between the rows of an update.
  const n = 40_000;
  const text = (i) => (i % 2 === 0 ? 'old' : 'new') + 'x'.repeat(298);
  const table = new Table({
    id: vectorFromArray(Int32Array.from({ length: n }, (_, i) => Math.floor(i / 2)), new Int32()),
    v: vectorFromArray(Array.from({ length: n }, (_, i) => text(i)), new Utf8()),
    __op: vectorFromArray(Int16Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 4 : 3)), new Int16()),
  });
  const sink = await natsSink.open(upsert(s, 'NPAIRS', { allow_create_stream: 'true' }), SCHEMA);
  assert.equal(await sink.writeArrow(table), n);
  await sink.flush();
  await sink.close();
  const stored = await bucketContents(s, 'NPAIRS');
  assert.equal(Object.keys(stored).length, n / 2);
  for (let i = 1; i < n; i += 2) assert.equal(stored[Math.floor(i / 2)], `{"id":${Math.floor(i / 2)},"v":"${text(i)}"}`);
});

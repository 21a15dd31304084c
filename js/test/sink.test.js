// The Node host against real nats-servers on loopback: rows and Arrow in, confirmed messages
// out, refusals typed, retries counted per message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'nats';
import { Int32, Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import * as natsSink from '../src/index.js';
import { natsServer } from './helpers.js';

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });
async function server(extra = 'jetstream { store_dir: "{dir}/js" }') {
  const s = await natsServer(extra);
  servers.push(s);
  return s;
}

/** The next `n` messages on `sub`, or a failure after `ms`. */
async function take(sub, n, ms = 10_000) {
  const got = [];
  const timer = setTimeout(() => sub.unsubscribe(), ms);
  for await (const m of sub) {
    got.push(m);
    if (got.length === n) break;
  }
  clearTimeout(timer);
  assert.equal(got.length, n, `${got.length} of ${n} messages arrived within ${ms} ms`);
  return got;
}

const text = (m) => new TextDecoder().decode(m.data);

test('rows are published, acknowledged and carry message ids', async () => {
  const s = await server();
  const nc = await connect({ servers: s.url });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'orders', subjects: ['orders'] });
  const sub = nc.subscribe('orders');
  await nc.flush();
  const sink = await natsSink.open({ server_url: s.url, subject: 'orders', connect_mode: 'plain', sink_id: 'js-test' },
    [['id', 'bigint'], ['tags', 'varchar[]'], ['price', 'numeric']]);
  sink.beginCheckpoint(7);
  await sink.write([{ id: 1n, tags: ['a', 'b'], price: '12.340' }, [2, [], 5n]]);
  await sink.flush();
  const got = await take(sub, 2);
  assert.deepEqual(got.map(text), ['{"id":1,"price":"12.340","tags":["a","b"]}', '{"id":2,"price":"5","tags":[]}']);
  assert.deepEqual(got.map((m) => m.headers.get('Nats-Msg-Id')), ['js-test:7:0', 'js-test:7:1']);
  assert.equal((await jsm.streams.info('orders')).state.messages, 2);
  await sink.close();
  await nc.close();
});

test('a refused row is InvalidRow and the rows before it are confirmed', async () => {
  const s = await server();
  const nc = await connect({ servers: s.url });
  const sub = nc.subscribe('rows');
  await nc.flush();
  const sink = await natsSink.open({ server_url: s.url, subject: 'rows', connect_mode: 'plain' }, [['n', 'integer']]);
  await assert.rejects(sink.write([{ n: 1 }, { n: 2 }, { n: 2 ** 31 }, { n: 4 }]), (e) => {
    assert.ok(e instanceof natsSink.InvalidRow);
    assert.equal(e.row, 2);
    assert.equal(e.column, 'n');
    return true;
  });
  await sink.flush();
  assert.deepEqual((await take(sub, 2)).map(text), ['{"n":1}', '{"n":2}']);
  await assert.rejects(sink.write([{ n: 1.5 }]), natsSink.InvalidRow);
  await assert.rejects(sink.write([{ m: 1 }]), natsSink.InvalidRow);
  await sink.close();
  await assert.rejects(sink.write([{ n: 1 }]), (e) => e instanceof natsSink.Closed && e.after === 'close' && e.coreInDoubt === false);
  await nc.close();
});

test('writeArrow takes IPC bytes and apache-arrow Tables, the same bytes as write', async () => {
  const s = await server();
  const nc = await connect({ servers: s.url });
  const sub = nc.subscribe('arrow');
  await nc.flush();
  const schema = [['id', 'integer'], ['name', 'varchar']];
  const sink = await natsSink.open({ server_url: s.url, subject: 'arrow', connect_mode: 'plain' }, schema);
  const table = new Table({ id: vectorFromArray([1, 2], new Int32()), name: vectorFromArray(['a', 'é'], new Utf8()) });
  assert.equal(await sink.writeArrow(tableToIPC(table, 'stream')), 2);
  assert.equal(await sink.writeArrow(table), 2);
  await sink.write([[1, 'a'], [2, 'é']]);
  await sink.flush();
  const got = (await take(sub, 6)).map(text);
  assert.deepEqual(got.slice(0, 2), got.slice(4));
  assert.deepEqual(got.slice(2, 4), got.slice(4));
  await assert.rejects(sink.writeArrow(new Uint8Array([1, 2, 3])), natsSink.InvalidRow);
  await sink.close();
  await nc.close();
});

test('retry.max_attempts counts the sends of one message', async () => {
  const s = await server();
  const nc = await connect({ servers: s.url });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'gone', subjects: ['gone'] });
  const sends = nc.subscribe('gone');
  await nc.flush();
  const sink = await natsSink.open({
    server_url: s.url, subject: 'gone', connect_mode: 'plain', 'retry.max_attempts': '3',
    'retry.initial_backoff_ms': '10', 'retry.max_backoff_ms': '20', ack_timeout_ms: '300',
  }, [['n', 'integer']]);
  await sink.write([{ n: 1 }]); // the route is learnt: a stream captures `gone`
  await sink.flush();
  await jsm.streams.delete('gone'); // now every send goes unanswered (no responders)
  await sink.write([{ n: 2 }]);
  let failed;
  await assert.rejects(sink.flush(), (e) => {
    failed = e;
    // JetStream messages, resent within the budget: no core message is in doubt.
    return (e instanceof natsSink.ConnectionError || e instanceof natsSink.TimeoutError) && e.coreInDoubt === false;
  });
  const got = await take(sends, 4);
  assert.deepEqual(got.map(text), ['{"n":1}', '{"n":2}', '{"n":2}', '{"n":2}']);
  const kind = failed instanceof natsSink.ConnectionError ? 'connection' : 'timeout';
  await assert.rejects(sink.flush(), (e) => e instanceof natsSink.Closed && e.after === kind);
  await sink.close();
  await nc.close();
});

test('describe and validate answer without a server', async () => {
  const names = (await natsSink.describe()).map((o) => o.name);
  assert.ok(names.includes('server_url') && names.includes('retry.max_attempts'));
  const problems = await natsSink.validate({ server_url: '127.0.0.1:1', subject: 'a', connect_mode: 'tokn' });
  assert.deepEqual(problems.map((p) => p.name), ['connect_mode']);
  await assert.rejects(natsSink.open({ server_url: '127.0.0.1:1', subject: 'a' }, [['n', 'integer']]), natsSink.InvalidOptions);
  await assert.rejects(natsSink.open({ server_url: '127.0.0.1:1', subject: 'a', connect_mode: 'plain' }, [['n', 'intger']]), natsSink.InvalidSchema);
});

test('a large write crosses in bounded parts, in order, and counts a refused row across them', async () => {
  const s = await server('');
  const nc = await connect({ servers: s.url });
  const sub = nc.subscribe('many');
  await nc.flush();
  const sink = await natsSink.open({ server_url: s.url, subject: 'many', connect_mode: 'plain' }, [['n', 'integer']]);
  function* rows() {
    for (let n = 0; n < 3000; n += 1) yield { n };
    yield { n: 'not a number' };
    yield { n: 1 };
  }
  await assert.rejects(sink.write(rows()), (e) => e instanceof natsSink.InvalidRow && e.row === 3000);
  await sink.flush();
  const got = (await take(sub, 3000)).map(text);
  assert.deepEqual(got, Array.from({ length: 3000 }, (_, n) => `{"n":${n}}`));
  await sink.close();
  await nc.close();
});

test("the guest's refusal in a later crossing is counted from the write's first row", async () => {
  const s = await server('');
  const nc = await connect({ servers: s.url });
  const sub = nc.subscribe('later');
  await nc.flush();
  const sink = await natsSink.open({ server_url: s.url, subject: 'later', connect_mode: 'plain' }, [['p', 'numeric']]);
  const rows = Array.from({ length: 2600 }, (_, n) => ({ p: n === 2500 ? 'twelve' : String(n) }));
  await assert.rejects(sink.write(rows), (e) => e instanceof natsSink.InvalidRow && e.row === 2500 && e.column === 'p');
  await sink.flush();
  const got = await take(sub, 2500);
  assert.equal(text(got[2499]), '{"p":"2499"}');
  await sink.close();
  await nc.close();
});

test('a large Table crosses in slices, every row in order', async () => {
  const s = await server('');
  const nc = await connect({ servers: s.url });
  const sub = nc.subscribe('big-table');
  await nc.flush();
  const sink = await natsSink.open({ server_url: s.url, subject: 'big-table', connect_mode: 'plain' }, [['n', 'integer'], ['s', 'varchar']]);
  // 150,000 rows, some 8 MB of columns: past V8's limit on spread arguments, and many slices.
  const n = 150_000;
  const table = new Table({
    n: vectorFromArray(Int32Array.from({ length: n }, (_, i) => i), new Int32()),
    s: vectorFromArray(Array.from({ length: n }, () => 'x'.repeat(40)), new Utf8()),
  });
  const taken = take(sub, n, 60_000);
  assert.equal(await sink.writeArrow(table), n);
  await sink.flush();
  const got = await taken;
  const tail = `,"s":"${'x'.repeat(40)}"}`;
  assert.ok(got.every((m, i) => text(m) === `{"n":${i}${tail}`), 'every row, in order, as written');
  // An empty Table still crosses once, so its schema is checked.
  const empty = (name) => new Table({ [name]: vectorFromArray(new Int32Array(0), new Int32()), s: vectorFromArray([], new Utf8()) });
  assert.equal(await sink.writeArrow(empty('n')), 0);
  await assert.rejects(sink.writeArrow(empty('m')), natsSink.InvalidSchema);
  await sink.close();
  await nc.close();
});

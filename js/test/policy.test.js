// The host's policy and message checks, read from the generated policy.json: the Rust host's
// rules, applied to connect-configs and batches a component hands the Node host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reach, controlHeadersRefusal, headerNameRefusal, headerValueRefusal, subjectRefusal } from '../src/policy.js';

const NONE = { tag: 'none' };
const config = (servers, auth = NONE, tls = undefined, createStream = undefined) => ({ servers, auth, tls, createStream });

test('servers and files the options do not name are refused', () => {
  const reach = new Reach([['server_url', 'nats://u:p@Nats.local:4222,b:1'], ['tls.ca', '/certs/ca.pem']]);
  const tls = { caFile: '/certs/ca.pem' };
  assert.equal(reach.refusal(config(['u:p@nats.local:4222', 'b:1'], NONE, tls)), null);
  const why = reach.refusal(config(['evil.example:4222'], NONE, tls));
  assert.match(why, /policy.*evil\.example:4222/);
  assert.doesNotMatch(why, /:p@/);
  assert.match(reach.refusal(config(['b:1'], NONE, { caFile: '/etc/passwd' })), /`\/etc\/passwd`/);
  assert.notEqual(reach.refusal(config(['b:1'], { tag: 'credentials-file', val: '/etc/shadow' }, tls)), null);
  assert.notEqual(reach.refusal(config(['admin:x@nats.local:4222'], NONE, tls)), null);
});

test('TLS the options require cannot be dropped', () => {
  for (const options of [[['server_url', 'tls://a:1']], [['server_url', 'a:1'], ['tls.required', ' TRUE']], [['server_url', 'a:1'], ['tls.key', '/k']]]) {
    assert.match(new Reach(options).refusal(config(['a:1'])), /without TLS/);
  }
  assert.equal(new Reach([['server_url', 'tls://a:1']]).refusal(config(['a:1'], NONE, {})), null);
  assert.equal(new Reach([['server_url', 'a:1'], ['tls.required', 'false']]).refusal(config(['a:1'])), null);
});

test('only the credentials the options give are used', () => {
  const reach = new Reach([['server_url', 'a:1'], ['connect_mode', 'user_and_password'], ['username', 'u'], ['password', 'secret-pw']]);
  const user = (username, password) => ({ tag: 'user-password', val: { username, password } });
  assert.equal(reach.refusal(config(['a:1'], user('u', 'secret-pw'))), null);
  for (const swapped of [user('admin', 'secret-pw'), user('u', 'other'), NONE, { tag: 'token', val: 'secret-pw' }]) {
    const why = reach.refusal(config(['a:1'], swapped));
    assert.match(why, /authentication/);
    assert.doesNotMatch(why, /secret-pw/);
  }
  assert.notEqual(new Reach([['server_url', 'a:1'], ['connect_mode', 'oauth']]).refusal(config(['a:1'])), null);
  assert.notEqual(new Reach([['server_url', 'a:1']]).refusal(config(['a:1'], { tag: 'token', val: 'baked-in' })), null);
  const seed = new Reach([['server_url', 'a:1'], ['connect_mode', 'credential'], ['jwt', 'J'], ['nkey', 'S']]);
  assert.equal(seed.refusal(config(['a:1'], { tag: 'credential', val: { jwt: 'J', nkeySeed: 'S' } })), null);
  assert.notEqual(seed.refusal(config(['a:1'], { tag: 'credential', val: { jwt: 'J', nkeySeed: 'X' } })), null);
});

test('a stream is created only when the options allow it', () => {
  const asking = config(['a:1'], NONE, undefined, { name: 's', subject: 'a' });
  assert.notEqual(new Reach([['server_url', 'a:1']]).refusal(asking), null);
  assert.equal(new Reach([['server_url', 'a:1'], ['allow_create_stream', 'true']]).refusal(asking), null);
});

test('subjects and headers are checked by the Rust rules', () => {
  for (const [subject, reason] of [['$KV.bucket.key', 'key-value bucket'], ['$JS.API.STREAM.PURGE.x', 'command'], ['$SYS.REQ.x', 'command'],
    ['a.\u0000b', 'control'], ['a b', 'whitespace'], ['a.\u00a0', 'whitespace'], ['orders.>', 'wildcard'], ['a..b', 'empty token'],
    ['', 'empty'], ['a.\u0085', 'whitespace'], ['x'.repeat(4001), '4000']]) {
    assert.ok(subjectRefusal(subject)?.includes(reason), `${JSON.stringify(subject)}: ${subjectRefusal(subject)}`);
  }
  for (const subject of ['$KV', 'KV.bucket.key', 'a.$JS.API.b', 'orders.eu']) assert.equal(subjectRefusal(subject), null, subject);
  assert.equal(headerNameRefusal('X-Id'), null);
  assert.notEqual(headerNameRefusal('X Id'), null);
  assert.notEqual(headerNameRefusal('X:Id'), null);
  assert.notEqual(headerValueRefusal('a\r\nPUB other 1'), null);
  assert.notEqual(headerValueRefusal('a\u0000b'), null);
  assert.notEqual(headerValueRefusal(' a'), null);
  assert.notEqual(headerValueRefusal('a\u00a0'), null);
  assert.equal(headerValueRefusal('a b'), null);
});

test('headers JetStream acts on pass only as the guest sets them', () => {
  assert.equal(controlHeadersRefusal(true, 0, [['Nats-Msg-Id', 's:1:1'], ['KV-Operation', 'PURGE'], ['Nats-Rollup', 'sub']]), null);
  assert.equal(controlHeadersRefusal(true, 0, [['KV-Operation', 'DEL']]), null);
  assert.equal(controlHeadersRefusal(false, 9, [['Nats-Msg-Id', 's:1:1'], ['X-Source', 'a']]), null);
  for (const pairs of [[['Nats-Rollup', 'all']], [['nats-ttl', '1s']], [['NATS-EXPECTED-STREAM', 'S']],
    [['Nats-Rollup', 'sub']], [['KV-Operation', 'ROLLUP']], [['KV-Operation', 'DEL'], ['Nats-Rollup', 'sub']],
    [['Nats-Msg-Id', 'a'], ['nats-msg-id', 'b']]]) {
    assert.notEqual(controlHeadersRefusal(true, 0, pairs), null, JSON.stringify(pairs));
  }
  assert.notEqual(controlHeadersRefusal(false, 0, [['KV-Operation', 'DEL']]), null);
  assert.notEqual(controlHeadersRefusal(true, 2, [['kv-operation', 'DEL']]), null);
});

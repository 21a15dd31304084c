// The host conformance suite's Node driver: every case of tests/conformance/cases against
// real nats-servers, through this package; a report of every case at the end.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, credsAuthenticator, nkeyAuthenticator } from 'nats';
import * as natsSink from '../src/index.js';
import { natsServer } from './helpers.js';
const { Closed, DeliveryError } = natsSink;

const SUITE = fileURLToPath(new URL('../../tests/conformance/', import.meta.url));
const HOSTILE_WASM = fileURLToPath(new URL('../../target/hostile.wasm', import.meta.url));
const FIXTURES = join(SUITE, 'fixtures');
const AUTH = JSON.parse(readFileSync(join(FIXTURES, 'auth.json'), 'utf8'));
const PIECES = JSON.parse(readFileSync(join(SUITE, 'servers.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'nats-sink-conformance-'));
const pki = join(work, 'pki');
execFileSync(join(SUITE, 'make-pki.sh'), [pki]);

let hostile = null;
if (existsSync(HOSTILE_WASM)) {
  hostile = join(work, 'hostile');
  execFileSync('node', [fileURLToPath(new URL('../scripts/transpile.mjs', import.meta.url)), HOSTILE_WASM, hostile]);
}

const report = [];
after(() => {
  rmSync(work, { recursive: true, force: true });
  console.log(`\nconformance report (node host): ${report.filter((r) => r[1] === 'pass').length} passed, ${report.filter((r) => r[1] === 'skip').length} skipped`);
  for (const [name, outcome, why] of report) console.log(`  ${outcome.padEnd(4)} ${name}${why ? ` — ${why}` : ''}`);
});

/** `text` with the suite's placeholders filled. */
function fill(text, vars) {
  return text
    .replace(/\{(.)\*(\d+)\}/gu, (_, c, n) => c.repeat(Number(n)))
    .replace(/\{([a-z_]+)\}/g, (whole, key) => (key in vars ? vars[key] : whole));
}
const fillAll = (value, vars) => JSON.parse(JSON.stringify(value), (_, v) => (typeof v === 'string' ? fill(v, vars) : v));

const KIND = new Map([
  [natsSink.InvalidOptions, 'invalid-options'], [natsSink.InvalidSchema, 'invalid-schema'], [natsSink.InvalidRow, 'invalid-row'],
  [natsSink.ConnectionError, 'connection'], [natsSink.PublishError, 'publish'], [natsSink.TimeoutError, 'timeout'], [natsSink.Closed, 'closed'],
  [natsSink.ComponentError, 'trap'],
]);
const kindOf = (e) => [...KIND].find(([cls]) => e instanceof cls)?.[1] ?? `not a sink error (${e && e.constructor && e.constructor.name}: ${e && e.message})`;

function checkError(step, e, expected, vars) {
  const kind = kindOf(e);
  assert.ok(expected.kind.includes(kind), `${step}: a ${kind} error (${e.message}), expected ${expected.kind.join(' or ')}`);
  for (const t of expected.contains ?? []) assert.ok(e.message.includes(fill(t, vars)), `${step}: ${JSON.stringify(e.message)} lacks ${JSON.stringify(t)}`);
  for (const t of expected.not_contains ?? []) assert.ok(!e.message.includes(fill(t, vars)), `${step}: ${JSON.stringify(e.message)} holds ${JSON.stringify(t)}`);
  if (expected.row !== undefined) assert.equal(e.row, expected.row, `${step}: the refused row`);
  if (e instanceof DeliveryError || e instanceof Closed) {
    assert.equal(e.coreInDoubt, expected.core_in_doubt ?? false, `${step}: coreInDoubt`);
  }
  if (e instanceof Closed && expected.closed_after) {
    assert.ok(expected.closed_after.includes(e.after), `${step}: closed after ${e.after}, expected ${expected.closed_after.join(' or ')}`);
  }
}

async function observer(kase, server, vars) {
  const opts = { servers: server.url, timeout: 5000 };
  const auth = kase.observe_auth ? fillAll(kase.observe_auth, vars) : {};
  if (auth.token) opts.token = auth.token;
  if (auth.user) { opts.user = auth.user; opts.pass = auth.password; }
  if (auth.nkey_seed) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(auth.nkey_seed));
  if (auth.creds_file) opts.authenticator = credsAuthenticator(readFileSync(auth.creds_file));
  if (kase.observe_tls) opts.tls = { caFile: join(pki, 'ca.pem'), certFile: join(pki, 'client.pem'), keyFile: join(pki, 'client-key.pem') };
  return connect(opts);
}

async function runCase(kase) {
  const server = await natsServer(kase.server.map((p) => fill(PIECES[p], { ...AUTH, pki })).join('\n'));
  const vars = { ...AUTH, pki, fixtures: FIXTURES, server: server.url };
  let nc;
  let sink = null;
  try {
    nc = await observer(kase, server, vars);
    const received = [];
    const sub = nc.subscribe(kase.observe ?? 'conf.>', { callback: (err, m) => { if (!err) received.push(m); } });
    await nc.flush();
    const jsm = kase.server.includes('jetstream') ? await nc.jetstreamManager() : null;
    if (kase.stream) await jsm.streams.add({ name: kase.stream.name, subjects: kase.stream.subjects });
    for (const step of kase.steps) {
      const name = Object.keys(step).find((k) => k !== 'error');
      let failure = null;
      try {
        if (name === 'open') {
          const options = { connector: 'nats', server_url: '{server}', ...step.open.options };
          const schema = step.open.schema ?? [['id', 'integer'], ['name', 'varchar']];
          sink = await natsSink.open(fillAll(options, vars), schema, { component: kase.guest === 'hostile' ? hostile : undefined });
        } else if (name === 'checkpoint') sink.beginCheckpoint(step.checkpoint);
        else if (name === 'write') await sink.write(fillAll(step.write, vars));
        else if (name === 'flush') await sink.flush();
        else if (name === 'delete_stream') await jsm.streams.delete(step.delete_stream);
        else throw new Error(`unknown step ${name}`);
      } catch (e) {
        failure = e;
      }
      if (step.error) {
        assert.ok(failure, `${name}: succeeded, expected a ${step.error.kind.join(' or ')} error`);
        checkError(name, failure, step.error, vars);
      } else if (failure) {
        throw failure;
      }
    }
    // Everything the host published has had its round trip; the observer's own round trip
    // then brings what the server passed on.
    const deadline = Date.now() + 10_000;
    while (received.length < kase.messages.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await nc.flush();
    sub.unsubscribe();
    const seen = received.filter((m) => !m.subject.startsWith('$JS.') && !m.subject.startsWith('_INBOX.'));
    assert.deepEqual(seen.map((m) => new TextDecoder().decode(m.data)), kase.messages.map((m) => fill(m.payload, vars)), 'the payloads received');
    kase.messages.forEach((m, i) => {
      for (const [k, v] of Object.entries(m.headers ?? {})) assert.equal(seen[i].headers?.get(k), v, `message ${i}'s ${k}`);
    });
    if (kase.stream_messages !== undefined) assert.equal((await jsm.streams.info(kase.stream.name)).state.messages, kase.stream_messages);
    if (kase.created_stream !== undefined) {
      const subject = kase.created_stream?.subject ?? kase.steps[0].open.options.subject;
      const name = await jsm.streams.find(subject).catch(() => null);
      if (kase.created_stream === null) assert.equal(name, null, 'no stream was created');
      else {
        assert.ok(name, `a stream captures ${subject}`);
        const info = await jsm.streams.info(name);
        assert.equal(info.config.max_msgs, kase.created_stream.max_msgs);
        assert.equal(info.state.messages, kase.created_stream.messages);
      }
    }
  } finally {
    if (sink) await sink.close();
    if (nc) await nc.close();
    await server.stop();
  }
}

for (const file of readdirSync(join(SUITE, 'cases')).filter((f) => f.endsWith('.json')).sort()) {
  for (const kase of JSON.parse(readFileSync(join(SUITE, 'cases', file), 'utf8')).cases) {
    const name = `${file.replace(/\.json$/, '')}: ${kase.name}`;
    const skip = kase.skip?.node ?? (kase.guest === 'hostile' && !hostile ? 'target/hostile.wasm is missing: run ./scripts/build-guest.sh --hostile' : null);
    test(name, { skip: skip ?? false }, async () => {
      await runCase(kase);
      report.push([name, 'pass']);
    });
    if (skip) report.push([name, 'skip', skip]);
  }
}

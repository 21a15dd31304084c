// The build step: the component (target/nats-sink.wasm, from `./scripts/build-guest.sh`)
// transpiled by jco into js/component/, in instantiation mode so each sink has its own
// instance and transport. `node scripts/transpile.mjs [component.wasm] [out-dir]` builds
// another (the conformance suite's hostile guest).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const [wasm = here('../../target/nats-sink.wasm'), out = here('../component')] = process.argv.slice(2);
if (!existsSync(wasm)) {
  console.error(`${wasm} is missing: run ./scripts/build-guest.sh (or just build) first`);
  process.exit(1);
}
const jco = here('../node_modules/.bin/jco');
if (!existsSync(jco)) {
  console.error('jco is missing: run `npm ci` in js/ (./setup.sh does)');
  process.exit(1);
}
execFileSync(jco, ['transpile', wasm, '-o', out, '--name', 'nats-sink', '--instantiation', 'async', '--no-typescript', '--quiet'], { stdio: 'inherit' });

// The nats-sink component, transpiled by jco at build time (`npm run build`, run by
// `just build`) into `component/` in instantiation mode: each sink gets an instance of its
// own, with its own transport. The core modules are compiled once per directory.

import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_COMPONENT = fileURLToPath(new URL('../component/', import.meta.url));
const loaded = new Map();

async function load(dir) {
  if (!loaded.has(dir)) {
    loaded.set(dir, (async () => {
      let module;
      try {
        module = await import(pathToFileURL(join(dir, 'nats-sink.js')).href);
      } catch (e) {
        throw new Error(`the transpiled component is missing from ${dir}: run \`npm run build\` in js/ (or \`just build\`) (${e.message})`);
      }
      const cores = new Map();
      const getCoreModule = (name) => {
        if (!cores.has(name)) cores.set(name, readFile(join(dir, name)).then((b) => WebAssembly.compile(b)));
        return cores.get(name);
      };
      return { instantiate: module.instantiate, getCoreModule };
    })());
  }
  return loaded.get(dir);
}

/** A new instance of the component in `dir`, its transport import the `Connection` class given. */
export async function instantiate(Connection, dir = DEFAULT_COMPONENT) {
  const { instantiate: make, getCoreModule } = await load(dir);
  const instance = await make(getCoreModule, { 'nats:sink/transport': { Connection } });
  return instance.encoder;
}

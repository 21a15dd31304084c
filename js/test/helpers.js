// Real nats-servers on free loopback ports for the Node host's tests; stopped by the caller.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createServer, connect as tcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function listening(port, deadline) {
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const c = tcp(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** A nats-server with `extra` config text (`{dir}` is its own temp dir); `{url, port, dir, stop}`. */
export async function natsServer(extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'nats-sink-js-'));
  const port = await freePort();
  const conf = join(dir, 'server.conf');
  writeFileSync(conf, `listen: 127.0.0.1:${port}\nmax_payload: 1MB\n${extra.replaceAll('{dir}', dir)}\n`);
  let log = '';
  let child;
  const start = async () => {
    child = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d) => { log += d; });
    if (!(await listening(port, Date.now() + 10_000))) {
      child.kill('SIGKILL');
      throw new Error(`nats-server did not start:\n${log}`);
    }
  };
  const exit = async (signal) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  await start();
  return {
    /** Alive but silent (SIGSTOP) until `resume` (SIGCONT); resolves once the kernel shows it stopped. */
    pause: async () => {
      child.kill('SIGSTOP');
      const deadline = Date.now() + 5000;
      const state = () => readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(')').at(-1).trim()[0];
      while (!['T', 't'].includes(state())) {
        if (Date.now() > deadline) throw new Error('nats-server did not stop');
        await new Promise((r) => setTimeout(r, 1));
      }
    },
    resume: () => child.kill('SIGCONT'),
    /** Stopped and started again on the same port and store. */
    restart: async () => {
      await exit('SIGTERM');
      await start();
    },
    url: `127.0.0.1:${port}`,
    port,
    dir,
    log: () => log,
    stop: async () => {
      child.kill('SIGCONT');
      await exit('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

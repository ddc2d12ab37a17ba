/** fleetlockd as the tests run it: the built program on a free loopback port, started once /healthz answers. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort, until } from './metrics';

export async function startFleetlockd(endpoint: string, args: string[] = []): Promise<{ server: ChildProcess; base: string }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(process.execPath, [join(__dirname, '../../bin/fleetlockd.js'), '--listen', `127.0.0.1:${port}`, '--endpoint', endpoint, ...args], { stdio: 'ignore' });
  await until(async () => (await fetch(`${base}/healthz`)).status === 200, 30_000, 'fleetlockd to listen');
  return { server, base };
}

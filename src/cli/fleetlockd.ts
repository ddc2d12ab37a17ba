/**
 * fleetlockd: a FleetLock server (Zincati's reboot manager protocol) on the etcd semaphore that
 * locksmithd and locksmithctl use, so Zincati nodes and bootsmith nodes share slots.
 * Flags may come from FLEETLOCKD_* environment variables; flags win. The same listener serves
 * GET /metrics (Prometheus), /healthz and /readyz (ready while etcd answers); --tls-cert with
 * --tls-key makes it HTTPS.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { Command } from 'commander';
import { connectEtcd, splitEndpoints } from '../lock/etcd';
import { fleetLockHandler, slotsReader } from '../lock/fleetlock';
import { LockMetrics, newRegistry } from '../report/metrics';
import { metricsRoute, sharedReadiness } from '../system/metrics-http';
import { addLogOptions, announceReady, stderrLogger } from './logging';
import { addTlsOptions, readTls } from './tls';
import type { TlsFiles } from './tls';
import { addEtcdOptions, collect, etcdEnvironment, parseArgs, parseListen, standardOptions, untilStopped } from './options';
import { serverOptions } from '../system/http-server';

interface Options {
  listen: string;
  endpoint?: string[];
  group?: string[];
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
  logFormat?: string;
  logLevel?: string;
  tlsCert?: string;
  tlsKey?: string;
}

const env = (name: string) => process.env[`FLEETLOCKD_${name}`] || undefined;

/** The FLEETLOCKD_* variables read in place of flags. */
export const fleetlockdEnvironment = [
  { name: 'FLEETLOCKD_LISTEN', means: '--listen' },
  { name: 'FLEETLOCKD_ENDPOINT', means: '--endpoint (several separated with commas)' },
  { name: 'FLEETLOCKD_GROUPS', means: '--group (several separated with commas)' },
  { name: 'FLEETLOCKD_TLS_CERT', means: '--tls-cert' },
  { name: 'FLEETLOCKD_TLS_KEY', means: '--tls-key' },
  ...etcdEnvironment('FLEETLOCKD'),
];

export async function main(argv: string[]): Promise<number> {
  const program = addEtcdOptions(new Command('fleetlockd'))
    .description('Serve the FleetLock protocol on the fleet\'s etcd reboot semaphore')
    .option('--listen <host:port>', 'address to listen on', env('LISTEN') ?? '127.0.0.1:9090')
    .option('--endpoint <url>', 'etcd endpoint; repeat it, or separate several with commas (default http://127.0.0.1:2379)', collect)
    .option('--group <name>', 'serve only this group; repeat it for several (default: any valid group name)', collect)
    .exitOverride();
  addLogOptions(program);
  addTlsOptions(program);
  standardOptions(program, { environment: fleetlockdEnvironment });
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const o = program.opts<Options>();
  const log = stderrLogger('fleetlockd', o);
  const listen = parseListen(o.listen);
  if (!listen) {
    log.error(`--listen ${o.listen}: want host:port`);
    return 2;
  }
  let tls: TlsFiles | undefined;
  try {
    tls = readTls({ tlsCert: o.tlsCert ?? env('TLS_CERT'), tlsKey: o.tlsKey ?? env('TLS_KEY') });
  } catch (err) {
    log.error((err as Error).message);
    return 2;
  }
  let client: ReturnType<typeof connectEtcd>;
  try {
    client = connectEtcd({
      endpoints: splitEndpoints(o.endpoint ?? (env('ENDPOINT') ? [env('ENDPOINT')!] : [])),
      caFile: o.etcdCafile ?? env('ETCD_CAFILE'),
      certFile: o.etcdCertfile ?? env('ETCD_CERTFILE'),
      keyFile: o.etcdKeyfile ?? env('ETCD_KEYFILE'),
      username: o.etcdUsername ?? env('ETCD_USERNAME'),
      password: o.etcdPassword ?? env('ETCD_PASSWORD'),
    });
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  }
  const groups = o.group ?? env('GROUPS')?.split(',');
  // A request (headers and its body of at most 64 KiB) must arrive within 10 s: a client that
  // drips bytes does not hold a connection open for Node's default 5 minutes.
  const registry = newRegistry('fleetlockd');
  const readSlots = slotsReader(client);
  const metrics = new LockMetrics(registry, readSlots);
  for (const g of groups ?? []) metrics.watch(g);
  const fleetLock = fleetLockHandler(client, { log, metrics, ...(groups ? { groups } : {}) });
  // Ready while etcd answers a read of a semaphore this server serves (within 2 s).
  const notReady = sharedReadiness(async () => {
    await readSlots(groups?.[0] ?? 'default');
    return undefined;
  });
  const observability = metricsRoute(registry, notReady);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (!observability(req, res)) void fleetLock(req, res);
  };
  const limits = serverOptions(10_000);
  let server: ReturnType<typeof createServer>;
  try {
    server = tls ? createTlsServer({ ...limits, ...tls }, handler) : createServer(limits, handler);
  } catch (err) {
    log.error(`cannot serve HTTPS with ${o.tlsCert ?? env('TLS_CERT')}: ${(err as Error).message}`);
    client.close();
    return 1;
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, resolve);
    });
  } catch (err) {
    log.error(`cannot listen on ${o.listen}: ${(err as Error).message}`);
    client.close();
    return 1;
  }
  log(`serving FleetLock on ${tls ? 'https' : 'http'}://${o.listen}`);
  const stopped = untilStopped();
  await announceReady(log, `serving FleetLock on ${o.listen}`);
  await stopped;
  await new Promise((resolve) => server.close(resolve));
  client.close();
  return 0;
}

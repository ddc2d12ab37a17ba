/**
 * bootsmith-update-server: Omaha for a channel tree as `npm run images` lays it out, for labs,
 * tests and air-gapped fleets. Machines point SERVER= at http://HOST:PORT/v1/update/.
 * The admin endpoints (GET /admin/status: channels, halted versions, failure counts, machines;
 * POST /admin/resume?channel=C&version=V: resume a halted rollout) need --admin-token-file and
 * `Authorization: Bearer TOKEN`; without a token file they are off. GET /metrics (Prometheus),
 * /healthz and /readyz (for a load balancer) are open. --tls-cert with --tls-key serves HTTPS. SIGTERM stops it.
 *
 * Alone, it keeps its state in memory and --state-dir. With --etcd-endpoint, replicas behind a
 * load balancer keep halts, machines and events in etcd (see update/etcd-state.ts) and answer any
 * machine alike.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { Etcd3 } from 'etcd3';
import { openEtcd, splitEndpoints } from '../lock/etcd';
import { defaultEtcdPrefix, EtcdState } from '../update/etcd-state';
import { defaultServerLimits, UpdateServer } from '../update/server';
import { newRegistry, ServerMetrics } from '../report/metrics';
import { addLogOptions, announceReady, earlyLogger, stderrLogger } from './logging';
import { addTlsOptions, readTls } from './tls';
import type { TlsFiles } from './tls';
import { addEtcdOptions, collect, numberOf, parseArgs, parseListen, standardOptions, untilStopped, UsageError } from './options';

/** The shortest admin token accepted: a guessable one would hand the rollout to anyone. */
const minTokenLength = 16;

const limitsHelp = `
Limits (what a client can make the server hold or spend):
  request body          ${defaultServerLimits.maxBodyBytes} bytes; larger: 413, not read
  attribute value       ${defaultServerLimits.maxAttributeLength} characters (appid, machineid, version, track, events'); else error-invalidRequest, nothing kept
  events per request    ${defaultServerLimits.maxEventsPerRequest} read, the rest ignored
  events per machine    ${defaultServerLimits.maxEventsPerMachine} kept in memory, the newest
  machines              ${defaultServerLimits.maxMachines} kept in memory (--max-machines); past it the one seen longest ago is forgotten
                        (in etcd: trimmed to it, the least recently written first, after every tenth of it new and every minute)
  events.jsonl          ${defaultServerLimits.maxEventLogBytes} bytes, then moved to events.jsonl.1
  request time          ${defaultServerLimits.requestTimeoutMs / 1000} s for headers and body
  connections           ${defaultServerLimits.maxConnections} at once

Admin API: /admin/status and /admin/resume answer only "Authorization: Bearer TOKEN" with the
token in --admin-token-file (at least ${minTokenLength} characters; 401 without it, 403 when wrong).
Without --admin-token-file they are off (403). Machine ids are served by /admin/status only.
A version is halted when a machine it was offered to, not yet running it, reports a verification
or install error or a rollback; other errors (a download cut short) are counted in /admin/status.

Replicas: with --etcd-endpoint, halts, machines (records and newest events) and failure counts are
kept in etcd under --etcd-prefix, so replicas behind a load balancer answer any machine alike. A
halt is seen by every replica through a watch, and an offer is committed only while its release is
not halted. Each etcd call has a 5 s deadline; while etcd cannot answer, Omaha requests get 503
(the machine asks again) and nothing is offered. --state-dir is for a single server only.
`;

export async function main(argv: string[]): Promise<number> {
  const program = new Command('bootsmith-update-server')
    .description('Serve Omaha updates for a channel tree (<tree>/<channel>/<board>/<version>/flatcar_production_update.gz)')
    .requiredOption('--tree <dir>', 'the channel tree')
    .option('--listen <host:port>', 'where to listen', '127.0.0.1:8080')
    .option('--board <board>', 'the board directory of each channel', 'amd64-usr')
    .option('--state-dir <dir>', 'where events (events.jsonl) and halted versions are kept')
    .option('--admin-token-file <file>', 'a file holding the admin token; without it the admin endpoints are off')
    .option('--max-machines <n>', 'machines kept in memory (or in etcd)', numberOf('--max-machines', 'machines'), defaultServerLimits.maxMachines)
    .option('--etcd-endpoint <url>', 'keep the state in etcd, shared by replicas; repeat it, or separate several with commas', collect)
    .option('--etcd-prefix <prefix>', 'the prefix of the keys in etcd', defaultEtcdPrefix)
    .exitOverride();
  addEtcdOptions(program);
  addLogOptions(program);
  addTlsOptions(program);
  standardOptions(program).addHelpText('after', limitsHelp);
  let done: number | undefined;
  try {
    done = parseArgs(program, argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    earlyLogger('bootsmith-update-server').error(err.message);
    return 2;
  }
  if (done !== undefined) return done;
  const opts = program.opts<{
    tree: string; listen: string; board: string; stateDir?: string; adminTokenFile?: string; maxMachines: number; logFormat?: string; logLevel?: string; tlsCert?: string; tlsKey?: string;
    etcdEndpoint?: string[]; etcdPrefix: string; etcdCafile?: string; etcdCertfile?: string; etcdKeyfile?: string; etcdUsername?: string; etcdPassword?: string;
  }>();
  const log = stderrLogger('bootsmith-update-server', opts);
  const listen = parseListen(opts.listen);
  if (!listen) {
    log.error(`--listen ${opts.listen} is not HOST:PORT`);
    return 2;
  }
  if (!existsSync(opts.tree)) {
    log.error(`the channel tree ${opts.tree} does not exist (npm run images builds one)`);
    return 2;
  }
  let tls: TlsFiles | undefined;
  try {
    tls = readTls(opts);
  } catch (err) {
    log.error((err as Error).message);
    return 2;
  }
  let adminToken: string | undefined;
  if (opts.adminTokenFile) {
    try {
      adminToken = readFileSync(opts.adminTokenFile, 'utf8').trim();
    } catch (err) {
      log.error(`cannot read the admin token: ${(err as Error).message}`);
      return 2;
    }
    if (adminToken.length < minTokenLength || /\s/.test(adminToken)) {
      log.error(`the admin token in ${opts.adminTokenFile} must be at least ${minTokenLength} characters without spaces`);
      return 2;
    }
  }
  let etcd: Etcd3 | undefined;
  let state: EtcdState | undefined;
  if (opts.etcdEndpoint) {
    if (opts.stateDir) {
      log.error('--state-dir is for a single server: with --etcd-endpoint the state is in etcd');
      return 2;
    }
    const endpoints = splitEndpoints(opts.etcdEndpoint);
    try {
      etcd = await openEtcd({
        endpoints,
        ...(opts.etcdCafile ? { caFile: opts.etcdCafile } : {}),
        ...(opts.etcdCertfile ? { certFile: opts.etcdCertfile } : {}),
        ...(opts.etcdKeyfile ? { keyFile: opts.etcdKeyfile } : {}),
        ...(opts.etcdUsername ? { username: opts.etcdUsername, password: opts.etcdPassword ?? '' } : {}),
      });
    } catch (err) {
      // Already in words: a setting that does not fit, or which endpoints refused and why.
      log.error((err as Error).message);
      return 1;
    }
    state = new EtcdState(etcd, { prefix: opts.etcdPrefix, maxEventsPerMachine: defaultServerLimits.maxEventsPerMachine, maxMachines: opts.maxMachines, log });
    await state.start();
  }
  let server: UpdateServer | undefined = undefined;
  const metrics = new ServerMetrics(newRegistry('bootsmith-update-server'), () => server?.halted.size ?? 0);
  server = new UpdateServer({
    ...(state ? { state } : {}),
    tree: opts.tree,
    board: opts.board,
    ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
    ...(adminToken !== undefined ? { adminToken } : {}),
    limits: { maxMachines: opts.maxMachines },
    log,
    metrics,
    ...(tls ? { tls } : {}),
  });
  let url: string;
  try {
    url = await server.listen(listen.port, listen.host);
  } catch (err) {
    log.error(`cannot listen on ${opts.listen}: ${(err as Error).message}`);
    await state?.close();
    etcd?.close();
    return 1;
  }
  log(`serving ${opts.tree} at ${url}/v1/update/ (admin API ${adminToken !== undefined ? 'on, with a token' : 'off: no --admin-token-file'}); state ${state ? `in etcd under ${opts.etcdPrefix}` : opts.stateDir ? `in ${opts.stateDir}` : 'in memory'}`);
  const stopped = untilStopped();
  await announceReady(log, `serving ${url}/v1/update/`);
  await stopped;
  await server.close();
  await state?.close();
  etcd?.close();
  return 0;
}

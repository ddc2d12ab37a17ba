/**
 * Real etcd servers for tests: each on free loopback ports with its own data directory; one, or
 * a cluster of three for fault tests. Debian's etcd-server (3.4).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const haveEtcd = spawnSync('etcd', ['--version']).status === 0;

/** `n` distinct free loopback ports: all held open at once, so none is handed out twice. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<Server>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process: ChildProcess | undefined;
}

/** Server TLS for the client port: a certificate and key (no client certificates asked for). */
export interface ServerTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

export class EtcdCluster {
  readonly members: EtcdMember[] = [];
  private tls: ServerTls | undefined;

  static async start(size = 1, tls?: ServerTls): Promise<EtcdCluster> {
    const cluster = new EtcdCluster();
    cluster.tls = tls;
    const ports = await freePorts(2 * size);
    for (let i = 0; i < size; i++) {
      const [client, peer] = [ports[2 * i]!, ports[2 * i + 1]!];
      cluster.members.push({
        name: `m${i}`,
        clientUrl: `${tls ? 'https' : 'http'}://127.0.0.1:${client}`,
        peerUrl: `http://127.0.0.1:${peer}`,
        dataDir: mkdtempSync(join(tmpdir(), 'bootsmith-etcd-')),
        process: undefined,
      });
    }
    for (const m of cluster.members) cluster.launch(m);
    try {
      await cluster.waitHealthy();
    } catch (err) {
      cluster.stop(); // no etcd outlives a cluster that failed to start
      throw err;
    }
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.filter((m) => m.process).map((m) => m.clientUrl);
  }

  private launch(m: EtcdMember): void {
    const initial = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    m.process = spawn(
      'etcd',
      [
        '--name', m.name, '--data-dir', m.dataDir,
        '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
        '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'bootsmith-test',
        '--heartbeat-interval', '50', '--election-timeout', '500', '--log-level', 'error',
        ...(this.tls ? ['--cert-file', this.tls.certFile, '--key-file', this.tls.keyFile] : []),
      ],
      { stdio: 'ignore' },
    );
  }

  /** Waits until a member answers /health with health true (any member when none is named). */
  async waitHealthy(member?: EtcdMember, timeoutMs = 20_000): Promise<void> {
    const targets = member ? [member] : this.members.filter((m) => m.process);
    const deadline = Date.now() + timeoutMs;
    for (const m of targets) {
      for (;;) {
        if (this.tls) {
          // fetch cannot be given a CA; ask with curl.
          const r = spawnSync('curl', ['-s', '--cacert', this.tls.caFile, `${m.clientUrl}/health`], { encoding: 'utf8' });
          if (r.stdout.includes('"health":"true"')) break;
        } else {
          try {
            const res = await fetch(`${m.clientUrl}/health`);
            if (res.ok && ((await res.json()) as { health?: string }).health === 'true') break;
          } catch {
            // not up yet
          }
        }
        if (Date.now() > deadline) throw new Error(`etcd ${m.name} did not become healthy`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Kills a member (SIGKILL), as a crash would. */
  kill(m: EtcdMember): void {
    m.process?.kill('SIGKILL');
    m.process = undefined;
  }

  /** Starts a killed member again, on its data directory. */
  async restart(m: EtcdMember): Promise<void> {
    this.launch(m);
    await this.waitHealthy(m);
  }

  /** The member that leads, from each member's /v3/maintenance/status. */
  async leader(): Promise<EtcdMember | undefined> {
    for (const m of this.members.filter((x) => x.process)) {
      try {
        const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' });
        const status = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        if (status.leader && status.header?.member_id === status.leader) return m;
      } catch {
        // down
      }
    }
    return undefined;
  }

  stop(): void {
    for (const m of this.members) {
      m.process?.kill('SIGKILL');
      m.process = undefined;
      rmSync(m.dataDir, { recursive: true, force: true });
    }
  }
}

/** A CA and a server certificate for 127.0.0.1, made with openssl in `dir`. */
export function makeServerTls(dir: string): ServerTls {
  const run = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bootsmith test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  require('node:fs').writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  return { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key'), caFile: join(dir, 'ca.pem') };
}

/**
 * The update lab of real machines, one place for the machine journeys (test/machine/update.test.ts)
 * and the benchmark of the update journey (bench/machines.ts): the machine image (built, or one
 * built before), a real etcd whose semaphore has one slot, bootsmith-update-server on the host, and
 * machines of the image (test/support/machine.ts) whose user data points update_engine at the
 * server and locksmithd at etcd. The guest reaches both at 10.0.2.100 on fixed guest ports; on the
 * host both listen on free loopback ports (guestfwd joins them), so runs never clash.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Watcher } from 'etcd3';
import { Registry } from 'prom-client';
import { buildMachine, readMachineImage } from '../../images/machine';
import type { MachineRelease } from '../../images/machine';
import { defaultGroup, Semaphore } from '../../src/lock/semaphore';
import { ServerMetrics } from '../../src/report/metrics';
import { UpdateServer } from '../../src/update/server';
import { EtcdCluster } from './etcd';
import { Machine, tail } from './machine';
import type { Boot } from './machine';

/** Where the guest finds the update server and etcd: 10.0.2.100 on these ports (guestfwd). */
export const guestServerPort = 8080;
export const guestEtcdPort = 2379;

/** Lines that mean a boot went wrong, whatever the journey waits for. */
export const brokenBoot = /Kernel panic|emergency mode|Failed to start (?!bootsmith-broken)/;

/**
 * The user data of a lab machine: update_engine on `group` of the update server, checking every
 * 10 s; locksmithd with the etcd-lock strategy on the semaphore of `lockGroup` (the default group
 * when undefined).
 */
export function labUserData(name: string, group = 'stable', lockGroup?: string): string {
  return `#cloud-config
hostname: ${name}
coreos:
  update:
    group: ${group}
    server: http://10.0.2.100:${guestServerPort}/v1/update/
    reboot-strategy: etcd-lock
  locksmith:
    endpoint: http://10.0.2.100:${guestEtcdPort}
${lockGroup ? `    group: ${lockGroup}\n` : ''}  units:
    - name: update-engine.service
      drop_ins:
        - name: 50-lab-schedule.conf
          content: |
            [Service]
            ExecStart=
            ExecStart=/usr/bin/update_engine --first-check 5 --check-interval 10 --check-fuzz 0 --health-timeout 120
`;
}

/** When a machine got through each step of an update under the lock (Date.now(); NaN: not seen). */
export interface UpdateSteps {
  /** update_engine: the payload downloaded, verified and written ("is staged"). */
  staged: number;
  /** locksmithd: took the reboot slot. */
  slotTaken: number;
  /** QEMU exited: the guest rebooted. */
  rebooted: number;
  /** After the reboot: update_engine marked the new slot good, locksmithd gave the slot back. */
  good: number;
}

/**
 * Follows a machine running its current boot through an update under the lock: the boot ends in
 * the update's reboot (QEMU exits cleanly after "reboot: Restarting system"), the harness boots it
 * again, and it comes up with the new slot marked good and the reboot slot given back. Rejects when
 * a step does not come within its deadline, or the boot goes wrong.
 */
export async function updateUnderLock(m: Machine, deadlines: { journeyMs: number; bootMs: number }): Promise<{ before: Boot; after: Boot; steps: UpdateSteps }> {
  const before = m.current!;
  const steps: UpdateSteps = { staged: NaN, slotTaken: NaN, rebooted: NaN, good: NaN };
  const seen = (pattern: RegExp, step: keyof UpdateSteps) =>
    before.waitFor(pattern, deadlines.journeyMs).then(
      () => void (steps[step] = Date.now()),
      () => undefined,
    );
  const watching = [seen(/update_engine\[\d+\]: \S+ is staged; a reboot is needed/, 'staged'), seen(/locksmithd\[\d+\]: took a reboot slot/, 'slotTaken')];
  const exit = await before.waitExit(deadlines.journeyMs);
  steps.rebooted = Date.now();
  await Promise.all(watching);
  if (exit.code !== 0 || !/reboot: Restarting system/.test(before.console())) {
    throw new Error(`boot ${before.number} ended without the update's reboot (${JSON.stringify(exit)})\n${tail(before.console())}`);
  }
  const after = m.start();
  await after.waitFor(/update_engine\[\d+\]: USR-[AB] (was already )?marked successful/, deadlines.bootMs, brokenBoot);
  await after.waitFor(/locksmithd\[\d+\]: healthy after the reboot: gave back the reboot slot/, deadlines.bootMs, brokenBoot);
  steps.good = Date.now();
  return { before, after, steps };
}

const networkData = { links: [], networks: [{ id: 'net0', type: 'ipv4', ip_address: '10.0.2.15', netmask: '255.255.255.0' }], services: [] };

/** The server's metrics, counting the payload bytes it has sent (to see a download under way). */
class CountingMetrics extends ServerMetrics {
  payloadBytesSent = 0;

  override sent(bytes: number): void {
    super.sent(bytes);
    this.payloadBytesSent += bytes;
  }
}

/** One semaphore of the lab (a locksmith group) and every holder list it has had, in order. */
export class LabSemaphore {
  readonly holdersSeen: string[][] = [];

  constructor(
    readonly semaphore: Semaphore,
    private readonly watcher: Watcher,
  ) {
    watcher.on('put', (kv) => this.holdersSeen.push((JSON.parse(kv.value.toString()) as { holders: string[] }).holders));
  }

  /** The holders now, as the last change showed them. */
  get holders(): string[] {
    return this.holdersSeen.at(-1) ?? [];
  }

  cancel(): Promise<void> {
    return this.watcher.cancel().catch(() => undefined);
  }
}

export interface LabOptions {
  /** The lab's directory: the channel tree, the server's state, the machines. */
  work: string;
  /** A machine image built before (`npm run images -- machine DIR`); none: built into work/image. */
  image?: string;
}

export class Lab {
  readonly machines: Machine[] = [];
  readonly timings: Record<string, number> = {};
  private readonly semaphores = new Map<string, LabSemaphore>();
  private readonly tree: string;

  private constructor(
    readonly work: string,
    readonly imageDir: string,
    readonly releases: MachineRelease[],
    readonly etcd: EtcdCluster,
    readonly client: Etcd3,
    readonly server: UpdateServer,
    private readonly metrics: CountingMetrics,
    private readonly serverHostPort: number,
  ) {
    this.tree = join(work, 'channels');
  }

  /** The image, etcd (total_slots 1 in the default group) and the update server, ready for machines. */
  static async start(options: LabOptions): Promise<Lab> {
    const timings: Record<string, number> = {};
    let imageDir: string;
    let releases: MachineRelease[];
    if (options.image) {
      imageDir = options.image;
      releases = readMachineImage(options.image)?.releases ?? [];
    } else {
      const t = Date.now();
      const image = await buildMachine({ out: join(options.work, 'image') });
      imageDir = image.dir;
      releases = image.releases;
      timings['image build'] = (Date.now() - t) / 1000;
    }
    const etcd = await EtcdCluster.start(1);
    const client = new Etcd3({ hosts: etcd.endpoints });
    mkdirSync(join(options.work, 'channels'), { recursive: true });
    const metrics = new CountingMetrics(new Registry(), () => 0);
    const server = new UpdateServer({ tree: join(options.work, 'channels'), stateDir: join(options.work, 'server'), metrics });
    const url = await server.listen(0);
    const lab = new Lab(options.work, imageDir, releases, etcd, client, server, metrics, Number(new URL(url).port));
    Object.assign(lab.timings, timings);
    await lab.semaphore(defaultGroup);
    return lab;
  }

  /** The semaphore of a locksmith group, with one slot, watched from now on. */
  async semaphore(group: string): Promise<LabSemaphore> {
    let s = this.semaphores.get(group);
    if (!s) {
      const semaphore = new Semaphore(this.client, group);
      await semaphore.setMax(1);
      s = new LabSemaphore(semaphore, await this.client.watch().key(semaphore.key).create());
      this.semaphores.set(group, s);
    }
    return s;
  }

  /** The default group's semaphore (set up by start). */
  get lock(): LabSemaphore {
    return this.semaphores.get(defaultGroup)!;
  }

  /** A machine of the image with the lab's user data (not started). */
  machine(name: string, group = 'stable', lockGroup?: string): Machine {
    const m = new Machine({
      image: this.imageDir,
      dir: join(this.work, name),
      userData: labUserData(name, group, lockGroup),
      metaData: { uuid: `${name}-instance`, hostname: name },
      networkData,
      guestfwd: [
        { guestPort: guestServerPort, hostPort: this.serverHostPort },
        { guestPort: guestEtcdPort, hostPort: Number(new URL(this.etcd.endpoints[0]!).port) },
      ],
      cmdline: 'systemd.journald.forward_to_console=1',
    });
    this.machines.push(m);
    return m;
  }

  release(version: string): MachineRelease {
    const r = this.releases.find((x) => x.version === version);
    if (!r) throw new Error(`the image has no release ${version}`);
    return r;
  }

  /** Publishes a release built with the image into `channel` (hard links, one rename); when. */
  publish(version: string, channel = 'stable'): number {
    const r = this.release(version);
    const into = join(this.tree, channel, 'amd64-usr');
    mkdirSync(into, { recursive: true });
    const staging = join(this.work, `staging-${channel}-${version}`);
    execFileSync('cp', ['-al', r.dir, staging]);
    renameSync(staging, join(into, version));
    return Date.now();
  }

  /** Payload bytes the server has sent, to all machines, so far. */
  get payloadBytesSent(): number {
    return this.metrics.payloadBytesSent;
  }

  /** Events the server recorded per machine id, as "type/result[/code] version". */
  events(): Map<string, string[]> {
    return new Map(
      [...this.server.machines.values()].map((m) => [m.machineId, m.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ''} ${e.version}`)]),
    );
  }

  /** The tail of each machine's current console, for failure messages. */
  consoles(): string {
    return this.machines.map((m) => `--- ${m.options.dir.split('/').at(-1)}, boot ${m.boots.length} ---\n${tail(m.current?.console() ?? '', 40)}`).join('\n');
  }

  async stop(): Promise<void> {
    for (const m of this.machines) m.stop();
    await Promise.all([...this.semaphores.values()].map((s) => s.cancel()));
    this.client.close();
    this.etcd.stop();
    await this.server.close();
  }
}

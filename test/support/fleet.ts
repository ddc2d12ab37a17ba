/**
 * Simulated machines for the update journey: each has its own disk image (USR-A/USR-B), root
 * (update.conf, release, machine id, boot id, kernel command line), a real dbus-daemon as its system
 * bus, and on it stand-ins for systemd (SystemState) and logind, whose Reboot is the simulated
 * reboot: the daemons are stopped (SIGTERM, as at shutdown), gptprio picks the slot (using up a try),
 * the kernel command line names it (usr=PARTUUID=), the root's release file is read out of the
 * slot's ext4 with debugfs (as mounting /usr would show it), and the real update_engine and
 * locksmithd programs start again. A USR image that carries share/bootsmith/simulate with
 * SYSTEM_STATE=degraded boots into a degraded system: a broken release.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as dbus from 'dbus-next';
import { Etcd3 } from 'etcd3';
import type { Watcher } from 'etcd3';
import { board, makeDisk, makeKeyPair, makeRelease, makeUsrImage } from '../../images/make';
import type { KeyPair } from '../../images/make';
import { defaultGroup, Semaphore } from '../../src/lock/semaphore';
import { UpdateServer } from '../../src/update/server';
import { EtcdCluster } from './etcd';
import { bootNext } from '../../src/update/slots';
import { readGpt, sectorSize } from '../../src/update/gpt';
import { startDbusDaemon, FakeSystemdManager } from './dbus';
import type { DbusDaemon } from './dbus';

/** The project's bin/, found from here whether this runs from test/support or bundled into dist/. */
function projectBins(): string {
  let d = __dirname;
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return join(d, 'bin');
}
const bins = projectBins();

export interface FleetOptions {
  /** Omaha endpoint, such as http://127.0.0.1:PORT/v1/update/. */
  server: string;
  etcd: string;
  publicKeyFile: string;
  /** update_engine's schedule, in seconds: first check after start, interval, fuzz. */
  checks: { first: number; interval: number; fuzz: number };
  healthTimeoutS: number;
  /** The time origin of the logs. */
  t0?: number;
}

export interface Boot {
  at: number;
  slot: string;
  version: string;
}

/** Reads a file out of the ext4 in a partition of `disk`, without mounting (debugfs, with an offset). */
export function readSlotFile(disk: string, partition: number, path: string): string | undefined {
  const e = readGpt(disk).entries[partition - 1]!;
  const r = spawnSync('debugfs', ['-R', `cat ${path}`, `${disk}?offset=${Number(e.firstLba) * sectorSize}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout !== '' ? r.stdout : undefined;
}

class Logind extends dbus.interface.Interface {
  constructor(private readonly onReboot: () => void) {
    super('org.freedesktop.login1.Manager');
  }

  /** As logind: the call returns, and the machine goes down after. */
  Reboot(_interactive: boolean): void {
    setImmediate(this.onReboot);
  }
}
Logind.configureMembers({ methods: { Reboot: { inSignature: 'b', outSignature: '' } } });

export class SimMachine {
  readonly root: string;
  readonly disk: string;
  readonly machineId: string;
  readonly boots: Boot[] = [];
  /** Times of the Reboot calls, whoever made them. */
  readonly reboots: number[] = [];
  readonly log: string[] = [];
  private dbusd: DbusDaemon | undefined;
  private bus: dbus.MessageBus | undefined;
  private systemd = new FakeSystemdManager('org.freedesktop.systemd1.Manager');
  private procs: ChildProcess[] = [];
  private rebooting = false;
  private down = false;

  constructor(
    readonly name: string,
    dir: string,
    templateDisk: string,
    private readonly opts: FleetOptions,
    group = 'stable',
  ) {
    this.root = join(dir, name);
    for (const d of ['etc/coreos', 'usr/share/coreos', 'var/lib/update_engine', 'run']) mkdirSync(join(this.root, d), { recursive: true });
    this.disk = join(this.root, 'disk.img');
    copyFileSync(templateDisk, this.disk);
    this.machineId = createHash('md5').update(`${name}-${dir}`).digest('hex');
    writeFileSync(join(this.root, 'etc/machine-id'), `${this.machineId}\n`);
    this.setGroup(group);
  }

  get address(): string {
    return this.dbusd!.address;
  }

  /** update.conf: the channel, the update server, and locksmithd's etcd-lock strategy. */
  setGroup(group: string): void {
    writeFileSync(join(this.root, 'etc/coreos/update.conf'), `GROUP=${group}\nSERVER=${this.opts.server}\nREBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT=${this.opts.etcd}\n`);
  }

  /** The version running now. */
  get version(): string | undefined {
    return this.boots.at(-1)?.version;
  }

  private say(line: string): void {
    const at = ((Date.now() - (this.opts.t0 ?? 0)) / 1000).toFixed(2);
    this.log.push(`${at} ${this.name} ${line}`);
    appendFileSync(join(this.root, 'journal.log'), `${at} ${line}\n`);
  }

  /** Power on: the bus and the stand-ins, then a boot. */
  async powerOn(): Promise<void> {
    this.dbusd = await startDbusDaemon();
    dbus.setBigIntCompat(true);
    this.bus = dbus.sessionBus({ busAddress: this.dbusd.address });
    await this.bus.requestName('org.freedesktop.login1', 0);
    await this.bus.requestName('org.freedesktop.systemd1', 0);
    this.bus.export('/org/freedesktop/login1', new Logind(() => void this.reboot()));
    this.bus.export('/org/freedesktop/systemd1', this.systemd);
    await this.boot();
  }

  private async boot(): Promise<void> {
    const choice = bootNext(this.disk);
    const version = /COREOS_RELEASE_VERSION=(\S+)/.exec(readSlotFile(this.disk, choice.partition, '/share/coreos/release') ?? '')?.[1];
    if (!version) throw new Error(`${this.name}: ${choice.label} holds no release`);
    const simulated = readSlotFile(this.disk, choice.partition, '/share/bootsmith/simulate') ?? '';
    const finalState = /SYSTEM_STATE=(\S+)/.exec(simulated)?.[1] ?? 'running';
    writeFileSync(join(this.root, 'usr/share/coreos/release'), `COREOS_RELEASE_VERSION=${version}\nCOREOS_RELEASE_BOARD=amd64-usr\n`);
    writeFileSync(join(this.root, 'cmdline'), `root=LABEL=ROOT usr=PARTUUID=${choice.uniqueGuid.toLowerCase()} console=ttyS0\n`);
    writeFileSync(join(this.root, 'boot_id'), `${randomUUID()}\n`);
    this.boots.push({ at: Date.now(), slot: choice.label, version });
    this.say(`booted ${choice.label} (${version})${choice.decremented ? ', a try used up' : ''}`);
    this.systemd.state = 'starting';
    // The boot reaches its target shortly after the daemons start.
    setTimeout(() => (this.systemd.state = finalState), 100);
    this.start('update_engine', [
      '--root', this.root, '--bus', this.address, '--disk', this.disk, '--cmdline-file', join(this.root, 'cmdline'),
      '--state-dir', join(this.root, 'var/lib/update_engine'), '--boot-id-file', join(this.root, 'boot_id'),
      '--public-key', this.opts.publicKeyFile, '--health-timeout', String(this.opts.healthTimeoutS),
      '--first-check', String(this.opts.checks.first), '--check-interval', String(this.opts.checks.interval), '--check-fuzz', String(this.opts.checks.fuzz),
    ]);
    this.start('locksmithd', ['--root', this.root, '--bus', this.address, '--machine-id-file', join(this.root, 'etc/machine-id'), '--pid-file', join(this.root, 'run/locksmithd.pid')]);
  }

  private start(program: string, args: string[]): void {
    const child = spawn(process.execPath, [join(bins, `${program}.js`), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let rest = '';
    child.stderr!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop()!;
      for (const l of lines) this.say(l);
    });
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGTERM') this.say(`${program} exited (${code ?? signal})`);
    });
    this.procs.push(child);
  }

  /** Stops the daemons as a shutdown does: SIGTERM, and SIGKILL after 10 s. */
  private async stopDaemons(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
            p.once('exit', () => (clearTimeout(kill), resolve()));
            p.kill('SIGTERM');
          }),
      ),
    );
    this.procs = [];
  }

  private async reboot(): Promise<void> {
    this.reboots.push(Date.now());
    if (this.rebooting || this.down) return;
    this.rebooting = true;
    this.say('reboot');
    try {
      await this.stopDaemons();
      if (!this.down) await this.boot();
    } catch (err) {
      this.say(`boot failed: ${(err as Error).message}`);
    } finally {
      this.rebooting = false;
    }
  }

  async powerOff(): Promise<void> {
    this.down = true;
    await this.stopDaemons();
    this.bus?.disconnect();
    this.dbusd?.stop();
  }

  /**
   * update_engine_client against this machine's update_engine. Not spawnSync: the stand-ins of
   * every machine answer from this process, and must go on answering meanwhile.
   */
  client(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [join(bins, 'update_engine_client.js'), '--bus', this.address, '--wait', '5', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  journal(): string {
    return readFileSync(join(this.root, 'journal.log'), 'utf8');
  }
}

/** Polls `check` every 100 ms until true; rejects after `ms` with `what`. */
export function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        if (await check()) return resolve();
      } catch {
        // not yet
      }
      if (Date.now() > deadline) return reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`));
      setTimeout(() => void tick(), 100);
    };
    void tick();
  });
}

export interface JourneyOptions {
  machines: number;
  totalSlots: number;
  checks: FleetOptions['checks'];
  healthTimeoutS: number;
}

/**
 * A fleet on one host: a real etcd (the reboot semaphore with `totalSlots`), one update server on
 * loopback over a channel tree, and the simulated machines, all on 1000.0.0 in USR-A. Every change
 * of the semaphore is watched, so the most holders ever seen at once is known.
 */
export class Journey {
  readonly machines: SimMachine[] = [];
  readonly holdersSeen: string[][] = [];
  server!: UpdateServer;
  url!: string;
  etcd!: EtcdCluster;
  client!: Etcd3;
  semaphore!: Semaphore;
  private watcher: Watcher | undefined;
  private keys!: KeyPair & { privatePath: string; publicPath: string };
  private readonly tree: string;
  readonly t0 = Date.now();

  private constructor(readonly dir: string) {
    this.tree = join(dir, 'channels');
  }

  static async start(dir: string, o: JourneyOptions): Promise<Journey> {
    const j = new Journey(dir);
    try {
      await j.setUp(o);
    } catch (err) {
      await j.stop();
      throw err;
    }
    return j;
  }

  private async setUp(o: JourneyOptions): Promise<void> {
    mkdirSync(this.tree, { recursive: true });
    this.keys = makeKeyPair(join(this.dir, 'keys'));
    this.etcd = await EtcdCluster.start(1);
    this.client = new Etcd3({ hosts: this.etcd.endpoints });
    this.semaphore = new Semaphore(this.client, defaultGroup);
    await this.semaphore.setMax(o.totalSlots);
    this.watcher = await this.client.watch().key(this.semaphore.key).create();
    this.watcher.on('put', (kv) => this.holdersSeen.push((JSON.parse(kv.value.toString()) as { holders: string[] }).holders));
    this.server = new UpdateServer({ tree: this.tree, stateDir: join(this.dir, 'server') });
    this.url = await this.server.listen(0);
    const image = join(this.dir, 'usr-1000.0.0.img');
    makeUsrImage(image, '1000.0.0');
    const template = join(this.dir, 'template.img');
    makeDisk(template, 32, image);
    const fleet: FleetOptions = { server: `${this.url}/v1/update/`, etcd: this.etcd.endpoints[0]!, publicKeyFile: this.keys.publicPath, checks: o.checks, healthTimeoutS: o.healthTimeoutS, t0: this.t0 };
    for (let i = 0; i < o.machines; i++) this.machines.push(new SimMachine(`m${String(i + 1).padStart(2, '0')}`, this.dir, template, fleet));
    for (const m of this.machines) await m.powerOn();
  }

  /**
   * Builds a signed release aside and moves it into the tree in one rename; returns the moment it
   * became visible. `files` go into its USR image (share/bootsmith/simulate makes a broken one).
   */
  async publish(channel: string, version: string, files: Record<string, string> = {}): Promise<number> {
    const staging = join(this.dir, 'staging');
    const made = await makeRelease(staging, channel, version, [this.keys.privateKey], this.dir, files);
    const into = join(this.tree, channel, board);
    mkdirSync(into, { recursive: true });
    const at = Date.now();
    renameSync(made.dir, join(into, version));
    return at;
  }

  maxHolders(): number {
    return Math.max(0, ...this.holdersSeen.map((h) => h.length));
  }

  async holders(): Promise<string[]> {
    return (await this.semaphore.read()).value.holders;
  }

  logs(): string {
    return this.machines.flatMap((m) => m.log).sort((a, b) => Number.parseFloat(a) - Number.parseFloat(b)).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(this.machines.map((m) => m.powerOff()));
    await this.watcher?.cancel().catch(() => undefined);
    this.client?.close();
    this.etcd?.stop();
    await this.server?.close();
  }
}

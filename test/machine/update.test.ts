/**
 * Journey 2, on real machines: two VMs of the image of images/machine.ts share one real etcd
 * (total_slots 1) and one bootsmith-update-server on the host, which they reach through guestfwd
 * (10.0.2.100). Their user data points update.conf at the server, locksmithd at etcd with the
 * etcd-lock strategy, and shortens update_engine's check schedule for the lab. Once both run
 * version N, N+1 is published: each machine downloads, verifies and stages it; locksmithd takes
 * the slot, update_engine finalizes, logind reboots (QEMU exits: -no-reboot), the harness's boot
 * selection picks USR-B, the machine comes up on N+1, passes the health gate, marks USR-B good and
 * gives the slot back; then the other machine does the same.
 *
 * BOOTSMITH_MACHINE_IMAGE=DIR uses an image built before (`npm run images -- machine DIR`) instead
 * of building one.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Watcher } from 'etcd3';
import { buildMachine, readMachineImage, releaseVersions } from '../../images/machine';
import type { MachineRelease } from '../../images/machine';
import { defaultGroup, Semaphore } from '../../src/lock/semaphore';
import { UpdateServer } from '../../src/update/server';
import { EtcdCluster, haveEtcd } from '../support/etcd';
import { canBootMachines, Machine, tail, until } from '../support/machine';
import type { Boot } from '../support/machine';

const ready = canBootMachines && haveEtcd;
if (!ready) test.skip('the update journey of real machines needs what booting one needs (see first-boot.test.ts) and etcd', () => undefined);

// A boot takes 45-80 s on a loaded machine and two run at once; the deadlines allow much more.
const bootDeadline = 300_000;
const journeyDeadline = 20 * 60_000;
const serverPort = 8080;
const etcdPort = 2379;
const from = '2000.0.0';
const next = releaseVersions.find((r) => !r.broken)!.version;
const bad = releaseVersions.find((r) => r.broken)!.version;

/** The user data of a lab machine: the update server and etcd on the host, checks every 10 s. */
const userData = (name: string) => `#cloud-config
hostname: ${name}
coreos:
  update:
    group: stable
    server: http://10.0.2.100:${serverPort}/v1/update/
    reboot-strategy: etcd-lock
  locksmith:
    endpoint: http://10.0.2.100:${etcdPort}
  units:
    - name: update-engine.service
      drop_ins:
        - name: 50-lab-schedule.conf
          content: |
            [Service]
            ExecStart=
            ExecStart=/usr/bin/update_engine --first-check 5 --check-interval 10 --check-fuzz 0 --health-timeout 120
`;

const networkData = { links: [], networks: [{ id: 'net0', type: 'ipv4', ip_address: '10.0.2.15', netmask: '255.255.255.0' }], services: [] };
const broken = /Kernel panic|emergency mode|Failed to start (?!bootsmith-broken)/;

(ready ? describe : describe.skip)('journey 2: two real machines update under the etcd reboot lock', () => {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-update-'));
  const tree = join(work, 'channels');
  let imageDir: string;
  let releases: MachineRelease[];
  let etcd: EtcdCluster;
  let client: Etcd3;
  let watcher: Watcher | undefined;
  let server: UpdateServer;
  const machines: Machine[] = [];
  const holdersSeen: string[][] = [];
  const timings: Record<string, number> = {};
  let published = 0;

  /** The releases built with the image, published on demand into the server's tree (hard links, one rename). */
  const publish = (version: string, channel = 'stable') => {
    const r = releases.find((x) => x.version === version);
    if (!r) throw new Error(`the image has no release ${version}`);
    const into = join(tree, channel, 'amd64-usr');
    mkdirSync(into, { recursive: true });
    const staging = join(work, `staging-${version}`);
    execFileSync('cp', ['-al', r.dir, staging]);
    renameSync(staging, join(into, version));
    return Date.now();
  };

  /** Events the server recorded per machine id, as "type/result[/code] version". */
  const events = () =>
    new Map([...server.machines.values()].map((m) => [m.machineId, m.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ''} ${e.version}`)]));

  const consoles = () => machines.map((m, i) => `--- machine ${i + 1}, boot ${m.boots.length} ---\n${tail(m.current?.console() ?? '', 40)}`).join('\n');

  beforeAll(async () => {
    let t = Date.now();
    const prebuilt = process.env['BOOTSMITH_MACHINE_IMAGE'];
    if (prebuilt) {
      imageDir = prebuilt;
      releases = readMachineImage(prebuilt)?.releases ?? [];
    } else {
      const image = await buildMachine({ out: join(work, 'image') });
      imageDir = image.dir;
      releases = image.releases;
      timings['image build'] = (Date.now() - t) / 1000;
    }
    etcd = await EtcdCluster.start(1);
    client = new Etcd3({ hosts: etcd.endpoints });
    const semaphore = new Semaphore(client, defaultGroup);
    await semaphore.setMax(1);
    watcher = await client.watch().key(semaphore.key).create();
    watcher.on('put', (kv) => holdersSeen.push((JSON.parse(kv.value.toString()) as { holders: string[] }).holders));
    mkdirSync(tree, { recursive: true });
    server = new UpdateServer({ tree, stateDir: join(work, 'server') });
    const url = await server.listen(0);
    const etcdHostPort = Number(new URL(etcd.endpoints[0]!).port);
    const serverHostPort = Number(new URL(url).port);
    for (const name of ['machine-01', 'machine-02']) {
      machines.push(
        new Machine({
          image: imageDir,
          dir: join(work, name),
          userData: userData(name),
          metaData: { uuid: `${name}-instance`, hostname: name },
          networkData,
          guestfwd: [
            { guestPort: serverPort, hostPort: serverHostPort },
            { guestPort: etcdPort, hostPort: etcdHostPort },
          ],
          cmdline: 'systemd.journald.forward_to_console=1',
        }),
      );
    }
    t = Date.now();
    for (const m of machines) m.start();
    // Both on N and checking with the server, locksmithd waiting on etcd-lock: then N+1 is published.
    await until(() => server.machines.size === 2, bootDeadline, 'both machines to check with the update server', consoles);
    for (const m of machines) await m.current!.waitFor(/locksmithd\[\d+\]: starting: strategy etcd-lock/, bootDeadline, broken);
    timings['boot to first check (both)'] = (Date.now() - t) / 1000;
  }, journeyDeadline);

  afterAll(async () => {
    for (const m of machines) m.stop();
    await watcher?.cancel().catch(() => undefined);
    client?.close();
    etcd?.stop();
    await server?.close();
    if (process.env.MACHINE_TIMINGS) process.stdout.write(`update journey timings: ${JSON.stringify(timings)}\n`);
    if (!process.env['BOOTSMITH_KEEP_MACHINE']) rmSync(work, { recursive: true, force: true });
  });

  test(`N+1 (${next}) reaches both machines, one reboot at a time`, async () => {
    expect(machines.map((m) => m.current!.choice.label)).toEqual(['USR-A', 'USR-A']);
    published = publish(next);
    const reboots: Boot[] = [];
    // Each machine: its first boot ends in the update's reboot; the harness boots it again.
    const drive = async (m: Machine) => {
      const first = m.current!;
      const exit = await first.waitExit(journeyDeadline);
      expect(exit.code).toBe(0);
      expect(first.console()).toMatch(/reboot: Restarting system/);
      const second = m.start();
      reboots.push(second);
      await second.waitFor(/update_engine\[\d+\]: USR-B marked successful/, bootDeadline, broken);
      await second.waitFor(/locksmithd\[\d+\]: healthy after the reboot: gave back the reboot slot/, bootDeadline, broken);
      timings[`publish to marked good (${m.options.dir.slice(-10)})`] = (Date.now() - published) / 1000;
    };
    await Promise.all(machines.map(drive));
    timings['publish to both marked good'] = (Date.now() - published) / 1000;
    await until(() => [...events().values()].every((e) => e.includes(`3/2 ${next}`)), 120_000, 'both machines to report from N+1', consoles);
    expect(reboots.map((b) => b.choice.label)).toEqual(['USR-B', 'USR-B']);
    for (const b of reboots) expect(b.console()).toMatch(new RegExp(`Welcome to .*Bootsmith Machine ${next.replace(/\./g, '\\.')}`));

    // The semaphore: never two holders; each machine held it once; nobody holds it now.
    expect(Math.max(...holdersSeen.map((h) => h.length))).toBe(1);
    expect(new Set(holdersSeen.flat()).size).toBe(2);
    const last = holdersSeen.at(-1)!;
    expect(last).toEqual([]);

    // Power off both, then read the GPT and the machine ids.
    await Promise.all(machines.map((m) => m.current!.powerOff()));
    const byId = events();
    for (const m of machines) {
      expect(m.slotFlags('USR-B')).toEqual({ priority: 2, tries: 0, successful: true });
      expect(m.slotFlags('USR-A')).toEqual({ priority: 1, tries: 0, successful: true });
      const id = m.root().read('/etc/machine-id')?.trim() ?? '';
      expect(byId.get(id)).toEqual([`13/1 ${from}`, `14/1 ${from}`, `3/1 ${from}`, `3/2 ${next}`]);
    }
  }, journeyDeadline);

  test(`a broken N+2 (${bad}): the first machine to boot it fails the health gate, rolls back to N+1, reports it; the rollout halts`, async () => {
    // Both boot again on N+1 (USR-B); the harness boots again whatever reboots.
    let stopping = false;
    const supervise = async (m: Machine) => {
      for (;;) {
        await m.current!.exited;
        if (stopping || !/reboot: Restarting system/.test(m.current!.console())) return;
        m.start();
      }
    };
    for (const m of machines) m.start();
    const supervised = machines.map(supervise);
    for (const m of machines) await m.current!.waitFor(/update_engine\[\d+\]: USR-B was already marked successful/, bootDeadline, broken);
    const holdersBefore = holdersSeen.length;
    published = publish(bad);
    await until(() => server.halted.has(`stable/${bad}`), journeyDeadline, `the server to halt stable/${bad}`, consoles);
    timings['publish N+2 to halted'] = (Date.now() - published) / 1000;
    const tried = machines.filter((m) => m.boots.some((b) => b.choice.label === 'USR-A' && b.number > 2));
    expect(tried).toHaveLength(1);
    const first = tried[0]!;
    const other = machines.find((m) => m !== first)!;
    // The first: N+2 on USR-A for its one try, degraded, rebooted back to USR-B, which says so.
    await until(() => /this boot is a rollback: USR-A was finalized but did not boot successfully; running USR-B/.test(first.current!.console()), bootDeadline, 'the rollback boot', consoles);
    await first.current!.waitFor(/locksmithd\[\d+\]: healthy after the reboot: gave back the reboot slot/, bootDeadline, broken);
    const trial = first.boots.find((b) => b.choice.label === 'USR-A' && b.number > 2)!;
    expect(trial.console()).toMatch(new RegExp(`Welcome to .*Bootsmith Machine ${bad.replace(/\./g, '\\.')}`));
    expect(trial.console()).toMatch(/not healthy after 120 s on the trial boot of USR-A \(system degraded\): rebooting to roll back to USR-B/);
    expect(first.current!.choice.label).toBe('USR-B');
    // The other staged it too, but its Finalize found the rollout halted: no reboot. locksmithd
    // retries a held lock with a backoff of up to 5 minutes, so this may take that long.
    await other.current!.waitFor(new RegExp(`no longer offers ${bad.replace(/\./g, '\\.')}.*not finalized`), 10 * 60_000, broken);
    expect(other.boots).toHaveLength(3);
    await until(() => holdersSeen.at(-1)?.length === 0, 120_000, 'the slot given back', consoles);
    expect(Math.max(...holdersSeen.slice(holdersBefore).map((h) => h.length))).toBe(1);

    stopping = true;
    await Promise.all(machines.map((m) => m.current!.powerOff()));
    await Promise.all(supervised);
    for (const m of machines) expect(m.slotFlags('USR-B')).toEqual({ priority: 2, tries: 0, successful: true });
    expect(first.slotFlags('USR-A')).toMatchObject({ tries: 0, successful: false });
    expect(other.slotFlags('USR-A').priority).toBeLessThan(2);
    const id = first.root().read('/etc/machine-id')?.trim() ?? '';
    expect(events().get(id)?.slice(4)).toEqual([`13/1 ${next}`, `14/1 ${next}`, `3/1 ${next}`, `3/0/44 ${next}`]);
  }, journeyDeadline);
});

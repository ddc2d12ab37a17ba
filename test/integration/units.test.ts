/**
 * The units shipped in the package: installed with `coreos-cloudinit --install-units
 * --with-daemons` (so each ExecStart= names the programs of this checkout), checked with
 * `systemd-analyze verify`, and the daemons' readiness under a real systemd (a user manager in a
 * private mount namespace): a Type=notify unit is active only once its daemon is ready, and a
 * daemon that fails before then fails the start.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asRoot } from '../support/roots';
import { freePort } from '../support/metrics';
import { keyPair, updateMachine, updateTools } from '../support/update';
import { notifyReady } from '../../src/system/notify';

const repo = join(__dirname, '../..');
const harness = join(__dirname, '../support/systemd-user.sh');
const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const canRunSystemd = asRoot && spawnSync('unshare', ['-m', 'true']).status === 0;
if (!haveAnalyze) test.skip('needs systemd-analyze; CI has it', () => undefined);
if (!canRunSystemd) test.skip('the readiness tests need root and unshare -m; CI runs them', () => undefined);

/** The shipped units, installed into a temporary root's /units with the daemons'. */
function installAll(): { root: string; names: string[]; output: ReturnType<typeof spawnSync> } {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-units-'));
  const output = spawnSync(process.execPath, [join(repo, 'bin/coreos-cloudinit.js'), '--install-units', '--with-daemons', '--root', root, '--unit-dir', '/units'], { encoding: 'utf8' });
  const names = readdirSync(join(root, 'units')).filter((n) => !n.endsWith('.wants'));
  return { root, names, output };
}

/** The command line of a unit's ExecStart=, split on spaces (the units' paths have none here). */
function execStart(unitText: string): string[] {
  const line = unitText.split('\n').find((l) => l.startsWith('ExecStart='));
  return line ? line.slice('ExecStart='.length).split(' ') : [];
}

(haveAnalyze ? describe : describe.skip)('the shipped units', () => {
  const installed = installAll();
  const unitsDir = join(installed.root, 'units');

  test('--install-units --with-daemons writes every shipped unit and the bus policy', () => {
    expect(installed.output.status).toBe(0);
    expect(installed.output.stderr).toBe('');
    const shipped = [...readdirSync(join(repo, 'units')), ...readdirSync(join(repo, 'services')).filter((n) => n.endsWith('.service'))].sort();
    expect([...installed.names].sort()).toEqual(shipped);
    expect(shipped).toEqual(expect.arrayContaining(['locksmithd.service', 'update-engine.service', 'fleetlockd.service', 'bootsmith-update-server.service', 'user-config.target']));
    expect(readFileSync(join(installed.root, 'etc/dbus-1/system.d/com.coreos.update1.conf'), 'utf8')).toBe(readFileSync(join(repo, 'services/com.coreos.update1.conf'), 'utf8'));
  });

  test('the shipped units name programs by placeholder on ExecStart= lines only', () => {
    for (const dir of ['units', 'services']) {
      for (const name of readdirSync(join(repo, dir)).filter((n) => n.endsWith('.service'))) {
        const lines = readFileSync(join(repo, dir, name), 'utf8').split('\n').filter((l) => /@[A-Z_]+@/.test(l));
        expect(lines.length).toBeGreaterThan(0);
        for (const line of lines) expect(line).toMatch(/^ExecStart=@[A-Z_]+@( |$)/);
      }
    }
  });

  test('every ExecStart= names executables that exist (this node and the package\'s bin/PROGRAM.js)', () => {
    for (const name of installed.names.filter((n) => n.endsWith('.service'))) {
      const text = readFileSync(join(unitsDir, name), 'utf8');
      expect(text).not.toMatch(/@[A-Z_]+@/);
      const [program, script] = execStart(text);
      expect(program).toBe(process.execPath);
      expect(script).toMatch(new RegExp(`^${repo}/bin/[\\w-]+\\.js$`));
      accessSync(script!, constants.R_OK);
    }
  });

  test('systemd-analyze verify passes every unit without a word', () => {
    const r = spawnSync('systemd-analyze', ['verify', ...installed.names.map((n) => join(unitsDir, n))], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('');
    expect(r.status).toBe(0);
  });

  test('the daemons\' readiness as their units declare it', () => {
    const service = (name: string) => readFileSync(join(unitsDir, name), 'utf8');
    for (const name of ['locksmithd.service', 'fleetlockd.service', 'bootsmith-update-server.service']) {
      expect(service(name)).toMatch(/^Type=notify\nNotifyAccess=all$/m);
    }
    expect(service('update-engine.service')).toMatch(/^Type=dbus\nBusName=com\.coreos\.update1$/m);
  });
});

test('notifyReady: nothing without NOTIFY_SOCKET; a socket nobody reads is an error that says so', async () => {
  await expect(notifyReady({}, 'ready')).resolves.toBe(false);
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-notify-'));
  await expect(notifyReady({ NOTIFY_SOCKET: join(dir, 'missing') }, 'ready')).rejects.toThrow(/^cannot tell systemd this daemon is ready: /);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `script` beside a real systemd user manager (test/support/systemd-user.sh) and returns the
 * values it reports as `@@ key=value` lines.
 */
function inNamespace(script: string): Record<string, string> {
  const r = spawnSync('unshare', ['-m', 'bash', harness, script], { encoding: 'utf8', timeout: 120_000 });
  const values: Record<string, string> = {};
  for (const line of `${r.stdout}`.split('\n')) {
    const m = /^@@ ([\w.-]+)=(.*)$/.exec(line);
    if (m) values[m[1]!] = m[2]!;
  }
  if (Object.keys(values).length === 0) throw new Error(`the namespace script reported nothing:\n${r.stdout}\n${r.stderr}`);
  return values;
}

/**
 * A drop-in for a test under the user manager in this container: the conditions reset (the units
 * skip containers), and the sandboxing a user manager in a container cannot set up (226/NAMESPACE)
 * turned off; everything else (Type=, NotifyAccess=, the capability bounding set, ...) as shipped.
 */
const containerDropIn = '[Unit]\nConditionVirtualization=\n[Service]\nProtectHome=no\nProtectKernelTunables=no\nProtectKernelLogs=no\nRestart=no\n';

/** Shell lines that report a unit's state as `@@ PREFIX.Property=value`. */
const report = (unit: string, prefix: string) =>
  `systemctl --user show -p ActiveState,SubState,Result,StatusText ${unit} | sed 's/^/@@ ${prefix}./'`;

(canRunSystemd && haveAnalyze ? describe : describe.skip)('readiness under systemd', () => {
  const installed = installAll();
  const unitsDir = join(installed.root, 'units');

  test('locksmithd: activating until it is ready (settings read, bus connected, agent started), then active; failing before then fails the start', () => {
    const command = execStart(readFileSync(join(unitsDir, 'locksmithd.service'), 'utf8')).join(' ');
    const dropIns = '/etc/systemd/user/locksmithd.service.d';
    const phase = (bus: string, machineIdFile: string) => `printf '[Service]\\nEnvironment=BUS=${bus} MID=${machineIdFile}\\n' > ${dropIns}/phase.conf; systemctl --user daemon-reload`;
    const values = inNamespace(
      [
        `cp ${unitsDir}/locksmithd.service /etc/systemd/user/`,
        // locksmithd.service requires update-engine.service; a stand-in that is simply there.
        "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' > /etc/systemd/user/update-engine.service",
        `mkdir -p ${dropIns} /run/lsd`,
        'printf "machine-x\\n" > /run/lsd/machine-id',
        `printf '${containerDropIn}Environment=REBOOT_STRATEGY=reboot\\nExecStart=\\nExecStart=${command} --root /run/lsd --bus \${BUS} --systemd-bus none --machine-id-file \${MID} --pid-file /run/lsd/pid\\n' > ${dropIns}/test.conf`,
        // A bus that accepts the connection and never answers: locksmithd waits on it, not ready.
        `node -e "require('net').createServer(() => require('fs').writeFileSync('/run/lsd/connected', '')).listen('/run/lsd/silent')" &`,
        'silent=$!',
        'for _ in $(seq 1 300); do [ -S /run/lsd/silent ] && break; sleep 0.1; done',
        phase('unix:path=/run/lsd/silent', '/run/lsd/machine-id'),
        'systemctl --user start --no-block locksmithd.service',
        'for _ in $(seq 1 600); do [ -e /run/lsd/connected ] && break; sleep 0.1; done',
        report('locksmithd.service', 'waiting'),
        'systemctl --user stop locksmithd.service; kill $silent',
        // The user manager's own bus: locksmithd gets ready, and `systemctl start` returns then.
        phase('unix:path=/run/user/0/bus', '/run/lsd/machine-id'),
        'systemctl --user start locksmithd.service; echo "@@ ready.start=$?"',
        '[ -s /run/lsd/pid ] && echo "@@ ready.pidFile=written"',
        report('locksmithd.service', 'ready'),
        'systemctl --user stop locksmithd.service',
        // No machine id: locksmithd exits 1 before it is ready.
        phase('unix:path=/run/user/0/bus', '/run/lsd/missing'),
        'systemctl --user start locksmithd.service 2>/dev/null; echo "@@ failing.start=$?"',
        report('locksmithd.service', 'failing'),
      ].join('\n'),
    );
    expect(values).toMatchObject({ 'waiting.ActiveState': 'activating', 'waiting.SubState': 'start', 'waiting.StatusText': '' });
    expect(values).toMatchObject({ 'ready.start': '0', 'ready.pidFile': 'written', 'ready.ActiveState': 'active', 'ready.SubState': 'running', 'ready.StatusText': 'strategy reboot' });
    expect(values['failing.start']).not.toBe('0');
    expect(values).toMatchObject({ 'failing.ActiveState': 'failed', 'failing.Result': 'exit-code' });
  }, 150_000);

  (updateTools ? test : test.skip)('update_engine: active once it owns com.coreos.update1 (Type=dbus); failing before then fails the start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bootsmith-units-engine-'));
    const key = keyPair();
    writeFileSync(join(dir, 'key.pub.pem'), key.publicKey);
    const m = updateMachine(dir, 'machine', 'http://127.0.0.1:9');
    const command = execStart(readFileSync(join(unitsDir, 'update-engine.service'), 'utf8')).join(' ');
    const args = `--root ${m.root} --bus unix:path=/run/user/0/bus --disk \${DISK} --active USR-A --state-dir ${m.root}/var/lib/update_engine --boot-id-file ${m.root}/boot_id --public-key ${dir}/key.pub.pem --first-check 3600`;
    const dropIns = '/etc/systemd/user/update-engine.service.d';
    const disk = (file: string) => `printf '[Service]\\nEnvironment=DISK=${file}\\n' > ${dropIns}/phase.conf; systemctl --user daemon-reload`;
    const client = `${process.execPath} ${repo}/bin/update_engine_client.js --bus unix:path=/run/user/0/bus -status --wait 0`;
    const values = inNamespace(
      [
        `cp ${unitsDir}/update-engine.service /etc/systemd/user/`,
        `mkdir -p ${dropIns}`,
        // The machine is in this test's temporary directory, which the unit's private /tmp hides: bound in.
        `printf '${containerDropIn}BindPaths=${dir}\\nExecStart=\\nExecStart=${command} ${args}\\n' > ${dropIns}/test.conf`,
        disk(m.disk),
        'systemctl --user start update-engine.service; echo "@@ ready.start=$?"',
        `${client} | grep CURRENT_OP | sed 's/^/@@ ready./'`,
        report('update-engine.service', 'ready'),
        'systemctl --user stop update-engine.service',
        disk(`${dir}/missing.img`),
        'systemctl --user start update-engine.service 2>/dev/null; echo "@@ failing.start=$?"',
        report('update-engine.service', 'failing'),
      ].join('\n'),
    );
    rmSync(dir, { recursive: true, force: true });
    expect(values).toMatchObject({ 'ready.start': '0', 'ready.CURRENT_OP': 'UPDATE_STATUS_IDLE', 'ready.ActiveState': 'active', 'ready.SubState': 'running' });
    expect(values['failing.start']).not.toBe('0');
    expect(values).toMatchObject({ 'failing.ActiveState': 'failed', 'failing.Result': 'exit-code' });
  }, 150_000);

  test('bootsmith-update-server: active once it listens; a missing channel tree fails the start', async () => {
    const port = await freePort();
    // The program as installed (this node and the script), without the unit's own flags.
    const command = execStart(readFileSync(join(unitsDir, 'bootsmith-update-server.service'), 'utf8')).slice(0, 2).join(' ');
    const dropIns = '/etc/systemd/user/bootsmith-update-server.service.d';
    const tree = (dir: string) => `printf '[Service]\\nEnvironment=TREE=${dir}\\n' > ${dropIns}/phase.conf; systemctl --user daemon-reload`;
    const healthz = `node -e "fetch('http://127.0.0.1:${port}/healthz').then((r) => console.log('@@ ready.healthz=' + r.status), (e) => console.log('@@ ready.healthz=' + e.cause?.code))"`;
    const values = inNamespace(
      [
        `cp ${unitsDir}/bootsmith-update-server.service /etc/systemd/user/`,
        `mkdir -p ${dropIns} /run/ups/tree/stable`,
        `printf '${containerDropIn}ExecStart=\\nExecStart=${command} --tree \${TREE} --state-dir /run/ups/state --listen 127.0.0.1:${port}\\n' > ${dropIns}/test.conf`,
        tree('/run/ups/tree'),
        'systemctl --user start bootsmith-update-server.service; echo "@@ ready.start=$?"',
        healthz,
        report('bootsmith-update-server.service', 'ready'),
        'systemctl --user stop bootsmith-update-server.service',
        tree('/run/ups/missing'),
        'systemctl --user start bootsmith-update-server.service 2>/dev/null; echo "@@ failing.start=$?"',
        report('bootsmith-update-server.service', 'failing'),
      ].join('\n'),
    );
    expect(values).toMatchObject({ 'ready.start': '0', 'ready.healthz': '200', 'ready.ActiveState': 'active', 'ready.StatusText': `serving http://127.0.0.1:${port}/v1/update/` });
    expect(values['failing.start']).not.toBe('0');
    expect(values).toMatchObject({ 'failing.ActiveState': 'failed', 'failing.Result': 'exit-code' });
  }, 150_000);

  describe('fleetlockd', () => {
    let taken: Server;
    let takenPort: number;
    beforeAll(async () => {
      taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      takenPort = (taken.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

    test('active once it listens (systemctl start returns with /healthz answering); a port in use fails the start', async () => {
      const port = await freePort();
      const dropIns = '/etc/systemd/user/fleetlockd.service.d';
      const listen = (hostPort: string) => `printf '[Service]\\nEnvironment=FLEETLOCKD_LISTEN=${hostPort}\\n' > ${dropIns}/phase.conf; systemctl --user daemon-reload`;
      const healthz = `node -e "fetch('http://127.0.0.1:${port}/healthz').then((r) => console.log('@@ ready.healthz=' + r.status), (e) => console.log('@@ ready.healthz=' + e.cause?.code))"`;
      const values = inNamespace(
        [
          `cp ${unitsDir}/fleetlockd.service /etc/systemd/user/`,
          `mkdir -p ${dropIns}`,
          // etcd is reached per request; none is needed to listen.
          `printf '${containerDropIn}Environment=FLEETLOCKD_ENDPOINT=http://127.0.0.1:9\\n' > ${dropIns}/test.conf`,
          listen(`127.0.0.1:${port}`),
          'systemctl --user start fleetlockd.service; echo "@@ ready.start=$?"',
          healthz,
          report('fleetlockd.service', 'ready'),
          'systemctl --user stop fleetlockd.service',
          listen(`127.0.0.1:${takenPort}`),
          'systemctl --user start fleetlockd.service 2>/dev/null; echo "@@ failing.start=$?"',
          report('fleetlockd.service', 'failing'),
        ].join('\n'),
      );
      expect(values).toMatchObject({ 'ready.start': '0', 'ready.healthz': '200', 'ready.ActiveState': 'active', 'ready.StatusText': `serving FleetLock on 127.0.0.1:${port}` });
      expect(values['failing.start']).not.toBe('0');
      expect(values).toMatchObject({ 'failing.ActiveState': 'failed', 'failing.Result': 'exit-code' });
    }, 150_000);
  });
});

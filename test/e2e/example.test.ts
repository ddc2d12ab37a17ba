/**
 * The journey of the bundled example: examples/etcd-node.yaml applied into a temporary root with
 * the real shadow tools and a real systemd (a user manager in a private mount namespace, with the
 * root's unit directories mounted where it looks), then checked file by file and unit by unit.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asRoot, makeRoot } from '../support/roots';

const repo = join(__dirname, '../..');
const harness = join(__dirname, '../support/systemd-user.sh');
const canRun = asRoot && spawnSync('unshare', ['-m', 'true']).status === 0;
if (!canRun) test.skip('the end-to-end test needs root and unshare -m; CI runs it', () => undefined);

/** Units the OS image would bring, standing in as long-running services. */
const osUnits = ['etcd-member.service', 'docker.service', 'locksmithd.service', 'update-engine.service'];

(canRun ? describe : describe.skip)('examples/etcd-node.yaml on a fresh machine', () => {
  const root = makeRoot();
  let out: string;
  let state: Record<string, Record<string, string>>;

  beforeAll(() => {
    const stubs = osUnits.map((u) => `printf '[Service]\\nExecStart=/bin/sleep 300\\n[Install]\\nWantedBy=default.target\\n' > /run/systemd/user/${u}`).join('; ');
    const script = [
      `mkdir -p ${root}/etc/systemd/user ${root}/run/systemd/user`,
      `mount --bind ${root}/etc/systemd/user /etc/systemd/user`,
      `mount --bind ${root}/run/systemd/user /run/systemd/user`,
      stubs,
      'systemctl --user daemon-reload',
      `node ${repo}/bin/coreos-cloudinit.js --from-file ${repo}/examples/etcd-node.yaml --root ${root} --systemd-bus "$SYSTEMD_BUS" --unit-dir /etc/systemd/user --runtime-unit-dir /run/systemd/user; echo "exit=$?"`,
      'echo ---',
      `systemctl --user show -p Id,LoadState,ActiveState,UnitFileState,Environment,DropInPaths app.service ${osUnits.join(' ')}`,
    ].join('\n');
    const r = spawnSync('unshare', ['-m', 'bash', harness, script], { encoding: 'utf8', timeout: 120_000 });
    const [report = '', show = ''] = r.stdout.split('\n---\n');
    out = report;
    state = Object.fromEntries(
      show
        .trim()
        .split('\n\n')
        .map((section) => {
          const props = Object.fromEntries(section.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
          return [props.Id ?? '', props];
        }),
    );
  });

  test('applies without a failure', () => {
    expect(out).toMatch(/^exit=0$/m);
    expect(out).not.toMatch(/^failed/m);
  });

  test('files', () => {
    const file = (p: string) => readFileSync(join(root, p), 'utf8');
    const attrs = (p: string) => {
      const st = lstatSync(join(root, p));
      return [(st.mode & 0o7777).toString(8), st.uid, st.gid];
    };
    expect(file('etc/hostname')).toBe('node-01\n');
    expect(file('etc/ssl/etcd/ca.pem')).toMatch(/^-----BEGIN CERTIFICATE-----\n.*\n-----END CERTIFICATE-----\n$/);
    expect(attrs('etc/ssl/etcd/ca.pem')).toEqual(['644', 232, 232]);
    expect(file('etc/motd.d/fleet.conf')).toBe('Welcome to the fleet.\n');
    expect(file('etc/sysctl.d/90-fleet.conf')).toBe('net.core.somaxconn = 1024\nvm.max_map_count = 262144\n');
    expect(file('etc/coreos/update.conf')).toBe('GROUP=stable\nREBOOT_STRATEGY=etcd-lock\n');
    expect(file('etc/passwd')).toMatch(/^deploy:x:\d+:\d+:Deployment robot:\/home\/deploy:\/bin\/bash$/m);
    expect(file('etc/group')).toMatch(/^docker:x:233:core,deploy$/m);
    expect(file('home/core/.ssh/authorized_keys')).toMatch(/^ssh-ed25519 .* admin@example.com\n$/);
    expect(attrs('home/deploy/.ssh/authorized_keys')[0]).toBe('600');
  });

  test('units, as systemd reports them', () => {
    expect(state['etcd-member.service']).toMatchObject({ ActiveState: 'active', UnitFileState: 'enabled' });
    expect(state['etcd-member.service']!.DropInPaths).toBe('/etc/systemd/user/etcd-member.service.d/20-cluster.conf');
    expect(state['etcd-member.service']!.Environment).toContain('ETCD_NAME=node-01');
    expect(state['app.service']).toMatchObject({ LoadState: 'loaded', UnitFileState: 'enabled' });
    expect(state['locksmithd.service']).toMatchObject({ ActiveState: 'active' });
    expect(state['locksmithd.service']!.Environment).toContain('LOCKSMITHD_GROUP=workers');
    expect(state['locksmithd.service']!.Environment).toContain('REBOOT_WINDOW_START=Thu 04:00');
    expect(out).toMatch(/^changed\s+restart update-engine.service \[coreos.update\]$/m);
  });
});

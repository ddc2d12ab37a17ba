/**
 * Units applied over D-Bus to a real systemd (a user manager in a private mount namespace, which
 * has the system manager's API), then checked by asking systemd itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asRoot } from '../support/roots';

const root = join(__dirname, '../..');
const harness = join(__dirname, '../support/systemd-user.sh');
const canRun = asRoot && spawnSync('unshare', ['-m', 'true']).status === 0;
const describeWithSystemd = canRun ? describe : describe.skip;
if (!canRun) test.skip('systemd tests need root and unshare -m; CI runs them', () => undefined);

const userData = `#cloud-config
coreos:
  units:
    - name: hello.service
      enable: true
      command: start
      content: |
        [Unit]
        Description=Says hello
        [Service]
        ExecStart=/bin/sleep 300
        [Install]
        WantedBy=default.target
      drop_ins:
        - name: 10-greeting.conf
          content: |
            [Service]
            Environment=GREETING=hi
    - name: fails.service
      command: start
      content: |
        [Service]
        Type=oneshot
        ExecStart=/bin/false
    - name: hidden.service
      mask: true
    - name: ephemeral.service
      runtime: true
      command: start
      content: |
        [Service]
        ExecStart=/bin/sleep 300
`;

function inNamespace(script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('unshare', ['-m', 'bash', harness, script], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describeWithSystemd('units over D-Bus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-systemd-'));
  const file = join(dir, 'units.yaml');
  writeFileSync(file, userData);
  const apply = `node ${root}/bin/coreos-cloudinit.js --from-file ${file} --systemd-bus "$SYSTEMD_BUS" --unit-dir /etc/systemd/user --runtime-unit-dir /run/systemd/user`;
  const units = 'hello.service fails.service hidden.service ephemeral.service';
  let run: ReturnType<typeof inNamespace>;
  let sections: string[];

  beforeAll(() => {
    run = inNamespace(
      `${apply} > ${dir}/first.txt; echo "exit=$?" >> ${dir}/first.txt; ${apply} > ${dir}/second.txt; echo "exit=$?" >> ${dir}/second.txt; ` +
        `systemctl --user show -p Id,LoadState,ActiveState,UnitFileState,Environment ${units}`,
    );
    sections = run.stdout.trim().split('\n\n');
  });

  function unit(name: string): Record<string, string> {
    const text = sections.find((s) => s.includes(`Id=${name}`)) ?? '';
    return Object.fromEntries(text.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  test('systemd sees each unit as the user data said', () => {
    expect(run.status).toBe(0);
    expect(unit('hello.service')).toMatchObject({ LoadState: 'loaded', ActiveState: 'active', UnitFileState: 'enabled', Environment: 'GREETING=hi' });
    expect(unit('ephemeral.service')).toMatchObject({ LoadState: 'loaded', ActiveState: 'active' });
    expect(unit('hidden.service')).toMatchObject({ LoadState: 'masked' });
    expect(unit('fails.service')).toMatchObject({ LoadState: 'loaded', ActiveState: 'failed' });
  });

  test('a unit whose start fails is a failure in the report; the rest still happens', () => {
    const first = require('node:fs').readFileSync(join(dir, 'first.txt'), 'utf8');
    expect(first).toMatch(/^changed\s+reload systemd \[coreos.units\]$/m);
    expect(first).toMatch(/^changed\s+enable hello.service/m);
    expect(first).toMatch(/^changed\s+start hello.service/m);
    expect(first).toMatch(/^failed\s+start fails.service \[coreos.units\[1\]\]: start fails.service: job failed, unit is failed$/m);
    expect(first).toMatch(/^changed\s+start ephemeral.service/m);
    expect(first).toMatch(/^changed\s+mask hidden.service /m);
    expect(first).toMatch(/^exit=1$/m);
  });

  test('applying again: the files, links and running units are left as they are', () => {
    const second = require('node:fs').readFileSync(join(dir, 'second.txt'), 'utf8');
    expect(second).toMatch(/^unchanged\s+start hello.service/m);
    expect(second).toMatch(/^unchanged\s+enable hello.service/m);
    expect(second).toMatch(/^unchanged\s+file \/etc\/systemd\/user\/hello.service /m);
    expect(second).toMatch(/^unchanged\s+mask hidden.service /m);
    expect(second).not.toMatch(/reload systemd/);
  });
});

// Found on a real machine (test/machine): coreos-cloudinit runs in a boot unit ordered Before=
// etcd2, locksmithd and update-engine, so a job it queues for one of those cannot finish before
// it exits. Waiting for that job deadlocked until the 90 s job timeout, once per such unit.
describeWithSystemd('a unit command from inside a boot unit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-systemd-order-'));
  const file = join(dir, 'later.yaml');
  writeFileSync(
    file,
    '#cloud-config\ncoreos:\n  units:\n    - name: later.service\n      command: start\n      content: |\n        [Service]\n        ExecStart=/bin/sleep 300\n',
  );
  const applier = [
    '[Unit]',
    'Before=later.service',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/bin/sh -c '${process.execPath} ${root}/bin/coreos-cloudinit.js --from-file ${file} --systemd-bus "$SYSTEMD_BUS" --unit-dir /etc/systemd/user --runtime-unit-dir /run/systemd/user > ${dir}/report.txt 2>&1'`,
  ].join('\n');
  let run: ReturnType<typeof inNamespace>;
  let seconds: number;

  beforeAll(() => {
    writeFileSync(join(dir, 'applier.service'), `${applier}\n`);
    const t = Date.now();
    run = inNamespace(
      `cp ${dir}/applier.service /etc/systemd/user/ && systemctl --user set-environment SYSTEMD_BUS="$SYSTEMD_BUS" && systemctl --user daemon-reload && ` +
        'systemctl --user start applier.service && for _ in $(seq 1 100); do [ "$(systemctl --user is-active later.service)" = active ] && break; sleep 0.1; done; ' +
        'systemctl --user show -p ActiveState applier.service later.service',
    );
    seconds = (Date.now() - t) / 1000;
  }, 150_000);

  test('queues the job of a unit ordered after it instead of waiting it out, and the unit starts after', () => {
    const report = require('node:fs').readFileSync(join(dir, 'report.txt'), 'utf8') as string;
    expect(run.status).toBe(0);
    expect(report).toMatch(/^changed\s+start later\.service.*queued/m);
    expect(report).toMatch(/0 failed/);
    expect(run.stdout).toBe('ActiveState=active\n\nActiveState=active\n');
    expect(seconds).toBeLessThan(60);
  });
});

describeWithSystemd('an Ignition config over D-Bus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-systemd-ign-'));
  const file = join(dir, 'config.ign');
  writeFileSync(
    file,
    JSON.stringify({
      ignition: { version: '3.4.0' },
      systemd: {
        units: [
          {
            name: 'app.service',
            enabled: true,
            contents: '[Service]\nExecStart=/bin/sleep 300\n\n[Install]\nWantedBy=default.target\n',
            dropins: [{ name: '10-env.conf', contents: '[Service]\nEnvironment=MODE=prod\n' }],
          },
          { name: 'old.service', enabled: false },
          { name: 'hidden.service', mask: true },
        ],
      },
    }),
  );
  const apply = `node ${root}/bin/coreos-cloudinit.js --from-file ${file} --systemd-bus "$SYSTEMD_BUS" --unit-dir /etc/systemd/user`;
  let run: ReturnType<typeof inNamespace>;

  beforeAll(() => {
    // The image ships old.service, enabled.
    run = inNamespace(
      `printf '[Service]\\nExecStart=/bin/sleep 300\\n\\n[Install]\\nWantedBy=default.target\\n' > /etc/systemd/user/old.service; ` +
        `systemctl --user daemon-reload; systemctl --user enable old.service 2>/dev/null; ` +
        `${apply} > ${dir}/first.txt; echo "exit=$?" >> ${dir}/first.txt; ${apply} > ${dir}/second.txt; echo "exit=$?" >> ${dir}/second.txt; ` +
        'systemctl --user show -p Id,LoadState,ActiveState,UnitFileState,Environment app.service old.service hidden.service',
    );
  });

  test('enabled and disabled through systemd, masked, drop-ins loaded; nothing started, as Ignition does', () => {
    expect(run.status).toBe(0);
    const unit = (name: string) => Object.fromEntries((run.stdout.split('\n\n').find((s) => s.includes(`Id=${name}`)) ?? '').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(unit('app.service')).toMatchObject({ LoadState: 'loaded', ActiveState: 'inactive', UnitFileState: 'enabled', Environment: 'MODE=prod' });
    expect(unit('old.service')).toMatchObject({ LoadState: 'loaded', UnitFileState: 'disabled' });
    expect(unit('hidden.service')).toMatchObject({ LoadState: 'masked' });
    const first = require('node:fs').readFileSync(join(dir, 'first.txt'), 'utf8');
    expect(first).toMatch(/^changed\s+reload systemd \[systemd.units\]$/m);
    expect(first).toMatch(/^changed\s+enable app.service \[systemd.units\[0\]\]$/m);
    expect(first).toMatch(/^changed\s+disable old.service \[systemd.units\[1\]\]$/m);
    expect(first).toMatch(/^changed\s+mask hidden.service \[systemd.units\[2\]\]$/m);
    expect(first).toMatch(/^exit=0$/m);
  });

  test('applying again changes nothing', () => {
    const second = require('node:fs').readFileSync(join(dir, 'second.txt'), 'utf8');
    expect(second).toMatch(/^unchanged\s+enable app.service/m);
    expect(second).toMatch(/^unchanged\s+disable old.service/m);
    expect(second).toMatch(/^unchanged\s+mask hidden.service/m);
    expect(second).not.toMatch(/reload systemd/);
    expect(second).toMatch(/: nothing to change\nexit=0\n$/);
  });
});

/** coreos-cloudinit --from-file config.ign, as users run it: the built program applying Ignition into a root. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyRoot, runAsync } from '../support/cli';

const root = join(__dirname, '../..');
const bin = join(root, 'bin/coreos-cloudinit.js');
const dir = mkdtempSync(join(tmpdir(), 'bootsmith-cli-ign-'));
const asRoot = process.getuid?.() === 0;

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit.js'))) throw new Error('dist/ is missing: run "npm run build" (npm test does)');
});

function file(name: string, doc: object): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(doc, null, 2));
  return p;
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}


const config = file('config.ign', {
  ignition: { version: '3.4.0' },
  storage: {
    disks: [{ device: '/dev/vdb', wipeTable: true }],
    files: [{ path: '/etc/app.conf', mode: 0o600, contents: { source: 'data:,x%3D1%0A' } }],
    links: [{ path: '/etc/app.link', target: '/etc/app.conf' }],
  },
  systemd: {
    units: [{ name: 'app.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n' }],
  },
});

(asRoot ? describe : describe.skip)('applying an Ignition config with --from-file', () => {
  test('--dry-run says what would change and changes nothing; the apply then does it; the disk is a line of its own, exit 0', () => {
    const r = applyRoot();
    const dry = run(['--from-file', config, '--root', r, '--dry-run']);
    expect(dry).toMatchObject({ status: 0, stderr: '' });
    expect(dry.stdout).toContain('skipped      disk /dev/vdb [storage.disks[0]]: not applied: storage devices are set up by Ignition in the initramfs');
    expect(dry.stdout).toContain('would change file /etc/app.conf [storage.files[0]]\n');
    expect(dry.stdout).toContain('would change enable app.service [systemd.units[0]]\n');
    expect(existsSync(join(r, 'etc/app.conf'))).toBe(false);
    const real = run(['--from-file', config, '--root', r]);
    expect(real).toMatchObject({ status: 0, stderr: '' });
    expect(real.stdout).toMatch(/^4 changed, 0 unchanged, 0 failed, 1 skipped$/m);
    const same = (text: string) => text.replace(/^(would change|changed|skipped) +/gm, '$1 ').replace(/would change/g, 'changed');
    expect(same(real.stdout)).toBe(same(dry.stdout));
    expect(readFileSync(join(r, 'etc/app.conf'), 'utf8')).toBe('x=1\n');
    expect(readlinkSync(join(r, 'etc/app.link'))).toBe('/etc/app.conf');
    expect(readlinkSync(join(r, 'etc/systemd/system/multi-user.target.wants/app.service'))).toBe('/etc/systemd/system/app.service');
  });

  test('--format json: the actions with their status and cause', () => {
    const r = run(['--from-file', config, '--root', applyRoot(), '--format', 'json']);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    const doc = JSON.parse(r.stdout) as { applied: boolean; ok: boolean; validation: { kind: string }; actions: Array<{ action: string; target: string; status: string }> };
    expect(doc).toMatchObject({ applied: true, ok: true, validation: { kind: 'ignition' } });
    expect(doc.actions.map((a) => `${a.status} ${a.action} ${a.target}`)).toEqual([
      'skipped disk /dev/vdb',
      'changed file /etc/app.conf',
      'changed link /etc/app.link',
      'changed file /etc/systemd/system/app.service',
      'changed enable app.service',
    ]);
  });

  test('an invalid config: the findings, "not applied", exit 1, nothing written', () => {
    const r = applyRoot();
    const bad = file('bad.ign', { ignition: { version: '3.4.0' }, storage: { files: [{ path: 'etc/relative', contents: { source: 'data:,x' } }] } });
    const out = run(['--from-file', bad, '--root', r]);
    expect(out.status).toBe(1);
    expect(out.stdout).toMatch(/error: path "etc\/relative" is not absolute \[relative-path\][\s\S]*not applied: the user data has errors\n$/);
    expect(existsSync(join(r, 'etc/relative'))).toBe(false);
  });

  test('a source the --http-* flags give up on: that file failed, exit 1; the others written', async () => {
    const server = http.createServer((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/f`;
      const remote = file('remote.ign', { ignition: { version: '3.4.0' }, storage: { files: [{ path: '/etc/remote', contents: { source: url } }, { path: '/etc/local', contents: { source: 'data:,y' } }] } });
      const r = applyRoot();
      const out = await runAsync(bin, ['--from-file', remote, '--root', r, '--http-attempts', '2', '--http-backoff', '1', '--http-max-backoff', '1']);
      expect(out.status).toBe(1);
      expect(out.stdout).toContain(`failed    file /etc/remote [storage.files[0].contents]: fetching failed: ${url}: HTTP 503 (gave up after retrying)\n`);
      expect(out.stderr).toMatch(new RegExp(`^coreos-cloudinit: ${url.replace(/[.]/g, '\\.')}: HTTP 503; retry 2 of 2 in [01] ms\\n$`));
      expect(existsSync(join(r, 'etc/remote'))).toBe(false);
      expect(readFileSync(join(r, 'etc/local'), 'utf8')).toBe('y');
    } finally {
      server.close();
    }
  });
});

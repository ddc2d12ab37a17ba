/** update_engine's settings, first hit per key across the reference's files, and the Omaha identity. */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { machineIdentity, readEngineSettings } from '../../src/update/engine-config';

function root(files: Record<string, string>): string {
  const r = mkdtempSync(join(tmpdir(), 'bootsmith-engine-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(r, path)), { recursive: true });
    writeFileSync(join(r, path), text);
  }
  return r;
}

const release = 'COREOS_RELEASE_VERSION=1000.0.0\nCOREOS_RELEASE_BOARD=amd64-usr\nCOREOS_RELEASE_APPID={e96281a6-d1af-4bde-9a0a-97b76e56dc57}\n';

test('each key from the first file that has it; GROUP change moves the channel', () => {
  const r = root({
    '/usr/share/coreos/release': release,
    '/usr/share/coreos/update.conf': 'GROUP=stable\nSERVER=http://default.example/v1/update/\n',
    '/etc/coreos/update.conf': 'GROUP=beta\nREBOOT_STRATEGY=etcd-lock\n',
    '/usr/share/oem/oem-release': 'ID=qemu\nVERSION_ID=0.0.1\n',
  });
  expect(readEngineSettings(r)).toEqual({
    group: 'beta',
    server: 'http://default.example/v1/update/',
    version: '1000.0.0',
    board: 'amd64-usr',
    appId: '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}',
    oem: 'qemu',
    oemVersion: '0.0.1',
    machineAlias: undefined,
  });
  writeFileSync(join(r, '/etc/coreos/update.conf'), 'GROUP="alpha"\nSERVER=disabled\n');
  expect(readEngineSettings(r)).toMatchObject({ group: 'alpha', server: undefined });
});

test('defaults, and a missing version is an error that names the files', () => {
  expect(readEngineSettings(root({ '/usr/share/flatcar/release': 'FLATCAR_RELEASE_VERSION=3510.2.0\n' }))).toMatchObject({
    group: 'stable',
    server: 'https://public.update.flatcar-linux.net/v1/update/',
    version: '3510.2.0',
    board: 'amd64-usr',
  });
  expect(() => readEngineSettings(root({}))).toThrow(/no COREOS_RELEASE_VERSION in \/usr\/share\/coreos\/release or \/usr\/share\/flatcar\/release/);
});

test('identity: machine id, braced boot id, aleph version kept from the first run', () => {
  const r = root({ '/usr/share/coreos/release': release, '/etc/machine-id': 'f4e1c8ab0c7d4a3c9e2b6d5a1f0e9c8b\n', '/boot_id': '3c4ba6a1-0d3e-4b5a-9a65-1f7e0e7a2b11\n' });
  const prefsDir = join(r, '/var/lib/update_engine/prefs');
  const id = machineIdentity(readEngineSettings(r), { root: r, prefsDir, bootIdFile: join(r, '/boot_id') });
  expect(id).toMatchObject({ machineId: 'f4e1c8ab0c7d4a3c9e2b6d5a1f0e9c8b', bootId: '{3c4ba6a1-0d3e-4b5a-9a65-1f7e0e7a2b11}', alephVersion: '1000.0.0', track: 'stable' });
  writeFileSync(join(r, '/usr/share/coreos/release'), release.replace('1000.0.0', '1001.0.0'));
  expect(machineIdentity(readEngineSettings(r), { root: r, prefsDir, bootIdFile: join(r, '/boot_id') })).toMatchObject({ version: '1001.0.0', alephVersion: '1000.0.0' });
  expect(readFileSync(join(prefsDir, 'aleph-version'), 'utf8')).toBe('1000.0.0\n');
  writeFileSync(join(r, '/etc/machine-id'), 'nope\n');
  expect(() => machineIdentity(readEngineSettings(r), { root: r, prefsDir })).toThrow(/does not hold a machine id/);
});

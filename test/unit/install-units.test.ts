/** How the shipped units' ExecStart= lines are filled in: placeholders, quoting, where the programs are found. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execArgument, fillUnit, unitPrograms } from '../../src/apply/install-units';
import { unitCommands } from '../../src/cli/coreos-cloudinit';

test('fillUnit replaces each program\'s placeholder and refuses one that names no program', () => {
  const text = 'ExecStart=@COREOS_CLOUDINIT@ --oem=openstack\nExecStart=@UPDATE_ENGINE@\nExecStart=@BOOTSMITH_UPDATE_SERVER@ $OPTIONS\n';
  expect(fillUnit(text, (p) => `/opt/bin/${p}`)).toBe('ExecStart=/opt/bin/coreos-cloudinit --oem=openstack\nExecStart=/opt/bin/update_engine\nExecStart=/opt/bin/bootsmith-update-server $OPTIONS\n');
  expect(() => fillUnit('ExecStart=@LOCKSMITHCTL@\n', (p) => p)).toThrow('@LOCKSMITHCTL@ in a shipped unit names no program');
});

test('execArgument: plain paths as they are; spaces quoted; systemd\'s %, $ and \\ doubled; no control characters', () => {
  expect(execArgument('/usr/local/bin/locksmithd')).toBe('/usr/local/bin/locksmithd');
  expect(execArgument('/opt/my tools/bin/fleetlockd')).toBe('"/opt/my tools/bin/fleetlockd"');
  expect(execArgument('/opt/100%/$HOME\\x')).toBe('/opt/100%%/$$HOME\\\\x');
  expect(execArgument('/opt/"q"')).toBe('"/opt/\\"q\\""');
  expect(() => execArgument('/opt/a\nExecStartPre=/bin/sh')).toThrow(/control character/);
});

describe('unitCommands: where the units find the programs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-unit-commands-'));
  const prefixBin = join(dir, 'prefix/bin');
  mkdirSync(prefixBin, { recursive: true });
  for (const p of unitPrograms) writeFileSync(join(prefixBin, p), '');
  const pkg = join(dir, 'lib/bootsmith');
  const all = (commandOf: (p: (typeof unitPrograms)[number]) => string) => unitPrograms.map(commandOf);

  test('run from an installed link (npm\'s PREFIX/bin): the programs beside it', () => {
    expect(all(unitCommands({}, pkg, join(prefixBin, 'coreos-cloudinit'), '/usr/bin/node'))).toEqual(unitPrograms.map((p) => join(prefixBin, p)));
  });

  test('run as the package\'s bin/coreos-cloudinit.js: this node with the package\'s scripts', () => {
    expect(unitCommands({}, pkg, join(pkg, 'bin/coreos-cloudinit.js'), '/opt/node 22/bin/node')('locksmithd')).toBe(`"/opt/node 22/bin/node" ${pkg}/bin/locksmithd.js`);
    // A link whose directory lacks the other programs is not taken for an installation.
    const lone = join(dir, 'lone');
    mkdirSync(lone);
    expect(unitCommands({}, pkg, join(lone, 'coreos-cloudinit'), '/usr/bin/node')('fleetlockd')).toBe(`/usr/bin/node ${pkg}/bin/fleetlockd.js`);
  });

  test('--bin-dir for every program, --exec for coreos-cloudinit', () => {
    const commandOf = unitCommands({ binDir: '/usr/bin', exec: '/usr/bin/coreos-cloudinit --root /x' }, pkg, join(prefixBin, 'coreos-cloudinit'), '/usr/bin/node');
    expect(all(commandOf)).toEqual(['/usr/bin/coreos-cloudinit --root /x', '/usr/bin/locksmithd', '/usr/bin/update_engine', '/usr/bin/fleetlockd', '/usr/bin/bootsmith-update-server']);
    expect(() => unitCommands({ binDir: 'bin' }, pkg, undefined, '/usr/bin/node')).toThrow('--bin-dir bin: want an absolute path');
    expect(() => unitCommands({ exec: 'a\nb' }, pkg, undefined, '/usr/bin/node')).toThrow('--exec must be one line');
  });
});

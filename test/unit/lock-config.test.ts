import { rawSettings, settingsFrom } from '../../src/lock/config';

const load = (files: string[], env: Record<string, string> = {}) => settingsFrom(rawSettings(files, env));

test('defaults: reboot, no window', () => {
  expect(load([])).toEqual({ strategy: { kind: 'reboot' }, windows: [], timeZone: undefined, machineId: undefined, healthUnits: [] });
});

test('update.conf in order, then the environment', () => {
  const s = load(
    ['REBOOT_STRATEGY=reboot\nGROUP=stable\n', 'REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_REBOOT_WINDOW_START="Thu 04:00"\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\n'],
    { LOCKSMITHD_ENDPOINT: 'https://10.0.0.1:2379,https://10.0.0.2:2379', LOCKSMITHD_GROUP: 'workers', LOCKSMITHD_ETCD_CAFILE: '/etc/ssl/ca.pem', LOCKSMITHD_HEALTH_UNITS: 'etcd-member.service app.service' },
  );
  expect(s.strategy).toEqual({
    kind: 'etcd-lock',
    group: 'workers',
    reclaimStaleAfterMs: undefined,
    etcd: { endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'], caFile: '/etc/ssl/ca.pem' },
  });
  expect(s.windows.map((w) => w.text)).toEqual(['Thu 04:00 for 1h']);
  expect(s.healthUnits).toEqual(['etcd-member.service', 'app.service']);
});

test('several windows in a time zone; the unprefixed window keys of old locksmith', () => {
  const s = load([], { REBOOT_WINDOW_START: '23:00', REBOOT_WINDOW_LENGTH: '1h', LOCKSMITHD_REBOOT_WINDOWS: 'Mon 04:00 1h, Sat 02:00 2h30m', LOCKSMITHD_REBOOT_WINDOW_TIMEZONE: 'Europe/Berlin' });
  expect(s.windows.map((w) => w.text)).toEqual(['23:00 for 1h', 'Mon 04:00 for 1h', 'Sat 02:00 for 2h30m']);
  expect(s.timeZone).toBe('Europe/Berlin');
});

test('errors at start, all of them', () => {
  expect(() => load(['REBOOT_STRATEGY=best-effort\nREBOOT_WINDOW_START=Thu 04:00\n'], { LOCKSMITHD_REBOOT_WINDOW_TIMEZONE: 'Nowhere/Land' })).toThrow(
    'invalid locksmithd configuration:\n  either both or neither of REBOOT_WINDOW_START and REBOOT_WINDOW_LENGTH must be set\n  unknown time zone "Nowhere/Land": use an IANA name such as Europe/Berlin or UTC\n  unknown REBOOT_STRATEGY "best-effort": use etcd-lock, reboot or off',
  );
  expect(() => load([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_GROUP: 'a/b', LOCKSMITHD_RECLAIM_STALE_AFTER: 'soon' })).toThrow(/invalid LOCKSMITHD_GROUP "a\/b"[\s\S]*invalid LOCKSMITHD_RECLAIM_STALE_AFTER "soon"/);
});

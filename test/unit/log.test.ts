/** The daemons' log lines: text, journald priority prefixes, JSON, folding and the length cap. */
import { capLength, createLogger, defaultLogFormat, foldLine, formatLogLine } from '../../src/report/log';
import type { LogFormat, LogLevel } from '../../src/report/log';

const time = new Date('2026-11-29T12:00:00.000Z');
const line = (format: LogFormat, level: LogLevel, message: string, fields?: Record<string, string | number>) =>
  formatLogLine({ time, level, program: 'fleetlockd', message, ...(fields ? { fields } : {}) }, format);

test('text: the program, and the level when it is not info', () => {
  expect(line('text', 'info', 'serving FleetLock on 127.0.0.1:9090')).toBe('fleetlockd: serving FleetLock on 127.0.0.1:9090');
  expect(line('text', 'warning', 'pre-reboot failed: etcd down')).toBe('fleetlockd: warning: pre-reboot failed: etcd down');
  expect(line('text', 'error', 'cannot listen')).toBe('fleetlockd: error: cannot listen');
  expect(line('text', 'info', 'request', { status: 200, path: '/v1/update/', who: 'a b' })).toBe('fleetlockd: request status=200 path=/v1/update/ who="a b"');
});

test('journal: a priority prefix journald reads (3 error, 4 warning, 6 info, 7 debug)', () => {
  expect(['error', 'warning', 'info', 'debug'].map((l) => line('journal', l as LogLevel, 'x'))).toEqual(['<3>error: x', '<4>warning: x', '<6>x', '<7>debug: x']);
});

test('the format follows JOURNAL_STREAM: journal only when it names stderr', () => {
  expect(defaultLogFormat(undefined, '8:5')).toBe('text');
  expect(defaultLogFormat('', '8:5')).toBe('text');
  expect(defaultLogFormat('8:5', '8:5')).toBe('journal');
  expect(defaultLogFormat('8:5', '9:1')).toBe('text'); // stderr redirected away from the journal
  expect(defaultLogFormat('8:5')).toBe('journal');
});

test('json: one object per line with time, level, program, message and the fields', () => {
  const text = line('json', 'warning', 'halted stable/2.0.0', { channel: 'stable', failures: 3 });
  expect(text).not.toContain('\n');
  expect(JSON.parse(text)).toEqual({ time: '2026-11-29T12:00:00.000Z', level: 'warning', program: 'fleetlockd', message: 'halted stable/2.0.0', channel: 'stable', failures: 3 });
  // A field cannot overwrite the record's own keys.
  expect(JSON.parse(line('json', 'info', 'm', { level: 'error', message: 'forged' }))).toMatchObject({ level: 'info', message: 'm' });
});

test('a multi-line message is folded into one line; control characters are escaped', () => {
  expect(foldLine('invalid configuration:\n  unknown REBOOT_STRATEGY\n  bad window')).toBe('invalid configuration: unknown REBOOT_STRATEGY; bad window');
  expect(foldLine('a\x1b[31mred\r\n<3>forged')).toBe('a\\x1b[31mred; <3>forged');
  const stack = 'Error: boom\n    at f (a.ts:1:2)\n    at g (b.ts:3:4)';
  for (const format of ['text', 'journal'] as const) expect(line(format, 'error', stack).split('\n')).toHaveLength(1);
  expect(line('json', 'error', stack).split('\n')).toHaveLength(1);
});

test('no line is longer than the cap, in any format, and a cut line says how much is missing', () => {
  const bundle = 'x'.repeat(100_000);
  for (const format of ['text', 'journal', 'json'] as const) {
    const text = line(format, 'info', `payload ${bundle}`, { note: 'y'.repeat(10_000) });
    expect(text.length).toBeLessThanOrEqual(2048);
    expect(text).toMatch(/more characters\)/);
    if (format === 'json') expect(JSON.parse(text).program).toBe('fleetlockd');
  }
  expect(capLength('abcdef', 10)).toBe('abcdef');
  expect(formatLogLine({ time, level: 'info', program: 'p', message: 'z'.repeat(500) }, 'text', 100)).toHaveLength(100);
});

test('a logger writes one line per event to its sink, drops events below its level and survives a failing sink', () => {
  const lines: string[] = [];
  const log = createLogger({ program: 'locksmithd', format: 'journal', sink: (l) => lines.push(l), now: () => time });
  log('took a reboot slot');
  log('taking a reboot slot failed', 'warning');
  log.error('bug');
  log.debug('not shown');
  expect(lines).toEqual(['<6>took a reboot slot\n', '<4>warning: taking a reboot slot failed\n', '<3>error: bug\n']);
  const debug: string[] = [];
  createLogger({ program: 'p', format: 'text', level: 'debug', sink: (l) => debug.push(l) }).debug('seen');
  expect(debug).toEqual(['p: debug: seen\n']);
  const broken = createLogger({ program: 'p', format: 'text', sink: () => { throw new Error('EPIPE'); } });
  expect(() => broken.info('lost')).not.toThrow();
});

import { checkTimeZone, parseWindow, wallClock, windowState } from '../../src/lock/window';

// 2026-11-19 is a Thursday.
const at = (iso: string) => new Date(iso);

test.each([
  ['Thu 04:00', '1h', { day: 4, minute: 240, lengthMinutes: 60 }],
  ['sun 0:0', '30m', { day: 0, minute: 0, lengthMinutes: 30 }],
  ['23:00', '1h30m', { day: undefined, minute: 1380, lengthMinutes: 90 }],
])('parse %s %s', (start, length, want) => {
  expect(parseWindow(start, length)).toMatchObject(want);
});

test.each([
  ['Thursday 04:00', '1h', /invalid day of week "Thursday"/],
  ['24:00', '1h', /invalid time/],
  ['Thu 04:00 x', '1h', /want "Thu 04:00"/],
  ['04:00', '1 hour', /invalid reboot window length/],
  ['04:00', '24h', /not shorter than its period \(a day\)/],
  ['Mon 04:00', '168h', /a week/],
])('refuse %s %s', (start, length, error) => {
  expect(() => parseWindow(start, length)).toThrow(error);
});

test('wall clock in a zone', () => {
  expect(wallClock(at('2026-11-19T23:30:00Z'), 'UTC')).toEqual({ day: 4, minute: 1410 });
  expect(wallClock(at('2026-11-19T23:30:00Z'), 'Europe/Berlin')).toEqual({ day: 5, minute: 30 });
  expect(() => checkTimeZone('Mars/Olympus')).toThrow(/unknown time zone/);
});

describe('window state', () => {
  const thuNight = parseWindow('Thu 23:00', '1h30m');
  const daily = parseWindow('04:00', '1h');

  test('inside a weekly window that crosses midnight', () => {
    expect(windowState(at('2026-11-20T00:15:00Z'), [thuNight], 'UTC')).toEqual({ inside: true, at: at('2026-11-20T00:30:00Z') });
  });

  test('outside: when the next one opens', () => {
    expect(windowState(at('2026-11-20T00:30:00Z'), [thuNight], 'UTC')).toEqual({ inside: false, at: at('2026-11-26T23:00:00Z') });
    expect(windowState(at('2026-11-19T22:59:30Z'), [thuNight], 'UTC')).toEqual({ inside: false, at: at('2026-11-19T23:00:00Z') });
  });

  test('several windows: the nearest', () => {
    expect(windowState(at('2026-11-19T12:00:00Z'), [thuNight, daily], 'UTC')).toEqual({ inside: false, at: at('2026-11-19T23:00:00Z') });
    expect(windowState(at('2026-11-20T02:00:00Z'), [thuNight, daily], 'UTC')).toEqual({ inside: false, at: at('2026-11-20T04:00:00Z') });
  });

  test('in a time zone', () => {
    // 04:00 in Berlin is 03:00 UTC in November.
    expect(windowState(at('2026-11-20T03:10:00Z'), [daily], 'Europe/Berlin')).toEqual({ inside: true, at: at('2026-11-20T04:00:00Z') });
    expect(windowState(at('2026-11-20T04:10:00Z'), [daily], 'Europe/Berlin')).toEqual({ inside: false, at: at('2026-11-21T03:00:00Z') });
  });

  test('no windows: always inside', () => {
    expect(windowState(at('2026-11-20T00:00:00Z'), []).inside).toBe(true);
  });
});

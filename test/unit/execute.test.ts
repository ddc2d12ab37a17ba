/** The executor's rules for unit commands, with a recording stand-in for systemd (the real one is in test/integration/systemd). */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, hostnameTries } from '../../src/apply/execute';
import type { Action } from '../../src/apply/plan';
import * as paths from '../../src/system/paths';
import { unitDirs } from '../../src/system/paths';
import type { Systemd } from '../../src/system/systemd';

function recordingSystemd(states: Record<string, string>): Systemd & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    reload: async () => void calls.push('reload'),
    enable: async () => true,
    disable: async () => true,
    mask: async () => true,
    unmask: async () => false,
    unitFileState: async () => 'enabled',
    activeState: async (unit) => states[unit] ?? 'inactive',
    systemState: async () => 'running',
    run: async (command, unit) => {
      calls.push(`${command} ${unit}`);
      return { result: 'done', before: 'active', after: 'active' };
    },
    close: () => undefined,
  };
}

const commands: Action[] = [
  { kind: 'unit-command', origin: 'u', unit: 'a.service', command: 'restart' },
  { kind: 'unit-command', origin: 'u', unit: 'b.service', command: 'start' },
  { kind: 'unit-command', origin: 'u', unit: 'c.service', command: 'start' },
];

async function run(newInstance: boolean, prefix: Action[] = []) {
  const systemd = recordingSystemd({ 'b.service': 'active' });
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-exec-'));
  const results = await new Executor({ root, dryRun: false, systemd, unitDirs, newInstance }).run([...prefix, ...commands]);
  return { calls: systemd.calls, results: results.map((r) => `${r.outcome} ${r.subject}`) };
}

test('nothing changed: restart is skipped; start runs only for a unit not already active', async () => {
  expect(await run(false)).toEqual({
    calls: ['start c.service'],
    results: ['unchanged restart a.service', 'unchanged start b.service', 'changed start c.service'],
  });
});

test('a new instance runs restart-like commands as on a first boot', async () => {
  expect((await run(true)).calls).toEqual(['restart a.service', 'start c.service']);
});

test('a changed file makes restart run, after one reload', async () => {
  const unitFile: Action = { kind: 'file', origin: 'u', path: '/etc/systemd/system/a.service', content: Buffer.from('[Service]\n'), mode: 0o644, owner: undefined };
  expect((await run(false, [unitFile])).calls).toEqual(['reload', 'restart a.service', 'start c.service']);
});

test('a job queued behind the applying unit (ordered after it) is a change, with the reason, not a failure', async () => {
  const systemd = recordingSystemd({});
  systemd.run = async (command, unit) => {
    systemd.calls.push(`${command} ${unit}`);
    return { result: 'queued', before: 'inactive', after: 'inactive' };
  };
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-exec-'));
  const [result] = await new Executor({ root, dryRun: false, systemd, unitDirs, newInstance: true }).run([{ kind: 'unit-command', origin: 'u', unit: 'etcd2.service', command: 'start' }]);
  expect(result).toMatchObject({ outcome: 'changed', subject: 'start etcd2.service', detail: expect.stringMatching(/^queued/) });
});

test('a dry run sees what the actions before it would have written: a unit file, then its enable (offline)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-exec-'));
  const unit = Buffer.from('[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\nAlso=b.service\n');
  const actions: Action[] = [
    { kind: 'file', origin: 'u', path: '/etc/systemd/system/a.service', content: unit, mode: 0o644, owner: undefined },
    { kind: 'file', origin: 'u', path: '/etc/systemd/system/b.service', content: Buffer.from('[Install]\nWantedBy=a.service\n'), mode: 0o644, owner: undefined },
    { kind: 'enable', origin: 'u', unit: 'a.service', runtime: false, dir: '/etc/systemd/system' },
    { kind: 'mask', origin: 'u', unit: 'c.service', path: '/etc/systemd/system/c.service', runtime: false, mask: true },
    { kind: 'mask', origin: 'u', unit: 'c.service', path: '/etc/systemd/system/c.service', runtime: false, mask: true },
  ];
  const results = await new Executor({ root, dryRun: true, systemd: undefined, unitDirs }).run(actions);
  expect(results.map((r) => `${r.outcome} ${r.subject}${r.detail ? `: ${r.detail}` : ''}`)).toEqual([
    'changed file /etc/systemd/system/a.service',
    'changed file /etc/systemd/system/b.service',
    'changed enable a.service',
    'changed mask c.service',
    'unchanged mask c.service',
  ]);
  expect(readdirSync(root)).toEqual([]);
  const real = await new Executor({ root, dryRun: false, systemd: undefined, unitDirs }).run(actions);
  expect(real.map((r) => `${r.outcome} ${r.subject}`)).toEqual(results.map((r) => `${r.outcome} ${r.subject}`));
  expect(readlinkSync(join(root, 'etc/systemd/system/a.service.wants/b.service'))).toBe('/etc/systemd/system/b.service');
});

describe('the hostname', () => {
  // A stand-in hostnamectl that fails its first `failures` runs as hostnamectl does when D-Bus gives
  // up activating systemd-hostnamed, and records each run.
  const saved = { command: paths.commands.hostnamectl, tries: { ...hostnameTries } };
  let dir: string;
  const standIn = (failures: number) => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-hostnamectl-'));
    const script = join(dir, 'hostnamectl');
    writeFileSync(script, `#!/bin/sh\necho "$*" >>"${dir}/runs"\n[ "$(wc -l <"${dir}/runs")" -gt ${failures} ] && exit 0\necho "Could not set static hostname: Connection timed out" >&2\nexit 1\n`, { mode: 0o755 });
    paths.commands.hostnamectl = script;
    Object.assign(hostnameTries, { pauseMs: 10 });
  };
  const runs = () => readFileSync(join(dir, 'runs'), 'utf8').trim().split('\n');
  afterEach(() => {
    paths.commands.hostnamectl = saved.command;
    Object.assign(hostnameTries, saved.tries);
  });
  const setName: Action = { kind: 'hostname', origin: 'hostname', hostname: 'not-this-host-0123' };
  const apply = async () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-exec-'));
    return (await new Executor({ root, dryRun: false, systemd: recordingSystemd({}), unitDirs, newInstance: false }).run([setName])).map((r) => r.outcome);
  };

  test('hostnamectl timing out while systemd-hostnamed starts is tried again', async () => {
    standIn(2);
    expect(await apply()).toEqual(['changed']);
    expect(runs()).toEqual(['set-hostname not-this-host-0123', 'set-hostname not-this-host-0123', 'set-hostname not-this-host-0123']);
  });

  test('a hostnamectl that keeps failing fails the action after the last try', async () => {
    standIn(10);
    expect(await apply()).toEqual(['failed']);
    expect(runs()).toHaveLength(hostnameTries.attempts);
  });
});

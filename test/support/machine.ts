/**
 * Whole machines for tests: the image of images/machine.ts booted in QEMU with TCG, as the issue
 * and DESIGN.md describe. Each machine has its own copy of the disk and a config drive (ISO9660,
 * label config-2, made with genisoimage). The harness plays the boot loader and nothing else:
 * before each boot it runs the project's gptprio (`update_engine_client --boot-next DISK`) on the
 * disk image and passes the chosen slot's PARTUUID as mount.usr=. A guest reboot ends QEMU
 * (-no-reboot); boot again to go on. Results come from the serial console (a file) and, after a
 * clean poweroff, from ROOT's ext4 read with debugfs (no mount). Every wait is on a condition (a
 * line on the console, QEMU's exit) with a deadline; never a fixed sleep.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../../images/machine';
import { attr, readGpt, sectorSize } from '../../src/update/gpt';

/** The package (bin/ and dist/), found from here also when bundled (bench/run.mjs bundles the lab). */
const repo = packageRoot();

/** The commands building and booting a machine needs (CI installs them: scripts/ensure-deps.sh). */
export const machineTools = ['qemu-system-x86_64', 'mmdebstrap', 'genisoimage', 'debugfs', 'mkfs.ext4', 'mkfs.vfat'];

/** The tools of machineTools that are missing on this host. */
export function missingMachineTools(): string[] {
  return machineTools.filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
}

/** What booting needs on the host (root and machineTools); tests skip without it. */
export const canBootMachines = process.getuid?.() === 0 && missingMachineTools().length === 0;

export interface Forward {
  /** guestfwd: the guest connects to 10.0.2.100:guestPort and reaches 127.0.0.1:hostPort. */
  guestPort: number;
  hostPort: number;
}

export interface MachineOptions {
  /** The built image's directory (disk.raw, vmlinuz, initrd.img, boot.json). */
  image: string;
  /** This machine's directory: its disk, config drive, console logs. */
  dir: string;
  /** openstack/latest/user_data on the config drive; no config drive when undefined. */
  userData?: string;
  metaData?: Record<string, unknown>;
  networkData?: Record<string, unknown>;
  /** Host services the guest may reach (restrict=on allows nothing else). */
  guestfwd?: Forward[];
  /** Guest ports the host reaches on 127.0.0.1 (host port: guest port). */
  hostfwd?: { hostPort: number; guestPort: number }[];
  /** More kernel command line, after boot.json's. */
  cmdline?: string;
  memoryMiB?: number;
  /** Virtual CPUs; default 2. */
  cpus?: number;
}

/** The MAC address of every machine's network card (QEMU's default, made explicit: network_data.json names it). */
export const machineMac = '52:54:00:12:34:56';

/**
 * systemd's default start timeout (90 s) is for real hardware. A TCG guest on a loaded host runs
 * many times slower: a daemon that is merely slow to start (update_engine and locksmithd are
 * Type=dbus and Type=notify) would fail its boot. The boots here allow 15 minutes.
 */
const emulatedCmdline = 'systemd.default_timeout_start_sec=900';

export interface BootChoice {
  partition: number;
  label: string;
  partUuid: string;
}

function must(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`cannot run ${cmd} (${what}): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${what}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** One boot: QEMU running until the guest powers off or reboots. */
export class Boot {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private offset = 0;
  private text = '';

  constructor(
    readonly number: number,
    readonly choice: BootChoice,
    readonly serialLog: string,
    private readonly qmpSocket: string,
    private readonly qemu: ChildProcess,
    readonly started: number,
  ) {
    let stderr = '';
    qemu.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    this.exited = new Promise((resolve) => {
      qemu.on('exit', (code, signal) => {
        this.exit = { code, signal };
        if (code !== 0 && stderr) this.text += `\n[qemu: ${stderr.trim()}]\n`;
        resolve(this.exit);
      });
    });
  }

  /** The console so far (read incrementally from the serial log). */
  console(): string {
    if (!existsSync(this.serialLog)) return this.text;
    const fd = openSync(this.serialLog, 'r');
    try {
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.text += buf.subarray(0, n).toString('latin1');
      }
    } finally {
      closeSync(fd);
    }
    return this.text;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /**
   * Waits until `pattern` shows on the console (returns the match), checking every 200 ms; fails
   * when `failOn` shows, QEMU exits first, or `timeoutMs` passes, with the console's tail.
   */
  async waitFor(pattern: RegExp, timeoutMs: number, failOn?: RegExp): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.console();
      const m = text.match(pattern);
      if (m) return m;
      const bad = failOn && text.match(failOn);
      if (bad) throw new Error(`boot ${this.number}: "${lineAt(text, bad.index!)}" on the console while waiting for ${pattern}\n${tail(text)}`);
      if (!this.running) throw new Error(`boot ${this.number}: QEMU exited (${JSON.stringify(this.exit)}) before ${pattern} showed\n${tail(this.console())}`);
      if (Date.now() > deadline) throw new Error(`boot ${this.number}: ${pattern} did not show within ${timeoutMs / 1000} s\n${tail(text)}`);
      await Promise.race([new Promise((r) => setTimeout(r, 200)), this.exited]);
    }
  }

  /** Waits for QEMU to exit (a poweroff or a reboot), up to `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`boot ${this.number}: QEMU still running after ${timeoutMs / 1000} s\n${tail(this.console())}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Presses the power button (ACPI, over QMP): systemd-logind shuts the machine down cleanly. */
  async powerButton(): Promise<void> {
    await qmp(this.qmpSocket, 'system_powerdown');
  }

  /** A clean poweroff: the power button, then QEMU's exit. */
  async powerOff(timeoutMs = 180_000): Promise<void> {
    await this.powerButton();
    await this.waitExit(timeoutMs);
  }

  /** Pulls the plug. */
  kill(): void {
    if (this.running) this.qemu.kill('SIGKILL');
  }
}

/**
 * Polls `check` every `everyMs` (default 500 ms) until it holds; rejects after `timeoutMs` with
 * `what` and, when given, `context()` (consoles, logs) for the failure message.
 */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, context?: () => string, everyMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      // not yet
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${context ? `\n${context()}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function tail(text: string, lines = 60): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** The whole line of `text` that holds offset `index`, trimmed: what a match on the console was part of. */
function lineAt(text: string, index: number): string {
  const end = text.indexOf('\n', index);
  return text.slice(text.lastIndexOf('\n', index) + 1, end === -1 ? undefined : end).trim();
}

/** One QMP command over the monitor socket (the greeting, capabilities, then the command). */
function qmp(socket: string, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = connect(socket);
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`QMP ${command}: no answer within 10 s`));
    }, 10_000);
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if (msg['event']) continue;
        if (msg['error']) {
          clearTimeout(timer);
          c.destroy();
          reject(new Error(`QMP ${command}: ${JSON.stringify(msg['error'])}`));
          return;
        }
        if (step === 0) c.write('{"execute":"qmp_capabilities"}\n');
        else if (step === 1) c.write(`${JSON.stringify({ execute: command })}\n`);
        else {
          clearTimeout(timer);
          c.end();
          resolve();
          return;
        }
        step++;
      }
    });
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`QMP ${command}: ${err.message}`));
    });
  });
}

export class Machine {
  readonly disk: string;
  readonly configDrive: string | undefined;
  readonly boots: Boot[] = [];
  private readonly boot: { cmdline: string; usr: string };

  constructor(readonly options: MachineOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.disk = join(options.dir, 'disk.raw');
    must('cp', ['--sparse=always', join(options.image, 'disk.raw'), this.disk], 'the machine\'s disk');
    this.boot = JSON.parse(readFileSync(join(options.image, 'boot.json'), 'utf8')) as { cmdline: string; usr: string };
    this.configDrive = options.userData === undefined ? undefined : makeConfigDrive(options.dir, options);
  }

  /** The boot loader's part: gptprio on the disk image, using up a try of the chosen slot. */
  chooseSlot(): BootChoice {
    const out = must(process.execPath, [join(repo, 'bin/update_engine_client.js'), '--boot-next', this.disk], 'boot selection');
    const v = Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { partition: Number(v['PARTITION']), label: v['LABEL'] ?? '', partUuid: (v['PARTUUID'] ?? '').toLowerCase() };
  }

  /** Boots the machine once: boot selection, then QEMU until the guest powers off or reboots. */
  start(): Boot {
    if (this.boots.some((b) => b.running)) throw new Error('the machine is running already');
    const choice = this.chooseSlot();
    const n = this.boots.length + 1;
    const serialLog = join(this.options.dir, `console-${n}.log`);
    const qmpSocket = join(this.options.dir, 'qmp.sock');
    writeFileSync(serialLog, '');
    const append = [this.boot.cmdline, this.boot.usr.replace('{partuuid}', choice.partUuid), emulatedCmdline, this.options.cmdline ?? ''].join(' ').trim();
    const net = [
      'user,id=net0,restrict=on',
      ...(this.options.guestfwd ?? []).map((f) => `guestfwd=tcp:10.0.2.100:${f.guestPort}-cmd:nc 127.0.0.1 ${f.hostPort}`),
      ...(this.options.hostfwd ?? []).map((f) => `hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`),
    ].join(',');
    const args = [
      '-accel', 'tcg,thread=multi', '-cpu', 'max', '-machine', 'pc', '-nodefaults', '-vga', 'none',
      '-smp', String(this.options.cpus ?? 2), '-m', String(this.options.memoryMiB ?? 1024), '-display', 'none', '-no-reboot',
      '-serial', `file:${serialLog}`,
      '-kernel', join(this.options.image, 'vmlinuz'), '-initrd', join(this.options.image, 'initrd.img'), '-append', append,
      '-drive', `file=${this.disk},format=raw,if=virtio`,
      ...(this.configDrive ? ['-drive', `file=${this.configDrive},format=raw,if=virtio,readonly=on`] : []),
      '-netdev', net, '-device', `virtio-net-pci,netdev=net0,mac=${machineMac},romfile=`,
      '-qmp', `unix:${qmpSocket},server=on,wait=off`,
    ];
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const boot = new Boot(n, choice, serialLog, qmpSocket, qemu, Date.now());
    this.boots.push(boot);
    return boot;
  }

  /** Ends whatever still runs (afterAll). */
  stop(): void {
    for (const b of this.boots) b.kill();
  }

  /**
   * A USR slot's boot flags in the disk's GPT, as gptprio reads them. Read-only (no repair of a
   * half-written table), so it may look while the guest writes the table: a repair from here would
   * overwrite the guest's write.
   */
  slotFlags(label: 'USR-A' | 'USR-B'): { priority: number; tries: number; successful: boolean } {
    const e = readGpt(this.disk, { repair: false }).entries.find((x) => x.name === label);
    if (!e) throw new Error(`${this.disk} has no ${label}`);
    return { priority: attr.priority(e.attributes), tries: attr.tries(e.attributes), successful: attr.successful(e.attributes) };
  }

  /** The machine's current (or last) boot. */
  get current(): Boot | undefined {
    return this.boots.at(-1);
  }

  /** ROOT's file system, read with debugfs at its offset in the disk (after a clean poweroff). */
  root(): Ext4 {
    const root = readGpt(this.disk, { repair: false }).entries.find((e) => e.name === 'ROOT');
    if (!root) throw new Error(`${this.disk} has no ROOT partition`);
    return new Ext4(`${this.disk}?offset=${Number(root.firstLba) * sectorSize}`);
  }
}

/** An ISO9660 config drive (label config-2) with openstack/latest/{user_data,meta_data.json,network_data.json}. */
export function makeConfigDrive(dir: string, o: Pick<MachineOptions, 'userData' | 'metaData' | 'networkData'>): string {
  const tree = join(dir, 'config-drive');
  const latest = join(tree, 'openstack/latest');
  mkdirSync(latest, { recursive: true });
  writeFileSync(join(latest, 'user_data'), o.userData ?? '');
  writeFileSync(join(latest, 'meta_data.json'), JSON.stringify(o.metaData ?? {}));
  if (o.networkData) writeFileSync(join(latest, 'network_data.json'), JSON.stringify(o.networkData));
  const iso = join(dir, 'config-drive.iso');
  must('genisoimage', ['-quiet', '-R', '-J', '-V', 'config-2', '-o', iso, tree], 'the config drive');
  return iso;
}

export interface Stat {
  /** Permission bits only (debugfs shows no file type in Mode:), e.g. 0o640. */
  mode: number;
  uid: number;
  gid: number;
  inode: number;
  size: number;
  type: string;
  ctime: string;
  mtime: string;
}

/** Reading an ext4 file system in an image with debugfs: no mount, no loop device. */
export class Ext4 {
  constructor(readonly spec: string) {}

  private debugfs(request: string): string {
    const r = spawnSync('debugfs', ['-R', request, this.spec], { encoding: 'latin1', maxBuffer: 64 << 20 });
    if (r.error) throw new Error(`cannot run debugfs: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`debugfs -R "${request}" failed: ${r.stderr}`);
    return r.stdout + '\0' + r.stderr;
  }

  /** The file's bytes as text, or undefined when there is no such file. */
  read(path: string): string | undefined {
    const [out, err] = this.debugfs(`cat ${path}`).split('\0') as [string, string];
    if (/File not found|not found by ext2_lookup/.test(err)) return undefined;
    return Buffer.from(out, 'latin1').toString('utf8');
  }

  stat(path: string): Stat | undefined {
    const [out, err] = this.debugfs(`stat ${path}`).split('\0') as [string, string];
    if (/File not found|not found by ext2_lookup/.test(err) || !out.includes('Inode:')) return undefined;
    const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
    return {
      inode: num(/Inode:\s+(\d+)/),
      type: /Type:\s+(\S+)/.exec(out)?.[1] ?? '',
      mode: parseInt(/Mode:\s+([0-7]+)/.exec(out)?.[1] ?? 'NaN', 8),
      uid: num(/User:\s+(\d+)/),
      gid: num(/Group:\s+(\d+)/),
      size: num(/Size:\s+(\d+)/),
      ctime: /ctime:\s+\S+\s+--\s+(.+)/.exec(out)?.[1]?.trim() ?? '',
      mtime: /mtime:\s+\S+\s+--\s+(.+)/.exec(out)?.[1]?.trim() ?? '',
    };
  }

  /** Names in a directory (without . and ..), or undefined when there is no such directory. */
  list(path: string): string[] | undefined {
    const [out, err] = this.debugfs(`ls -l ${path}`).split('\0') as [string, string];
    if (/File not found|not found by ext2_lookup/.test(err)) return undefined;
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/).slice(8).join(' '))
      .filter((n) => n && n !== '.' && n !== '..');
  }
}

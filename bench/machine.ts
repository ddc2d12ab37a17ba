/**
 * The machine benchmark (section 10 of `npm run bench`): the image of images/machine.ts built cold
 * (an empty cache: mmdebstrap fetches Debian from the mirrors), built again from that cache, and
 * booted once in QEMU with examples/machine.yaml on a config drive, from QEMU's start to
 * coreos-cloudinit's config drive unit having applied it (its summary line on the console). The
 * builds run as a person runs them (`node images/make-images.js machine OUT`, dist/ built) with
 * XDG_CACHE_HOME pointing at a temporary directory, so the shared cache is neither used nor
 * changed; everything is removed after.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine, missingMachineTools, tail } from '../test/support/machine';

const root = join(__dirname, '..');
const minute = 60_000;
const targets = { cachedS: 60, coldS: 5 * 60, provisionedS: 90 };
// coreos-cloudinit's summary of its run from the config drive: the user data applied (or, with
// failures, applied as far as it went; they are printed).
const applied = /\[\s*([\d.]+)\] coreos-cloudinit\[\d+\]: (\d+) changed, (\d+) unchanged, (\d+) failed, (\d+) skipped/;
const applying = /\[\s*([\d.]+)\] systemd\[1\]: Starting user-configdrive\.service/;
const broken = /Kernel panic|emergency mode/;
const startup = /Startup finished in (.+?)\s*\r?\n/;

const s = (seconds: number) => (seconds < 90 ? `${seconds.toFixed(1)} s` : `${(seconds / 60).toFixed(1)} min (${Math.round(seconds)} s)`);

/** One `npm run images -- machine` into `out` with the cache in `cache`: seconds, and its steps. */
function build(out: string, cache: string, log: string): { seconds: number; steps: Map<string, number> } {
  const fd = openSync(log, 'w');
  const started = performance.now();
  try {
    const r = spawnSync(process.execPath, [join(root, 'images/make-images.js'), 'machine', out], {
      cwd: root,
      env: { ...process.env, XDG_CACHE_HOME: cache },
      stdio: ['ignore', fd, fd],
      timeout: 30 * minute,
    });
    if (r.status !== 0) throw new Error(`the image build failed (${r.error?.message ?? `status ${r.status}`}):\n${tail(readFileSync(log, 'utf8'), 30)}`);
  } finally {
    closeSync(fd);
  }
  const seconds = (performance.now() - started) / 1000;
  // images/machine.ts logs each step as "NAME   SECONDS s".
  const steps = new Map([...readFileSync(log, 'utf8').matchAll(/^(\S.*?)\s+([\d.]+) s$/gm)].map((m) => [m[1]!, Number(m[2])]));
  return { seconds, steps };
}

function printBuild(label: string, b: { seconds: number; steps: Map<string, number> }): void {
  const releases = [...b.steps].filter(([k]) => k.startsWith('release ')).reduce((t, [, v]) => t + v, 0);
  const rootfs = [...b.steps].find(([k]) => k.startsWith('rootfs '));
  const rest = b.seconds - releases - (rootfs?.[1] ?? 0);
  console.log(
    `   ${label.padEnd(14)} ${s(b.seconds).padEnd(18)} (${rootfs ? `${rootfs[0]} ${s(rootfs[1])}, ` : ''}releases N+1 and N+2 ${s(releases)}, the rest ${s(rest)})`,
  );
}

async function main(): Promise<void> {
  const missing = missingMachineTools();
  if (process.getuid?.() !== 0 || missing.length > 0) {
    console.log(`\n10. skipped: building and booting the machine needs root${missing.length > 0 ? ` and ${missing.join(', ')}` : ''} (scripts/ensure-deps.sh installs them as root)`);
    return;
  }
  const [load1] = loadavg();
  console.log('\n10. the machine image (npm run images -- machine) built cold and from its cache, and its first boot in QEMU (TCG) with examples/machine.yaml');
  console.log(`   load average at the start: ${load1!.toFixed(1)} (the figures grow with the machine's load)`);
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-machine-'));
  let machine: Machine | undefined;
  try {
    const cache = join(work, 'cache');
    mkdirSync(cache);
    const cold = build(join(work, 'image-cold'), cache, join(work, 'build-cold.log'));
    rmSync(join(work, 'image-cold'), { recursive: true, force: true });
    const cached = build(join(work, 'image'), cache, join(work, 'build-cached.log'));
    printBuild('cold build', cold);
    printBuild('cached build', cached);
    console.log(`   target: cold build within 5 min, Debian fetched (${s(cold.seconds)}): ${cold.seconds <= targets.coldS ? 'met' : 'MISSED'}`);
    console.log(`   target: cached build under a minute (${s(cached.seconds)}): ${cached.seconds < targets.cachedS ? 'met' : 'MISSED'}`);

    machine = new Machine({
      image: join(work, 'image'),
      dir: join(work, 'machine'),
      userData: readFileSync(join(root, 'examples/machine.yaml'), 'utf8'),
      metaData: { uuid: 'bench-lab-01', hostname: 'bench-lab-01' },
      networkData: { networks: [{ id: 'net0', type: 'ipv4', ip_address: '10.0.2.15', netmask: '255.255.255.0' }] },
      cmdline: 'systemd.journald.forward_to_console=1',
    });
    const boot = machine.start();
    // A loaded host slows a TCG guest down many times over; the deadline is for a hung boot only.
    const done = await boot.waitFor(applied, 15 * minute, broken);
    const toProvisioned = (Date.now() - boot.started) / 1000;
    const began = applying.exec(boot.console());
    const failed = Number(done[4]);
    // The config drive's unit is started by a path unit, outside the boot's transaction: systemd's
    // "Startup finished" may come before or after it.
    const finished = await boot.waitFor(startup, 5 * minute, broken);
    console.log(`   first boot: QEMU's start to provisioned (coreos-cloudinit's run from the config drive done) ${s(toProvisioned)}: ${done[2]} changed, ${failed} failed`);
    if (began) console.log(`   of which coreos-cloudinit's unit ran ${s(Number(done[1]) - Number(began[1]))} (guest clock)`);
    for (const m of boot.console().matchAll(/coreos-cloudinit\[\d+\]: (failed .*)/g)) console.log(`   ${m[1]!.trim()}`);
    console.log(`   systemd: startup finished in ${finished[1]}`);
    console.log(
      `   target: first boot to provisioned within 90 s, nothing failed; 20-30 s idle (${s(toProvisioned)}${failed > 0 ? `, ${failed} failed` : ''}): ${toProvisioned <= targets.provisionedS && failed === 0 ? 'met' : 'MISSED'}`,
    );
  } finally {
    machine?.stop();
    if (machine?.current) await machine.current.exited;
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

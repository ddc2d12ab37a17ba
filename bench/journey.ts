/**
 * The update journey benchmark (section 8 of `npm run bench`): 20 simulated machines (each a disk
 * image, a dbus-daemon, the real update_engine and locksmithd programs, the stand-in logind whose
 * Reboot runs gptprio and starts them again), one real etcd with total_slots 3, one update server
 * on loopback. A new stable version is published; the figures are the time from publishing to the
 * last machine booted on it (and to the fleet settled: every new slot marked good, no reboot slot
 * held), the reboots in flight at once, and the Omaha and etcd requests per machine. etcd's
 * requests are its own count (grpc_server_started_total from /metrics), so they include the
 * benchmark's one watch and nothing else: it polls only the disks and its watch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attr, readGpt } from '../src/update/gpt';
import { Journey, until } from '../test/support/fleet';

const machines = Number(process.env.JOURNEY_MACHINES ?? 20);
const totalSlots = 3;
const checks = { first: 2, interval: 10, fuzz: 3 };

/** etcd's count of gRPC calls started, by service/method. */
async function etcdCalls(endpoint: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^grpc_server_started_total\{grpc_method="(\w+)",grpc_service="etcdserverpb\.(\w+)",grpc_type="\w+"\} (\d+)/gm)) {
    out.set(`${m[2]}.${m[1]}`, Number(m[3]));
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-bench-journey-'));
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  console.log(`\n8. the update journey: ${machines} machines, total_slots ${totalSlots}, checks ${checks.first} s after start then every ${checks.interval} s ±${checks.fuzz} s`);
  const setUpAt = Date.now();
  const j = await Journey.start(dir, { machines, totalSlots, checks, healthTimeoutS: 30 });
  try {
    console.log(`   fleet up in ${s(Date.now() - setUpAt)} (every machine booted on 1000.0.0)`);
    await new Promise((r) => setTimeout(r, 3000)); // the first checks (noupdate) are behind
    const omaha0 = { ...j.server.counts };
    const etcd0 = await etcdCalls(j.etcd.endpoints[0]!);
    const published = await j.publish('stable', '1001.1.0');
    const newSlotGood = (disk: string) => {
      const usrB = readGpt(disk).entries.find((e) => e.name === 'USR-B')!;
      return attr.successful(usrB.attributes);
    };
    await until(() => j.machines.every((m) => m.version === '1001.1.0'), 600_000, 'every machine on 1001.1.0');
    const lastBoot = Math.max(...j.machines.map((m) => m.boots.at(-1)!.at));
    await until(() => j.machines.every((m) => newSlotGood(m.disk)) && (j.holdersSeen.at(-1) ?? []).length === 0, 120_000, 'the fleet settled');
    const settled = Date.now();
    const omaha = Object.fromEntries(Object.entries(j.server.counts).map(([k, v]) => [k, v - omaha0[k as keyof typeof omaha0]]));
    const etcd1 = await etcdCalls(j.etcd.endpoints[0]!);
    const calls = [...etcd1].map(([k, v]) => [k, v - (etcd0.get(k) ?? 0)] as const).filter(([, v]) => v > 0);
    const etcdTotal = calls.reduce((a, [, v]) => a + v, 0);
    const reboots = j.machines.map((m) => m.reboots.at(-1)! - published).sort((a, b) => a - b);
    const staged = j.machines.map((m) => {
      const line = m.log.find((l) => l.includes('1001.1.0 is staged'));
      return line ? Number.parseFloat(line) * 1000 + j.t0 - published : NaN;
    });

    console.log(`   publish to last machine on 1001.1.0   ${s(lastBoot - published)}`);
    console.log(`   publish to the fleet settled           ${s(settled - published)} (every USR-B marked good, no slot held)`);
    console.log(`   staged on every machine by             ${s(Math.max(...staged))} (first ${s(Math.min(...staged))})`);
    console.log(`   reboots, from publish                  first ${s(reboots[0]!)}, last ${s(reboots.at(-1)!)}; ${(((reboots.at(-1)! - reboots[0]!) / 1000 / Math.max(1, machines - 1)) * totalSlots).toFixed(2)} s per reboot per slot`);
    console.log(`   most slot holders at once              ${j.maxHolders()} of ${totalSlots} (semaphore changes watched: ${j.holdersSeen.length})`);
    const per = (n: number) => (n / machines).toFixed(1);
    console.log(`   Omaha requests per machine             ${per(omaha.requests!)}: update checks ${per(omaha.checks!)} (Finalize's confirmation among them), event reports and pings ${per(omaha.requests! - omaha.checks!)}; payload GETs ${per(omaha.downloads!)}`);
    console.log(`   etcd requests per machine              ${(etcdTotal / machines).toFixed(1)}: ${calls.map(([k, v]) => `${k} ${(v / machines).toFixed(1)}`).join(', ')}`);
  } finally {
    await j.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});

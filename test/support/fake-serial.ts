/**
 * CloudSigma's server context on a serial port, for tests: fake-serial.py behind a pseudo-terminal,
 * which answers as CloudSigma does (the context JSON, then EOT) or fails as told, request by request.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const python = '/usr/bin/python3';

/** What the stand-in does with a request: answer, stay silent, send half the context, or send bytes without end. */
export type SerialMode = 'ok' | 'silent' | 'truncate' | 'oversize';

/** A server context as CloudSigma serves it (the shape of coreos-cloudinit's test), user data base64. */
export const cloudsigmaContext = {
  context: true,
  cpu: 4000,
  mem: 4294967296,
  meta: {
    base64_fields: 'cloudinit-user-data',
    'cloudinit-user-data': '',
    ssh_public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 john@doe',
  },
  name: 'coreos',
  nics: [
    {
      boot_order: null,
      ip_v4_conf: { conf: 'dhcp', ip: { gateway: '31.171.244.1', meta: {}, nameservers: ['178.22.66.167', '8.8.8.8'], netmask: 22, tags: [], uuid: '31.171.251.74' } },
      ip_v6_conf: null,
      mac: '22:3d:09:6b:90:f3',
      model: 'virtio',
      vlan: null,
    },
    {
      boot_order: null,
      ip_v4_conf: null,
      ip_v6_conf: null,
      mac: '22:ae:4a:fb:8f:31',
      model: 'virtio',
      vlan: { meta: { description: '', name: 'CoreOS' }, tags: [], uuid: '5dec030e-25b8-4621-a5a4-a3302c9d9619' },
    },
  ],
  smp: 2,
  status: 'running',
  uuid: '20a0059b-041e-4d0c-bcc6-9b2852de48b3',
};

/** The context with `userData` in meta cloudinit-user-data, base64 as CloudSigma's tools put it. */
export function contextWithUserData(userData: string, change: object = {}): typeof cloudsigmaContext {
  return { ...cloudsigmaContext, meta: { ...cloudsigmaContext.meta, 'cloudinit-user-data': Buffer.from(userData).toString('base64') }, ...change };
}

export class FakeSerial {
  /** The terminal end: the serial port the datasource reads. */
  path = '';
  /** The keys asked for, in order (`""`: the whole context). */
  readonly requests: string[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private stderr = '';

  /** Starts the stand-in with `context` (an object sent as JSON, or text sent as it is) and a mode a request. */
  async start(context: object | string, modes: SerialMode[] = []): Promise<this> {
    const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-serial-')), 'context.json');
    writeFileSync(file, typeof context === 'string' ? context : JSON.stringify(context));
    const child = spawn(python, [join(__dirname, 'fake-serial.py'), file, ...modes], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        for (let nl = out.indexOf('\n'); nl !== -1; nl = out.indexOf('\n')) {
          const line = out.slice(0, nl);
          out = out.slice(nl + 1);
          if (!this.path) {
            this.path = line;
            resolve();
          } else if (line.startsWith('request ')) this.requests.push(JSON.parse(line.slice('request '.length)) as string);
        }
      });
      child.on('exit', (code) => reject(new Error(`fake-serial.py exited ${code}: ${this.stderr}`)));
    });
    return this;
  }

  async stop(): Promise<void> {
    this.child?.stdin!.end();
    await this.exited;
  }
}

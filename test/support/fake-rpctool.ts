/**
 * A stand-in for open-vm-tools' vmware-rpctool, for tests: a small shell script in a temporary
 * directory, to put first on PATH. `vmware-rpctool "info-get guestinfo.KEY"` prints the file
 * keys/KEY and a newline (exit 0), or says `No value found` on stderr (exit 1) when there is none,
 * as the real tool does. It can be told to fail instead, for every key or one: say it is no VMware
 * machine, hang, answer slowly, print more than any limit, or die. Every call's argument is logged.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `not-vmware`: as outside VMware; `hang`: never answers; `slow`: answers after 0.3 s; `huge`: 17 MB of output; `crash`: exit 139 with a message. */
export type RpctoolFailure = 'not-vmware' | 'hang' | 'slow' | 'huge' | 'crash';

const script = `#!/bin/sh
here=$(dirname "$0")
printf '%s\\n' "$*" >> "$here/calls"
[ $# -eq 1 ] || { echo "rpctool syntax: one argument" >&2; exit 1; }
case "$1" in
  "info-get guestinfo."*) key=\${1#info-get guestinfo.} ;;
  *) echo "Unknown command" >&2; exit 1 ;;
esac
if [ -f "$here/failure" ]; then
  read -r failure only < "$here/failure"
  if [ -z "$only" ] || [ "$only" = "$key" ]; then
    case "$failure" in
      not-vmware) echo "Failed sending message to VMware." >&2; exit 1 ;;
      hang) exec sleep 600 ;;
      slow) sleep 0.3 ;;
      huge) exec head -c 17000000 /dev/zero ;;
      crash) echo "Segmentation fault" >&2; exit 139 ;;
    esac
  fi
fi
[ -f "$here/keys/$key" ] || { echo "No value found" >&2; exit 1; }
cat "$here/keys/$key"
echo
`;

export class FakeRpctool {
  /** The directory to put first on PATH: it holds vmware-rpctool. */
  readonly dir = mkdtempSync(join(tmpdir(), 'bootsmith-rpctool-'));

  constructor(keys: Record<string, string> = {}) {
    writeFileSync(join(this.dir, 'vmware-rpctool'), script);
    chmodSync(join(this.dir, 'vmware-rpctool'), 0o755);
    mkdirSync(join(this.dir, 'keys'));
    for (const [key, value] of Object.entries(keys)) this.set(key, value);
  }

  /** Sets guestinfo.KEY (`key` without `guestinfo.`). */
  set(key: string, value: string): void {
    writeFileSync(join(this.dir, 'keys', key), value);
  }

  /** Fails every call, or only the calls for `key`. */
  fail(failure: RpctoolFailure, key = ''): void {
    writeFileSync(join(this.dir, 'failure'), `${failure} ${key}\n`);
  }

  /** A PATH with this stand-in first, then `rest`. */
  path(rest = process.env.PATH ?? ''): string {
    return `${this.dir}:${rest}`;
  }

  /** The argument of each call so far, in order. */
  calls(): string[] {
    const log = join(this.dir, 'calls');
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(0, -1) : [];
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An attribute value as XML writes it: `&`, `<`, `"` and line breaks escaped. */
const attribute = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;').replace(/\n/g, '&#10;');

/** An OVF environment document as vSphere writes it (ovf-env.xml), with `properties` as guestinfo.KEY properties. */
export function ovfEnvironment(properties: Record<string, string>): string {
  const lines = Object.entries(properties).map(([key, value]) => `         <Property oe:key="guestinfo.${key}" oe:value="${attribute(value)}"/>`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id=""
     ve:vCenterId="vm-1042">
   <PlatformSection>
      <Kind>VMware ESXi</Kind>
      <Version>7.0.3</Version>
      <Vendor>VMware, Inc.</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
         <Property oe:key="vami.timezone" oe:value="UTC"/>
${lines.join('\n')}
   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="00:50:56:8b:91:42" ve:network="VM Network" ve:unitNumber="7"/>
   </ve:EthernetAdapterSection>
</Environment>
`;
}

// Writes schemas/ignition-vX_Y.schema.json, one JSON Schema per Ignition spec version, from one
// description of the specs (coreos/ignition docs/configuration-v3_*.md and, for the 2.x line,
// doc/configuration-v2_*.md on the spec2x branch). Each field says the version that brought it, so
// the schemas differ exactly where the published specs do. Run it after changing this description:
//   node scripts/ignition-schemas.mjs          (write the files)
//   node scripts/ignition-schemas.mjs --check  (exit 1 when a file is out of date; the tests do this)
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The spec versions with a schema, newest of each line first. */
export const ignitionVersions = ['3.5.0', '3.4.0', '3.3.0', '3.2.0', '3.1.0', '3.0.0', '2.3.0', '2.2.0', '2.1.0', '2.0.0'];

/** `3.1` <= `3.2.0`: does the spec `version` have what `since` brought? Same major version only. */
function has(version, since) {
  const [a, b] = version.split('.').map(Number);
  const [c, d] = since.split('.').map(Number);
  return a === c && b >= d;
}

/**
 * Optional fields take null too: Ignition reads them into pointers, and null leaves them unset. A
 * definition (`$ref`) takes null itself (see {@link nullable}).
 */
function optional(schema) {
  if (schema.$ref) return schema;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return { ...schema, type: [...types, 'null'] };
}

const str = (description) => ({ type: 'string', description });
const int = (description) => ({ type: 'integer', description });
const bool = (description) => ({ type: 'boolean', description });
const strings = (description) => ({ type: 'array', items: { type: 'string' }, description });
const ref = (name, description) => ({ $ref: `#/definitions/${name}`, description });
const list = (name, description) => ({ type: 'array', items: ref(name), description });

/**
 * A closed mapping. `fields` maps a key to [schema, since?] (since: the version that brought it;
 * omitted: every version of the line); `required` names the keys that must be there.
 */
function object(version, description, fields, required = []) {
  const properties = {};
  for (const [key, [schema, since, deprecated]] of Object.entries(fields)) {
    if (since && !has(version, since)) continue;
    const s = required.includes(key) ? schema : optional(schema);
    properties[key] = deprecated ? { ...s, deprecated: true, deprecationMessage: deprecated } : s;
  }
  const present = required.filter((k) => k in properties);
  return { type: 'object', description, additionalProperties: false, ...(present.length ? { required: present } : {}), properties };
}

const hashText = (version) =>
  has(version, '3.1') ? 'the hash, in the form sha512-HEX or sha256-HEX; of the decompressed data when compression is set' : 'the hash, in the form sha512-HEX';

/** The definitions shared by the sections of spec `version` (3.x). */
function definitions3(version) {
  const resource = (what, extra = {}, required = []) =>
    object(
      version,
      what,
      {
        source: [str('the URL: http, https, tftp, s3, data' + (has(version, '3.2') ? ', gs' : '') + (has(version, '3.4') ? ', arn' : ''))],
        compression: [{ type: 'string', enum: ['', 'gzip'], description: 'the compression of the data: gzip, or none' }, extra.compressionSince],
        httpHeaders: [list('httpHeader', 'HTTP headers sent with an http or https request'), '3.1'],
        verification: [ref('verification', 'how the data is verified')],
      },
      required,
    );
  const owner = (what) =>
    object(version, `the ${what}`, { id: [int(`the ${what} ID`)], name: [str(`the ${what} name`)] });
  return {
    verification: object(version, 'how fetched data is verified', { hash: [str(hashText(version))] }),
    httpHeader: object(version, 'an HTTP header', { name: [str('the header name')], value: [str('the header value')] }, ['name']),
    configResource: resource('a config to merge or replace with', { compressionSince: '3.1' }, ['source']),
    caResource: resource('a certificate bundle (PEM)', { compressionSince: '3.1' }, ['source']),
    contents: resource('where the data comes from'),
    user: owner('user'),
    group: owner('group'),
    partition: object(version, 'a partition', {
      label: [str('the PARTLABEL')],
      number: [int('the partition number (1-based); 0 for the next free slot')],
      sizeMiB: [int('the size in MiB; 0 for as large as possible')],
      startMiB: [int('the start in MiB; 0 for the start of the largest free block')],
      typeGuid: [str('the GPT partition type GUID')],
      guid: [str('the GPT unique partition GUID')],
      wipePartitionEntry: [bool('clobber an existing partition that does not match')],
      shouldExist: [bool('whether the partition should exist (default true)')],
      resize: [bool('resize an existing partition that matches in all but size'), '3.2'],
    }),
    tang: object(
      version,
      'a tang server',
      {
        url: [str('the URL of the tang server')],
        thumbprint: [str('the thumbprint of a trusted signing key')],
        advertisement: [str('the advertisement JSON'), '3.4'],
      },
      ['url', 'thumbprint'],
    ),
  };
}

function spec3(version) {
  const definitions = definitions3(version);
  const node = {
    path: [str('the absolute path')],
    overwrite: [bool('whether to replace what is at the path (default false)')],
    user: [ref('user', 'the owner')],
    group: [ref('group', 'the group')],
  };
  const mode = [int('the permission mode, in decimal (0644 is 420)')];
  const ignition = object(
    version,
    'metadata about the config itself',
    {
      version: [str(`the spec version: ${version}`)],
      config: [
        object(version, 'other configs', {
          merge: [list('configResource', 'configs merged into this one')],
          replace: [ref('configResource', 'the config that replaces this one')],
        }),
      ],
      timeouts: [
        object(version, 'HTTP timeouts', {
          httpResponseHeaders: [int('seconds to wait for response headers (default 10; 0: no limit)')],
          httpTotal: [int('seconds for a whole fetch with retries (default 0: no limit)')],
        }),
      ],
      security: [
        object(version, 'network security', {
          tls: [object(version, 'TLS', { certificateAuthorities: [list('caResource', 'extra certificate authorities')] })],
        }),
      ],
      proxy: [
        object(version, 'HTTP(S) proxy', {
          httpProxy: [str('the proxy URL for HTTP (and HTTPS unless httpsProxy is set)')],
          httpsProxy: [str('the proxy URL for HTTPS')],
          noProxy: [strings('hosts not proxied')],
        }),
        '3.1',
      ],
    },
    ['version'],
  );
  const formats = ['ext4', 'btrfs', 'xfs', 'vfat', 'swap', ...(has(version, '3.3') ? ['none'] : [])];
  const storage = object(version, 'disks, partitions, RAID, LUKS, filesystems, files, directories and links', {
    disks: [
      {
        type: 'array',
        description: 'disks; every device once',
        items: object(
          version,
          'a disk',
          {
            device: [str('the absolute path of the device')],
            wipeTable: [bool('erase the partition table first')],
            partitions: [list('partition', 'the partitions')],
          },
          ['device'],
        ),
      },
    ],
    raid: [
      {
        type: 'array',
        description: 'RAID arrays; every name once',
        items: object(
          version,
          'a RAID array',
          {
            name: [str('the md device name')],
            level: [str('the RAID level: linear, raid0, raid1, raid4, raid5, raid6, raid10')],
            devices: [strings('the absolute paths of the member devices')],
            spares: [int('the number of spares')],
            options: [strings('more mdadm options')],
          },
          ['name', 'level', 'devices'],
        ),
      },
    ],
    filesystems: [
      {
        type: 'array',
        description: 'filesystems; every device once',
        items: object(
          version,
          'a filesystem',
          {
            device: [str('the absolute path of the device')],
            format: [{ type: 'string', enum: formats, description: `the format: ${formats.join(', ')}` }],
            path: [str('where Ignition mounts it while it runs')],
            wipeFilesystem: [bool('wipe the device first')],
            label: [str('the filesystem label')],
            uuid: [str('the filesystem UUID')],
            options: [strings('more mkfs options')],
            mountOptions: [strings('mount options while Ignition runs'), '3.1'],
          },
          ['device', 'format'],
        ),
      },
    ],
    files: [
      {
        type: 'array',
        description: 'files; every path of files, directories and links once',
        items: object(
          version,
          'a file',
          { ...node, contents: [ref('contents', 'the contents')], append: [list('contents', 'fragments appended')], mode },
          ['path'],
        ),
      },
    ],
    directories: [
      {
        type: 'array',
        description: 'directories; every path of files, directories and links once',
        items: object(version, 'a directory', { ...node, mode }, ['path']),
      },
    ],
    links: [
      {
        type: 'array',
        description: 'links; every path of files, directories and links once',
        items: object(
          version,
          'a link',
          { ...node, target: [str('the target of the link')], hard: [bool('a hard link instead of a symbolic one')] },
          ['path', 'target'],
        ),
      },
    ],
    luks: [
      {
        type: 'array',
        description: 'LUKS devices; every name once',
        items: object(
          version,
          'a LUKS device',
          {
            name: [str('the name of the device')],
            device: [str('the absolute path of the underlying device')],
            keyFile: [ref('contents', 'the key file')],
            label: [str('the LUKS label')],
            uuid: [str('the LUKS UUID')],
            options: [strings('more cryptsetup luksFormat options')],
            discard: [bool('issue discards'), '3.4'],
            openOptions: [strings('more cryptsetup luksOpen options'), '3.4'],
            wipeVolume: [bool('wipe the device first')],
            clevis: [
              object(version, 'clevis binding', {
                tang: [list('tang', 'tang servers')],
                tpm2: [bool('bind to the TPM2')],
                threshold: [int('pieces needed to unlock (default 1)')],
                custom: [
                  object(
                    version,
                    'a custom clevis pin; no other clevis option with it',
                    { pin: [str('the clevis pin')], config: [str('the clevis config JSON')], needsNetwork: [bool('the pin needs the network')] },
                    ['pin', 'config'],
                  ),
                ],
              }),
            ],
            cex: [object(version, 'IBM Crypto Express', { enabled: [bool('use a CEX card')] }), '3.5'],
          },
          ['name', 'device'],
        ),
      },
      '3.2',
    ],
  });
  const systemd = object(version, 'systemd units', {
    units: [
      {
        type: 'array',
        description: 'units; every name once',
        items: object(
          version,
          'a unit',
          {
            name: [str('the unit name with its type, such as thing.service')],
            enabled: [bool('enable (true) or disable (false); needs an [Install] section')],
            mask: [bool('mask (true) or unmask (false)')],
            contents: [str('the unit file')],
            dropins: [
              {
                type: 'array',
                description: 'drop-ins; every name once',
                items: object(version, 'a drop-in', { name: [str('the name, ending in .conf')], contents: [str('the drop-in')] }, ['name']),
              },
            ],
          },
          ['name'],
        ),
      },
    ],
  });
  const passwd = object(version, 'users and groups', {
    users: [
      {
        type: 'array',
        description: 'users; every name once',
        items: object(
          version,
          'a user',
          {
            name: [str('the user name')],
            passwordHash: [str('the crypt(3) password hash')],
            sshAuthorizedKeys: [strings('SSH public keys; every key once')],
            uid: [int('the user ID')],
            gecos: [str('the GECOS field')],
            homeDir: [str('the home directory')],
            noCreateHome: [bool('do not create the home directory')],
            primaryGroup: [str('the primary group')],
            groups: [strings('supplementary groups')],
            noUserGroup: [bool('do not create a group named after the user')],
            noLogInit: [bool('do not add to lastlog and faillog')],
            shell: [str('the login shell')],
            shouldExist: [bool('false deletes the user'), '3.2'],
            system: [bool('a system account')],
          },
          ['name'],
        ),
      },
    ],
    groups: [
      {
        type: 'array',
        description: 'groups; every name once',
        items: object(
          version,
          'a group',
          {
            name: [str('the group name')],
            gid: [int('the group ID')],
            passwordHash: [str('the crypt(3) password hash')],
            shouldExist: [bool('false deletes the group'), '3.2'],
            system: [bool('a system group')],
          },
          ['name'],
        ),
      },
    ],
  });
  const top = object(
    version,
    `Ignition config, spec ${version}`,
    {
      ignition: [ignition],
      storage: [storage],
      systemd: [systemd],
      passwd: [passwd],
      kernelArguments: [
        object(version, 'kernel arguments', {
          shouldExist: [strings('arguments that must be on the kernel command line')],
          shouldNotExist: [strings('arguments that must not be on the kernel command line')],
        }),
        '3.3',
      ],
    },
    ['ignition'],
  );
  return { definitions, top };
}

function spec2(version) {
  const owner = (what) =>
    object(version, `the ${what}`, { id: [int(`the ${what} ID`)], name: [str(`the ${what} name`), '2.1'] });
  const verification = object(version, 'how fetched data is verified', { hash: [str(hashText(version))] });
  const configResource = object(version, 'a config', { source: [str('the URL of the config')], verification: [ref('verification', 'how it is verified')] }, ['source']);
  const definitions = {
    verification,
    configResource,
    user: owner('user'),
    group: owner('group'),
    dropin: object(version, 'a drop-in', { name: [str('the name, ending in .conf')], contents: [str('the drop-in')] }, ['name']),
  };
  const node = {
    filesystem: [str('the name of the filesystem ("root" is predefined)')],
    path: [str('the absolute path within the filesystem')],
    overwrite: [bool('whether to replace what is at the path'), '2.2'],
    user: [ref('user', 'the owner')],
    group: [ref('group', 'the group')],
  };
  const mode = [int('the permission mode, in decimal (0644 is 420)')];
  const createUser = {
    uid: [int('the user ID')],
    gecos: [str('the GECOS field')],
    homeDir: [str('the home directory')],
    noCreateHome: [bool('do not create the home directory')],
    primaryGroup: [str('the primary group')],
    groups: [strings('supplementary groups')],
    noUserGroup: [bool('do not create a group named after the user')],
    noLogInit: [bool('do not add to lastlog and faillog')],
    shell: [str('the login shell')],
  };
  const userFields = {
    name: [str('the user name')],
    passwordHash: [str('the crypt(3) password hash')],
    sshAuthorizedKeys: [strings('SSH public keys')],
    ...Object.fromEntries(Object.entries(createUser).map(([k, [s]]) => [k, [s, '2.1']])),
    system: [bool('a system account'), '2.1'],
    create: [
      object(version, 'how the user is created', { ...createUser, system: [bool('a system account'), '2.2'] }),
      undefined,
      has(version, '2.1') ? 'use the fields of the user itself' : undefined,
    ],
  };
  const ignition = object(
    version,
    'metadata about the config itself',
    {
      version: [str(`the spec version: ${version}`)],
      config: [
        object(version, 'other configs', {
          append: [list('configResource', 'configs appended to this one')],
          replace: [ref('configResource', 'the config that replaces this one')],
        }),
      ],
      timeouts: [
        object(version, 'HTTP timeouts', {
          httpResponseHeaders: [int('seconds to wait for response headers (default 10; 0: no limit)')],
          httpTotal: [int('seconds for a whole fetch with retries (default 0: no limit)')],
        }),
        '2.1',
      ],
      security: [
        object(version, 'network security', {
          tls: [object(version, 'TLS', { certificateAuthorities: [list('configResource', 'extra certificate authorities')] })],
        }),
        '2.2',
      ],
    },
    ['version'],
  );
  const formats = has(version, '2.1') ? ['ext4', 'btrfs', 'xfs', 'vfat', 'swap'] : ['ext4', 'btrfs', 'xfs'];
  const storage = object(version, 'disks, partitions, RAID, filesystems, files, directories and links', {
    disks: [
      {
        type: 'array',
        description: 'disks',
        items: object(
          version,
          'a disk',
          {
            device: [str('the absolute path of the device')],
            wipeTable: [bool('erase the partition table first')],
            partitions: [
              {
                type: 'array',
                description: 'the partitions',
                items: object(version, 'a partition', {
                  label: [str('the PARTLABEL')],
                  number: [int('the partition number (1-based); 0 for the next free slot')],
                  size: [int('the size in logical sectors'), undefined, has(version, '2.3') ? 'use sizeMiB' : undefined],
                  start: [int('the start in logical sectors'), undefined, has(version, '2.3') ? 'use startMiB' : undefined],
                  sizeMiB: [int('the size in MiB'), '2.3'],
                  startMiB: [int('the start in MiB'), '2.3'],
                  typeGuid: [str('the GPT partition type GUID')],
                  guid: [str('the GPT unique partition GUID'), '2.1'],
                  wipePartitionEntry: [bool('clobber an existing partition that does not match'), '2.3'],
                  shouldExist: [bool('whether the partition should exist (default true)'), '2.3'],
                }),
              },
            ],
          },
          ['device'],
        ),
      },
    ],
    raid: [
      {
        type: 'array',
        description: 'RAID arrays',
        items: object(
          version,
          'a RAID array',
          {
            name: [str('the md device name')],
            level: [str('the RAID level')],
            devices: [strings('the absolute paths of the member devices')],
            spares: [int('the number of spares')],
            options: [strings('more mdadm options'), '2.2'],
          },
          ['name', 'level', 'devices'],
        ),
      },
    ],
    filesystems: [
      {
        type: 'array',
        description: 'filesystems, by name for files, directories and links',
        items: object(version, 'a filesystem: mount or path', {
          name: [str('the name files, directories and links use')],
          mount: [
            object(
              version,
              'the device to format and mount',
              {
                device: [str('the absolute path of the device')],
                format: [{ type: 'string', enum: formats, description: `the format: ${formats.join(', ')}` }],
                wipeFilesystem: [bool('wipe the device first'), '2.1'],
                label: [str('the filesystem label'), '2.1'],
                uuid: [str('the filesystem UUID'), '2.1'],
                options: [strings('more mkfs options'), '2.1'],
                create: [
                  object(version, 'how the filesystem is created', { force: [bool('overwrite an existing filesystem')], options: [strings('more mkfs options')] }),
                  undefined,
                  has(version, '2.1') ? 'use wipeFilesystem and options' : undefined,
                ],
              },
              ['device', 'format'],
            ),
          ],
          path: [str('the path where it is already mounted')],
        }),
      },
    ],
    files: [
      {
        type: 'array',
        description: 'files',
        items: object(
          version,
          'a file',
          {
            ...node,
            append: [bool('append to the file'), '2.2'],
            contents: [
              object(version, 'the contents', {
                compression: [{ type: 'string', enum: ['', 'gzip'], description: 'the compression: gzip, or none' }],
                source: [str('the URL of the contents')],
                verification: [ref('verification', 'how it is verified')],
              }),
            ],
            mode,
          },
          ['filesystem', 'path'],
        ),
      },
    ],
    directories: [
      { type: 'array', description: 'directories', items: object(version, 'a directory', { ...node, mode }, ['filesystem', 'path']) },
      '2.1',
    ],
    links: [
      {
        type: 'array',
        description: 'links',
        items: object(
          version,
          'a link',
          { ...node, target: [str('the target of the link')], hard: [bool('a hard link instead of a symbolic one')] },
          ['filesystem', 'path', 'target'],
        ),
      },
      '2.1',
    ],
  });
  const systemd = object(version, 'systemd units', {
    units: [
      {
        type: 'array',
        description: 'units',
        items: object(
          version,
          'a unit',
          {
            name: [str('the unit name with its type, such as thing.service')],
            enable: [bool('enable the unit'), undefined, has(version, '2.1') ? 'use enabled' : undefined],
            enabled: [bool('enable (true) or disable (false); needs an [Install] section'), '2.1'],
            mask: [bool('mask the unit')],
            contents: [str('the unit file')],
            dropins: [{ type: 'array', description: 'drop-ins', items: ref('dropin') }],
          },
          ['name'],
        ),
      },
    ],
  });
  const networkd = object(version, 'systemd-networkd files', {
    units: [
      {
        type: 'array',
        description: 'networkd units',
        items: object(
          version,
          'a networkd unit',
          {
            name: [str('the name, such as 00-eth0.network')],
            contents: [str('the file')],
            dropins: [{ type: 'array', description: 'drop-ins', items: ref('dropin') }, '2.2'],
          },
          ['name'],
        ),
      },
    ],
  });
  const passwd = object(version, 'users and groups', {
    users: [{ type: 'array', description: 'users', items: object(version, 'a user', userFields, ['name']) }],
    groups: [
      {
        type: 'array',
        description: 'groups',
        items: object(
          version,
          'a group',
          {
            name: [str('the group name')],
            gid: [int('the group ID')],
            passwordHash: [str('the crypt(3) password hash')],
            system: [bool('a system group'), '2.2'],
          },
          ['name'],
        ),
      },
    ],
  });
  const top = object(
    version,
    `Ignition config, spec ${version}`,
    { ignition: [ignition], storage: [storage], systemd: [systemd], networkd: [networkd], passwd: [passwd] },
    ['ignition'],
  );
  return { definitions, top };
}

/** The definitions, each taking null as well: they are used for optional fields. */
function nullable(definitions) {
  return Object.fromEntries(Object.entries(definitions).map(([name, s]) => [name, optional(s)]));
}

/** The schema of spec `version` as a JSON Schema document. */
export function ignitionSchema(version) {
  const spec = version.startsWith('3.') ? spec3(version) : spec2(version);
  const { top } = spec;
  const definitions = nullable(spec.definitions);
  const { description, ...rest } = top;
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://bootsmith.invalid/schemas/ignition-v${version.split('.').slice(0, 2).join('_')}.schema.json`,
    title: `Ignition config, spec ${version}`,
    description: `${description}. Written from the published specification (coreos/ignition docs/configuration-v${version.split('.').slice(0, 2).join('_')}.md).`,
    ...rest,
    definitions,
  };
}

export function schemaFile(version) {
  return join(root, 'schemas', `ignition-v${version.split('.').slice(0, 2).join('_')}.schema.json`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const version of ignitionVersions) {
    const text = `${JSON.stringify(ignitionSchema(version), null, 2)}\n`;
    let current = '';
    try {
      current = readFileSync(schemaFile(version), 'utf8');
    } catch {
      current = '';
    }
    if (current === text) continue;
    if (check) {
      process.stderr.write(`${schemaFile(version)} is out of date: run node scripts/ignition-schemas.mjs\n`);
      stale++;
    } else writeFileSync(schemaFile(version), text);
  }
  process.exit(stale > 0 ? 1 : 0);
}

/** Every host path and command name the apply engine uses, in one place. Paths are inside the root. */

export interface UnitDirs {
  /** Units of the system manager (services, timers, ...). */
  system: { persistent: string; runtime: string };
  /** systemd-networkd's .network, .netdev and .link files. */
  network: { persistent: string; runtime: string };
}

/** The system manager's directories. A user manager (tests) uses /etc/systemd/user and /run/systemd/user. */
export const unitDirs: UnitDirs = {
  system: { persistent: '/etc/systemd/system', runtime: '/run/systemd/system' },
  network: { persistent: '/etc/systemd/network', runtime: '/run/systemd/network' },
};

/** Where systemd looks for unit files, in its order, to find an [Install] section offline. */
export const unitSearchPath = ['/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

export const files = {
  hostname: '/etc/hostname',
  hosts: '/etc/hosts',
  passwd: '/etc/passwd',
  group: '/etc/group',
  updateConf: '/etc/coreos/update.conf',
  /** Read when /etc/coreos/update.conf does not exist yet. */
  updateConfDefaults: '/usr/share/coreos/update.conf',
  oemRelease: '/etc/oem-release',
  flannelOptions: '/run/flannel/options.env',
  /** Metadata addresses as COREOS_PRIVATE_IPV4 and the like, for units' EnvironmentFile=. */
  environment: '/etc/environment',
  /** The user data as last fetched, and a record of where from (source, instance id). */
  userDataCopy: '/var/lib/coreos-cloudinit/user-data',
  userDataRecord: '/var/lib/coreos-cloudinit/instance.json',
  /** Where scripts given as user data are kept before they run. */
  scripts: '/var/lib/coreos-cloudinit/scripts',
};

/** Absolute, so a PATH without the sbin directories (cron, some CI shells) still finds them. */
export const commands = {
  useradd: '/usr/sbin/useradd',
  groupadd: '/usr/sbin/groupadd',
  groupdel: '/usr/sbin/groupdel',
  chpasswd: '/usr/sbin/chpasswd',
  gpasswd: '/usr/bin/gpasswd',
  hostnamectl: '/usr/bin/hostnamectl',
  chroot: '/usr/sbin/chroot',
  /** coreutils' sync: `sync -f` is syncfs(2), which Node does not have. */
  sync: '/usr/bin/sync',
  /** Tells systemd a Type=notify daemon is ready (the daemons, not the apply engine). */
  systemdNotify: '/usr/bin/systemd-notify',
  /** Sets a serial port raw (CloudSigma's server context), which Node cannot. */
  stty: '/usr/bin/stty',
  /** open-vm-tools' guestinfo reader, looked up on PATH: distributions put it in /usr/bin or /usr/sbin, and tests put a stand-in first. */
  vmwareRpctool: 'vmware-rpctool',
};

/**
 * Checks text as systemd reads a unit file or drop-in: sections, assignments, comments, line
 * continuations. Returns problems with offsets relative to the text.
 */

export interface UnitFileProblem {
  severity: 'error' | 'warning';
  code: 'unit-syntax' | 'unknown-section';
  message: string;
  /** Offsets into the text. */
  start: number;
  end: number;
}

const common = ['Unit', 'Install'];
/** Sections systemd knows for each unit type (systemd.unit(5) and the type's man page). */
const sectionsByType: Record<string, string[]> = {
  service: [...common, 'Service'],
  socket: [...common, 'Socket'],
  mount: [...common, 'Mount'],
  automount: [...common, 'Automount'],
  swap: [...common, 'Swap'],
  timer: [...common, 'Timer'],
  path: [...common, 'Path'],
  slice: [...common, 'Slice'],
  scope: [...common, 'Scope'],
  target: common,
  device: common,
  // systemd.network(5), systemd.netdev(5), systemd.link(5)
  network: [
    'Match', 'Link', 'SR-IOV', 'Network', 'Address', 'Neighbor', 'IPv6AddressLabel', 'RoutingPolicyRule',
    'NextHop', 'Route', 'DHCP', 'DHCPv4', 'DHCPv6', 'DHCPPrefixDelegation', 'IPv6AcceptRA', 'DHCPServer',
    'DHCPServerStaticLease', 'IPv6SendRA', 'IPv6Prefix', 'IPv6RoutePrefix', 'IPv6PREF64Prefix', 'Bridge',
    'BridgeFDB', 'BridgeMDB', 'LLDP', 'CAN', 'IPoIB', 'QDisc', 'NetworkEmulator', 'TokenBucketFilter', 'PIE',
    'FlowQueuePIE', 'StochasticFairBlue', 'StochasticFairnessQueueing', 'BFIFO', 'PFIFO', 'PFIFOHeadDrop',
    'PFIFOFast', 'CAKE', 'ControlledDelay', 'DeficitRoundRobinScheduler', 'DeficitRoundRobinSchedulerClass',
    'EnhancedTransmissionSelection', 'GenericRandomEarlyDetection', 'FairQueueingControlledDelay', 'FairQueueing',
    'TrivialLinkEqualizer', 'HierarchyTokenBucket', 'HierarchyTokenBucketClass', 'HeavyHitterFilter',
    'QuickFairQueueing', 'QuickFairQueueingClass', 'BridgeVLAN', 'ModemManager',
  ],
  netdev: [
    'Match', 'NetDev', 'Bridge', 'VLAN', 'MACVLAN', 'MACVTAP', 'IPVLAN', 'IPVTAP', 'VXLAN', 'GENEVE', 'BareUDP',
    'L2TP', 'L2TPSession', 'MACsec', 'MACsecReceiveChannel', 'MACsecTransmitAssociation',
    'MACsecReceiveAssociation', 'Tunnel', 'FooOverUDP', 'Peer', 'VXCAN', 'Tun', 'Tap', 'WireGuard',
    'WireGuardPeer', 'Bond', 'Xfrm', 'VRF', 'BatmanAdvanced', 'IPoIB', 'WLAN',
  ],
  link: ['Match', 'Link', 'SR-IOV'],
};

/** The unit types (name suffixes) systemd and systemd-networkd know. */
export const unitTypes = Object.keys(sectionsByType);

/** Checks unit or drop-in text for a unit of `type` (a suffix such as "service"; unknown: no section check). */
export function checkUnitText(text: string, type: string | undefined): UnitFileProblem[] {
  const known = type ? sectionsByType[type] : undefined;
  const problems: UnitFileProblem[] = [];
  let inSection = false;
  let continued = false;
  let offset = 0;
  for (const rawLine of text.split('\n')) {
    const start = offset;
    offset += rawLine.length + 1;
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    const trimmed = line.trim();
    const end = start + line.length;
    if (continued) {
      // A continued value goes on until a line that does not end in a backslash; comments inside are kept out.
      if (!trimmed.startsWith('#') && !trimmed.startsWith(';')) continued = trimmed.endsWith('\\');
      continue;
    }
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    if (trimmed.startsWith('[')) {
      inSection = true; // even a broken header starts a section, so one mistake is one finding
      if (trimmed.length < 3 || trimmed.indexOf(']') !== trimmed.length - 1) {
        problems.push({ severity: 'error', code: 'unit-syntax', message: `bad section header ${JSON.stringify(trimmed)}: want [Name]`, start, end });
        continue;
      }
      const name = trimmed.slice(1, -1);
      if (known && !known.includes(name) && !name.startsWith('X-')) {
        problems.push({
          severity: 'warning',
          code: 'unknown-section',
          message: `unknown section [${name}] for a .${type} unit; systemd ignores it (known: ${known.join(', ')})`,
          start,
          end,
        });
      }
      continue;
    }
    const eq = trimmed.indexOf('=');
    if (eq <= 0 || !isKeyName(trimmed.slice(0, eq).trim())) {
      problems.push({
        severity: 'error',
        code: 'unit-syntax',
        message: `${JSON.stringify(trimmed.length > 60 ? trimmed.slice(0, 57) + '...' : trimmed)} is not a Key=Value assignment, section header or comment; systemd ignores it`,
        start,
        end,
      });
      continue;
    }
    if (!inSection) {
      problems.push({ severity: 'error', code: 'unit-syntax', message: 'assignment before any [Section] header; systemd ignores it', start, end });
    }
    continued = trimmed.endsWith('\\');
  }
  return problems;
}

/** `[A-Za-z0-9_-]+`, by hand (the rules of a first file compile no more patterns than they must). */
function isKeyName(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 45)) return false;
  }
  return key.length > 0;
}

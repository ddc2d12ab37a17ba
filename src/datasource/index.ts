/** The datasources, built from what the command line asks for, in its order. */
import { cloudsigmaSource } from './cloudsigma';
import type { CloudsigmaOptions } from './cloudsigma';
import { digitaloceanSource } from './digitalocean';
import { ec2Source } from './ec2';
import { gceSource } from './gce';
import type { RetryPolicy } from './http';
import { configDriveSource, openstackSource } from './openstack';
import { packetSource } from './packet';
import { cmdlineSource, fileSource, urlSource } from './simple';
import type { Datasource } from './types';
import { waagentSource } from './waagent';
import { vmwareGuestinfoSource, vmwareOvfSource } from './vmware';
import type { NetconfFormat } from './defaults';

export interface SourceRequest {
  files: string[];
  url: string | undefined;
  ec2: string | undefined;
  openstack: string | undefined;
  gce: string | undefined;
  digitalocean: string | undefined;
  packet: string | undefined;
  /** The Azure agent's directory (--from-waagent). */
  waagent: string | undefined;
  /** Where CloudSigma's server context and the DMI product name are read (--from-cloudsigma-metadata). */
  cloudsigma: CloudsigmaOptions | undefined;
  configDrive: string | undefined;
  /** Whether to read VMware guestinfo (--from-vmware-guestinfo). */
  vmwareGuestinfo: boolean;
  vmwareOvfEnv: string | undefined;
  /** The kernel command line's file, when --from-proc-cmdline is given. */
  cmdlineFile: string | undefined;
  /** --convert-netconf: the network configuration format read from the source that has it (debian: the config drive; digitalocean, packet: those clouds'; vmware: guestinfo and OVF environments). */
  netconf?: NetconfFormat;
  policy: RetryPolicy;
}

export function datasourcesFor(r: SourceRequest): Datasource[] {
  const out: Datasource[] = r.files.map((f) => fileSource(f));
  if (r.url !== undefined) out.push(urlSource(r.url, r.policy));
  if (r.ec2 !== undefined) out.push(ec2Source(r.ec2, r.policy));
  if (r.openstack !== undefined) out.push(openstackSource(r.openstack, r.policy));
  if (r.gce !== undefined) out.push(gceSource(r.gce, r.policy));
  if (r.digitalocean !== undefined) out.push(digitaloceanSource(r.digitalocean, r.policy, r.netconf === 'digitalocean' ? r.netconf : undefined));
  if (r.packet !== undefined) out.push(packetSource(r.packet, r.policy, r.netconf === 'packet' ? r.netconf : undefined));
  if (r.waagent !== undefined) out.push(waagentSource(r.waagent));
  if (r.cloudsigma !== undefined) out.push(cloudsigmaSource(r.cloudsigma, r.policy));
  if (r.configDrive !== undefined) out.push(configDriveSource(r.configDrive, r.netconf === 'debian' ? r.netconf : undefined));
  if (r.vmwareGuestinfo) out.push(vmwareGuestinfoSource(r.policy, {}, r.netconf === 'vmware' ? r.netconf : undefined));
  if (r.vmwareOvfEnv !== undefined) out.push(vmwareOvfSource(r.vmwareOvfEnv, r.policy, r.netconf === 'vmware' ? r.netconf : undefined));
  if (r.cmdlineFile !== undefined) out.push(cmdlineSource(r.cmdlineFile, r.policy));
  return out;
}

import type { Command } from 'commander';
import type { Logger } from 'pino';
import { UsageError } from '../errors.ts';
import { formatAddress, parseAddress } from '../util/address.ts';
import { realClock } from '../util/clock.ts';
import { ROLE_CERT_NAME, type LinkSecurity } from '../wire/secure-link.ts';
import { RedisLocator, parseClusterUrls } from '../locator/redis-locator.ts';
import { ReplicaClient } from '../locator/replica-client.ts';
import { FleetContent } from '../locator/fleet-content.ts';
import { ClaimStore } from '../locator/claims.ts';
import { ClaimingContent } from '../locator/claiming-content.ts';
import type { RemoteContent } from '../migrate/remote-content.ts';
import type { ContentIdFormat } from '../content/content-id.ts';

/** The datacenter-wide locator's flags (`flimcd target`, `flimcd index add`). */
export interface ClusterFlags {
  cluster?: string;
  replicaAddress?: string;
}

export function addClusterOptions(cmd: Command, publishes: string): Command {
  return cmd
    .option('--cluster <urls>', 'datacenter-wide content locator: Redis Cluster seed nodes, redis://HOST:PORT[,redis://HOST:PORT…]')
    .option('--replica-address <addr>', `with --cluster: this host's \`flimcd replica-server\` as sibling hosts reach it, tcp:HOST:PORT; ${publishes}`);
}

/** Checks the flags: the seed URLs, and a replica address siblings can dial (not a wildcard). */
export function clusterFromFlags(f: ClusterFlags): { urls: string[]; replicaAddress: string | undefined } | undefined {
  if (f.cluster === undefined) {
    if (f.replicaAddress !== undefined) throw new UsageError('--replica-address needs --cluster (it names this host in the datacenter-wide locator)');
    return undefined;
  }
  const urls = parseClusterUrls(f.cluster).map((u) => `redis://${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}`);
  let replicaAddress: string | undefined;
  if (f.replicaAddress !== undefined) {
    const a = parseAddress(f.replicaAddress, '--replica-address');
    if (a.kind !== 'tcp' || a.port === 0 || a.host === '0.0.0.0' || a.host === '::') {
      throw new UsageError(`--replica-address: "${f.replicaAddress}" must be tcp:HOST:PORT that sibling hosts can dial (not a wildcard address or port 0)`);
    }
    replicaAddress = formatAddress(a);
  }
  return { urls, replicaAddress };
}

/**
 * What a target agent gets from `--cluster`: the locator, the LAN fetcher,
 * and the view joining them; `close` publishes what is queued and disconnects.
 * With `--replica-address` the host can serve what it receives, so it also
 * takes part in in-flight claims (src/locator/claiming-content.ts): content a
 * sibling is already fetching over the WAN is waited for and taken over the LAN.
 */
export function openFleetContent(c: { urls: string[]; replicaAddress: string | undefined }, security: LinkSecurity, log: Logger, idFormat: ContentIdFormat): { remote: RemoteContent; close(): Promise<void> } {
  const locator = new RedisLocator({ urls: c.urls, idFormat, clock: realClock, log });
  // Sibling replica servers present the target's certificate (flimcd-target), whatever peer name this agent pins for its source;
  // this agent presents its own target certificate to them, which `flimcd certs` makes with clientAuth for that.
  const client = new ReplicaClient({ security: security.mode === 'cert' ? { ...security, peerName: ROLE_CERT_NAME.target } : security, clock: realClock, log });
  const claiming = c.replicaAddress
    ? new ClaimingContent({ locator, client, claims: new ClaimStore({ cluster: locator.client, idFormat, holder: c.replicaAddress, clock: realClock, log, onFailure: (e, what) => locator.unavailable(e, what) }), selfAddress: c.replicaAddress, clock: realClock, log })
    : undefined;
  const remote = claiming ?? new FleetContent({ locator, client, selfAddress: c.replicaAddress, log });
  return {
    remote,
    async close() {
      await claiming?.close();
      client.close();
      await locator.close();
    },
  };
}

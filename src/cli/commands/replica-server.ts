import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { ReplicaIndex } from '../../replica-index/replica-index.ts';
import { ReplicaServer } from '../../locator/replica-server.ts';
import { formatAddress, parseAddress } from '../../util/address.ts';
import { log } from '../../util/log.ts';
import { UsageError } from '../../errors.ts';
import { onShutdownSignal } from '../signals.ts';
import { exitCodeForSignal } from '../exit-codes.ts';
import { addSecurityOptions, securityFromFlags, type SecurityFlags } from '../security-options.ts';

interface ReplicaServerOptions extends SecurityFlags {
  index: string;
  listen: string;
  json?: boolean;
}

/** `flimcd replica-server`: this host's registered images, served by content id to sibling target hosts. */
export function registerReplicaServer(program: Command): void {
  addSecurityOptions(program.command('replica-server'), 'target')
    .description('Serve the blocks of this host\'s replica index (registered images, received blocks) by content id to sibling target hosts over the LAN, read-only, over TLS.')
    .requiredOption('--index <dir>', 'the replica index whose images are served (see `flimcd index`)')
    .option('--listen <addr>', 'where sibling target agents connect', 'tcp:0.0.0.0:7100')
    .option('--json', 'print events as JSON lines')
    .addHelpText('after', '\nUse the credentials of this host\'s target agent (the same --psk-file, or the target\'s --tls-* files).\nPublish this host\'s images to the datacenter\'s locator with `flimcd index add --cluster … --replica-address ADDR`.\n\nExample:\n  flimcd replica-server --index /var/lib/flimcd/index --listen tcp:0.0.0.0:7100 --psk-file /etc/flimcd/link.psk')
    .action(async (o: ReplicaServerOptions) => {
      if (!existsSync(o.index) || !statSync(o.index).isDirectory()) throw new UsageError(`--index: ${o.index} is not a replica index directory (\`flimcd index add\` creates one)`);
      const listen = parseAddress(o.listen, '--listen');
      const security = securityFromFlags(o);
      const index = ReplicaIndex.open(o.index, { readOnly: true });
      const server = new ReplicaServer({ index, listen, security, log });
      let signalled: NodeJS.Signals | undefined;
      const stopped = new Promise<void>((r) => onShutdownSignal(async (sig) => { signalled = sig; r(); }));
      try {
        const bound = await server.listen();
        process.stdout.write((o.json ? JSON.stringify({ event: 'listening', listen: formatAddress(bound) }) : `flimcd replica-server: serving ${o.index} at ${formatAddress(bound)}`) + '\n');
        await stopped;
      } finally {
        await server.close();
        await index.close();
      }
      if (signalled) process.exitCode = exitCodeForSignal(signalled);
    });
}

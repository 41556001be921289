/**
 * The flimcd commands as main.ts loads them: a name, the one line the
 * top-level help shows, and the module that defines it. Only the module of the
 * command being run is imported, so `flimcd --help` and a mistyped command do not
 * load LMDB, zstd, zod and the engines (a few hundred modules).
 * commands/index.ts registers them all at once (tests); test/cli/command-table.test.ts
 * checks the two agree.
 */
import type { Command } from 'commander';

export interface CommandEntry {
  /** The top-level command name(s) the module registers. */
  names: readonly string[];
  /** One line per name for the top-level help. */
  summaries: readonly string[];
  load: () => Promise<(program: Command) => void>;
}

export const COMMAND_TABLE: readonly CommandEntry[] = [
  { names: ['export'], summaries: ['serve a disk image over NBD'], load: async () => (await import('./commands/export.ts')).registerExport },
  { names: ['wan'], summaries: ['emulate a WAN link (bandwidth, RTT, faults) as a TCP/unix proxy'], load: async () => (await import('./commands/wan.ts')).registerWan },
  { names: ['demo'], summaries: ['a live migration on this machine, through an emulated WAN, with a workload'], load: async () => (await import('./commands/demo.ts')).registerDemo },
  { names: ['load'], summaries: ['the VM stand-in: a checked workload against an NBD export'], load: async () => (await import('./commands/load.ts')).registerLoad },
  {
    names: ['source', 'target'],
    summaries: ['serve the running VM\'s disk and migrate it live to a target agent', 'receive a live migration and serve the VM\'s disk at the destination'],
    load: async () => (await import('./commands/agents.ts')).registerAgents,
  },
  {
    names: ['status', 'cutover', 'retry', 'abort'],
    summaries: ['show a running agent\'s phase, progress and ETA', 'ask a running source agent to cut over now', 'start a new migration on a source whose last one ended (it kept serving the VM)', 'abort a running migration (refused on the source after cut-over)'],
    load: async () => (await import('./commands/control.ts')).registerControl,
  },
  { names: ['index'], summaries: ['manage a target\'s replica index of local images'], load: async () => (await import('./commands/index-cmd.ts')).registerIndex },
  { names: ['vm'], summaries: ['whole-VM migration with QEMU (disk by flimcd, RAM by QEMU)'], load: async () => (await import('./commands/vm.ts')).registerVm },
  { names: ['simulate'], summaries: ['simulate a migration on a modelled link, disk and VM'], load: async () => (await import('./commands/simulate.ts')).registerSimulate },
  { names: ['plan'], summaries: ['predict every algorithm for this image and link, and recommend one'], load: async () => (await import('./commands/plan.ts')).registerPlan },
  { names: ['certs'], summaries: ['make link credentials: a CA with certificates, or a PSK file'], load: async () => (await import('./commands/certs.ts')).registerCerts },
  { names: ['replica-server'], summaries: ['serve this host\'s indexed images to sibling target hosts by content id (LAN fetch)'], load: async () => (await import('./commands/replica-server.ts')).registerReplicaServer },
  { names: ['fleet'], summaries: ['migrate a group of VMs together: shared WAN cap, shared content sent once, one view'], load: async () => (await import('./commands/fleet.ts')).registerFleet },
];

/**
 * Registers the command `name` names in full (loading its module) and every
 * other command as a stub that only lists it in the top-level help. A name that
 * is no command (`--help`, a typo) loads nothing.
 */
export async function registerForInvocation(program: Command, name: string | undefined): Promise<void> {
  const wanted = COMMAND_TABLE.find((e) => name !== undefined && e.names.includes(name));
  const register = wanted ? await wanted.load() : undefined;
  for (const entry of COMMAND_TABLE) {
    if (entry === wanted && register) register(program);
    else entry.names.forEach((n, i) => program.command(n).summary(entry.summaries[i] ?? '').helpOption(false).allowUnknownOption().allowExcessArguments());
  }
}

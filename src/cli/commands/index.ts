import type { Command } from 'commander';
import { registerExport } from './export.ts';
import { registerWan } from './wan.ts';
import { registerDemo } from './demo.ts';
import { registerLoad } from './load.ts';
import { registerAgents } from './agents.ts';
import { registerControl } from './control.ts';
import { registerIndex } from './index-cmd.ts';
import { registerVm } from './vm.ts';
import { registerSimulate } from './simulate.ts';
import { registerPlan } from './plan.ts';
import { registerCerts } from './certs.ts';
import { registerReplicaServer } from './replica-server.ts';
import { registerFleet } from './fleet.ts';

/** Every subcommand registers itself here; one line each. */
export function registerCommands(program: Command): void {
  registerExport(program);
  registerWan(program);
  registerDemo(program);
  registerLoad(program);
  registerAgents(program);
  registerControl(program);
  registerIndex(program);
  registerVm(program);
  registerSimulate(program);
  registerPlan(program);
  registerCerts(program);
  registerReplicaServer(program);
  registerFleet(program);
}

import type { Command } from 'commander';
import { registerExport } from './export.ts';
import { registerDemo } from './demo.ts';

/** Every subcommand registers itself here; one line each. */
export function registerCommands(program: Command): void {
  registerExport(program);
  registerDemo(program);
}

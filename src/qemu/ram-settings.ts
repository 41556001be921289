/**
 * The migration settings `flimcd vm migrate` changes on the source QEMU
 * (capabilities such as pause-before-switchover, parameters such as
 * max-bandwidth), remembered as they were so that the same QEMU is left as
 * found, on success and on rollback: a later migration must not crawl at an
 * old run's bandwidth limit.
 */
import type { Logger } from 'pino';
import type { QmpClient } from './qmp.ts';

export interface MigrationSettings {
  capabilities?: Record<string, boolean>;
  /** `migrate-set-parameters` arguments, e.g. `{ 'max-bandwidth': 12_500_000 }`. */
  parameters?: Record<string, number | boolean | string>;
}

export class ChangedMigrationSettings {
  private restored = false;
  private constructor(
    private readonly qmp: QmpClient,
    /** The values before the change, only for what was changed. */
    readonly before: Required<MigrationSettings>,
  ) {}

  /** Reads the current values of what `want` names, then sets `want`. */
  static async apply(qmp: QmpClient, want: MigrationSettings): Promise<ChangedMigrationSettings> {
    const before: Required<MigrationSettings> = { capabilities: {}, parameters: {} };
    const changed = new ChangedMigrationSettings(qmp, before);
    const caps = Object.entries(want.capabilities ?? {});
    if (caps.length > 0) {
      const now = await qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
      const current = new Map(now.map((c) => [c.capability, c.state]));
      const set = caps.filter(([name, state]) => current.get(name) !== state);
      for (const [name] of set) before.capabilities[name] = current.get(name) ?? false;
      if (set.length > 0) await qmp.execute('migrate-set-capabilities', { capabilities: set.map(([capability, state]) => ({ capability, state })) });
    }
    const params = Object.entries(want.parameters ?? {});
    if (params.length > 0) {
      const now = await qmp.execute<Record<string, unknown>>('query-migrate-parameters');
      const set = params.filter(([name, v]) => now[name] !== v);
      for (const [name] of set) {
        const old = now[name];
        if (typeof old === 'number' || typeof old === 'boolean' || typeof old === 'string') before.parameters[name] = old;
      }
      if (set.length > 0) await qmp.execute('migrate-set-parameters', Object.fromEntries(set));
    }
    return changed;
  }

  /** Sets back what apply() changed. Once; QEMU refuses capability changes while a migration is active. */
  async restore(log?: Logger): Promise<void> {
    if (this.restored) return;
    this.restored = true;
    const caps = Object.entries(this.before.capabilities);
    if (caps.length > 0) await this.qmp.execute('migrate-set-capabilities', { capabilities: caps.map(([capability, state]) => ({ capability, state })) });
    if (Object.keys(this.before.parameters).length > 0) await this.qmp.execute('migrate-set-parameters', this.before.parameters);
    if (caps.length > 0 || Object.keys(this.before.parameters).length > 0) log?.info({ ...this.before }, 'restored the source QEMU\'s migration settings');
  }
}

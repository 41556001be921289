/**
 * The Redis Cluster rig (testing/redis-cluster.ts) for a test: stopped when
 * the test ends, and skipped when redis-server is missing outside CI (under
 * CI=true a missing peer fails).
 */
import type { TestContext } from 'node:test';
import { requirePeers, PEER_PATH } from './peers.ts';
import { startRedisClusterRig, type RedisClusterOptions, type RedisClusterRig } from '../../testing/redis-cluster.ts';

export type { RedisClusterRig } from '../../testing/redis-cluster.ts';

/** Starts the cluster, or returns undefined after marking the test skipped. */
export async function startRedisCluster(t: TestContext, o: Omit<RedisClusterOptions, 'path'> = {}): Promise<RedisClusterRig | undefined> {
  if (!requirePeers(t, 'redis-server', 'redis-cli')) return undefined;
  const rig = await startRedisClusterRig({ ...o, path: PEER_PATH });
  t.after(() => rig.stop());
  return rig;
}

/** PostgreSQL: preflight, schema, snapshot copy, replication, freeze, catch-up, sequences */
import type { StepKind } from '../../core/step.ts';
import { catchUp } from './catch-up.ts';
import { freezeWrites } from './freeze-writes.ts';
import { pinSwitchPoint } from './pin-switch-point.ts';
import { preflight } from './preflight.ts';
import { prepareSwitchPoint } from './prepare-switch-point.ts';
import { refreshMatviews } from './refresh-matviews.ts';
import { replicationHealthStep } from './replication-health.ts';
import { replicationStart } from './replication-start.ts';
import { replicationStop } from './replication-stop.ts';
import { reverseReach } from './reverse-reach.ts';
import { reverseHealth, reverseReady, reverseReplication, reverseReplicationStop } from './reverse-replication.ts';
import { schemaCopy } from './schema-copy.ts';
import { schemaParity } from './schema-parity.ts';
import { schemaSync } from './schema-sync.ts';
import { sequenceSync } from './sequence-sync.ts';
import { snapshotCopy } from './snapshot-copy.ts';
import { unfreeze } from './unfreeze.ts';
import { writeFence } from './write-fence.ts';

export const postgresSteps: StepKind[] = [
  preflight,
  schemaCopy,
  snapshotCopy,
  replicationStart,
  replicationHealthStep,
  freezeWrites,
  catchUp,
  writeFence,
  sequenceSync,
  prepareSwitchPoint,
  pinSwitchPoint,
  replicationStop,
  unfreeze,
  refreshMatviews,
  schemaParity,
  schemaSync,
  reverseReady,
  reverseReach,
  reverseReplication,
  reverseHealth,
  reverseReplicationStop,
];

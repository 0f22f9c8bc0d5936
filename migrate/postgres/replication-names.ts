/**
 * The names of the replication objects, shared by every step that creates, waits on or drops them.
 * The subscription creates its slot on the source under its own name, so one name covers both.
 */
import { z } from 'zod';
import { REPLICATION_NAME } from './sql.ts';

const objectName = z.string().regex(REPLICATION_NAME, 'must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)');

export const DEFAULT_PUBLICATION = 'migrate_pub';
export const DEFAULT_SUBSCRIPTION = 'migrate_sub';

export const replicationNames = {
  publication: objectName.default(DEFAULT_PUBLICATION),
  subscription: objectName.default(DEFAULT_SUBSCRIPTION),
};

export interface ReplicationNames {
  publication: string;
  subscription: string;
}

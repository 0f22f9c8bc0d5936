/**
 * A small in-memory RDS behind aws-sdk-client-mock: instances move creating → available after a
 * number of Describe calls, Describe pages one instance at a time (so a caller that ignores Marker
 * misses instances), and Delete removes an instance after a few more Describes.
 */
import {
  CreateDBInstanceReadReplicaCommand,
  type DBInstance,
  DBInstanceAlreadyExistsFault,
  DBInstanceNotFoundFault,
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { KMS_KEY } from './fixtures.ts';

interface FakeInstance {
  instance: DBInstance;
  /** Describes left before the status moves on (creating → available, deleting → gone). */
  describesLeft: number;
}

export function fakeRds(options: { describesUntilAvailable?: number; describesUntilDeleted?: number } = {}) {
  const mock = mockClient(RDSClient);
  const instances = new Map<string, FakeInstance>();
  /** Each DescribeDBInstances input as sent (the SDK's paginator reuses one input object for every page). */
  const describes: object[] = [];

  const add = (identifier: string, instance: Partial<DBInstance> = {}) => {
    instances.set(identifier, {
      describesLeft: 0,
      instance: {
        DBInstanceIdentifier: identifier,
        DBInstanceStatus: 'available',
        Endpoint: { Address: `${identifier}.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com`, Port: 5432 },
        StorageEncrypted: true,
        KmsKeyId: KMS_KEY,
        BackupRetentionPeriod: 7,
        ...instance,
      },
    });
  };

  const advance = () => {
    for (const [id, fake] of instances) {
      if (fake.describesLeft > 0) {
        fake.describesLeft -= 1;
        continue;
      }
      if (fake.instance.DBInstanceStatus === 'creating') {
        fake.instance.DBInstanceStatus = 'available';
        fake.instance.Endpoint = { Address: `${id}.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com`, Port: 5432 };
      } else if (fake.instance.DBInstanceStatus === 'deleting') {
        instances.delete(id);
      }
    }
  };

  mock.on(DescribeDBInstancesCommand).callsFake(async (input) => {
    describes.push(JSON.parse(JSON.stringify(input)));
    const wanted = input.Filters?.find((f: { Name: string }) => f.Name === 'db-instance-id')?.Values as string[] | undefined;
    if (!input.Marker) advance();
    const matching = [...instances.values()].filter((f) => !wanted || wanted.includes(f.instance.DBInstanceIdentifier!));
    const index = input.Marker ? Number(input.Marker) : 0;
    const page = matching.slice(index, index + 1).map((f) => structuredClone(f.instance));
    return { DBInstances: page, ...(index + 1 < matching.length ? { Marker: String(index + 1) } : {}) };
  });

  mock.on(CreateDBInstanceReadReplicaCommand).callsFake(async (input) => {
    const id = input.DBInstanceIdentifier as string;
    if (instances.has(id)) throw new DBInstanceAlreadyExistsFault({ message: `DB instance already exists`, $metadata: {} });
    add(id, {
      DBInstanceStatus: 'creating',
      Endpoint: undefined,
      ReadReplicaSourceDBInstanceIdentifier: input.SourceDBInstanceIdentifier,
    });
    instances.get(id)!.describesLeft = options.describesUntilAvailable ?? 2;
    return { DBInstance: { DBInstanceIdentifier: id, DBInstanceStatus: 'creating' } };
  });

  mock.on(DeleteDBInstanceCommand).callsFake(async (input) => {
    const fake = instances.get(input.DBInstanceIdentifier as string);
    if (!fake) throw new DBInstanceNotFoundFault({ message: `DBInstance ${input.DBInstanceIdentifier} not found.`, $metadata: {} });
    fake.instance.DBInstanceStatus = 'deleting';
    fake.describesLeft = options.describesUntilDeleted ?? 1;
    return { DBInstance: { DBInstanceIdentifier: input.DBInstanceIdentifier, DBInstanceStatus: 'deleting' } };
  });

  return { mock, instances, add, describes };
}

/**
 * An in-memory Parameter Store behind aws-sdk-client-mock: versions, labels that move between
 * versions, `name:selector` reads, and GetParameterHistory paged one version at a time.
 */
import {
  GetParameterCommand,
  GetParameterHistoryCommand,
  LabelParameterVersionCommand,
  ParameterNotFound,
  type ParameterType,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';

interface Version {
  version: number;
  value: string;
  type: ParameterType;
  keyId?: string;
  labels: string[];
}

export function fakeSsm() {
  const mock = mockClient(SSMClient);
  const store = new Map<string, Version[]>();
  /** Each GetParameterHistory input as sent (the SDK's paginator reuses one input object for every page). */
  const histories: object[] = [];

  const notFound = (name: string) => new ParameterNotFound({ message: `Parameter ${name} not found.`, $metadata: {} });
  const versionsOf = (name: string) => {
    const versions = store.get(name);
    if (!versions) throw notFound(name);
    return versions;
  };
  const put = (name: string, value: string, type: ParameterType = 'SecureString', keyId?: string) => {
    const versions = store.get(name) ?? [];
    const version = { version: versions.length + 1, value, type, labels: [], ...(keyId ? { keyId } : {}) };
    versions.push(version);
    store.set(name, versions);
    return version.version;
  };
  const select = (ref: string) => {
    const [name, selector] = ref.split(/:(?=[^/]*$)/) as [string, string | undefined];
    const versions = versionsOf(name);
    if (selector === undefined) return { name, version: versions.at(-1)! };
    const version = versions.find((v) => String(v.version) === selector || v.labels.includes(selector));
    if (!version) throw notFound(ref);
    return { name, version };
  };

  mock.on(GetParameterHistoryCommand).callsFake(async (input) => {
    histories.push(JSON.parse(JSON.stringify(input)));
    const versions = versionsOf(input.Name);
    const index = input.NextToken ? Number(input.NextToken) : 0;
    const page = versions.slice(index, index + 1).map((v) => ({
      Name: input.Name,
      Version: v.version,
      Labels: [...v.labels],
      Type: v.type,
      // Without decryption a SecureString comes back as ciphertext; never the plain value.
      Value: input.WithDecryption ? v.value : 'AQICAHh…ciphertext',
    }));
    return { Parameters: page, ...(index + 1 < versions.length ? { NextToken: String(index + 1) } : {}) };
  });

  mock.on(LabelParameterVersionCommand).callsFake(async (input) => {
    const versions = versionsOf(input.Name);
    const target = versions.find((v) => v.version === input.ParameterVersion);
    if (!target) throw notFound(`${input.Name}:${input.ParameterVersion}`);
    for (const label of input.Labels as string[]) {
      for (const v of versions) v.labels = v.labels.filter((l) => l !== label);
      target.labels.push(label);
    }
    return { InvalidLabels: [], ParameterVersion: target.version };
  });

  mock
    .on(PutParameterCommand)
    .callsFake(async (input) => ({ Version: put(input.Name, input.Value, input.Type, input.KeyId), Tier: 'Standard' }));

  mock.on(GetParameterCommand).callsFake(async (input) => {
    const { name, version } = select(input.Name);
    return {
      Parameter: {
        Name: name,
        Version: version.version,
        Type: version.type,
        Value: input.WithDecryption ? version.value : 'AQICAHh…ciphertext',
        Selector: input.Name.slice(name.length) || undefined,
      },
    };
  });

  return { mock, store, put, histories };
}

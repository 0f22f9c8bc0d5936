/**
 * Runs the real program (infra/index.ts) under Pulumi mocks with the real Pulumi.<stack>.yaml, and
 * records every resource registration: type, name, inputs, the raw (secret-preserving) inputs and
 * the resource options (protect, retainOnDelete, ignoreChanges, import, aliases), parent and URN that the mock
 * API does not expose, read off the RegisterResource request itself.
 *
 * The program is a module whose top level registers resources, so each run imports it afresh
 * (a new query string is a new module instance) after resetting the mocks and the config.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';

export const PROJECT = 'cutover';
export const PLANTED_PASSWORD = 'PlantedMasterPassword0123456789abcdefXYZ';
export const ACCOUNT = '111122223333';
const REGION_ZONES = (count: number) => Array.from({ length: count }, (_, i) => `eu-west-1${'abcdefgh'[i]}`);

export interface Registered {
  type: string;
  name: string;
  /** The id the mock gave it. */
  id: string;
  custom: boolean;
  /** Inputs as the provider would receive them, secrets unwrapped. */
  inputs: Record<string, any>;
  /** Property names whose input value was a Pulumi secret. */
  secretInputs: string[];
  protect: boolean;
  /** `pulumi destroy` leaves the cloud resource in place. */
  retainOnDelete: boolean;
  ignoreChanges: string[];
  importId: string;
  /** Names of the `{ name }` aliases: what the resource was called before it was renamed. */
  aliases: string[];
  urn: string;
  /** The parent's URN ('' for none). */
  parent: string;
  /** URNs it waits for (dependsOn, a component expanded to its children, and input references). */
  dependencies: string[];
}

export interface StackRun {
  resources: Registered[];
  /** The program's exports, fully resolved. */
  outputs: Record<string, any>;
  /** Exports whose value is (or contains) a Pulumi secret. */
  secretOutputs: Set<string>;
  invokes: { token: string; inputs: Record<string, any> }[];
  ofType(type: string): Registered[];
  one(type: string, name?: string): Registered;
}

export interface RunOptions {
  stack: 'staging' | 'prod';
  /** How many zones the AZ lookup returns. */
  zones?: number;
  /** Stack config to add or replace, keys without the project prefix (`aws:` keys with it). */
  config?: Record<string, unknown>;
  /** Runs this instead of infra/index.ts, under the same mocks and config; returns the exports. */
  program?: () => Promise<Record<string, unknown>>;
}

export function stackConfig(stack: string): Record<string, unknown> {
  const path = fileURLToPath(new URL(`../../Pulumi.${stack}.yaml`, import.meta.url));
  return (parse(readFileSync(path, 'utf8')) as { config: Record<string, unknown> }).config;
}

/** How the Pulumi wire format marks a secret value: { [SECRET_SIG_KEY]: SECRET_SIG, value }. */
const SECRET_SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';
let runs = 0;

export async function runStack(options: RunOptions): Promise<StackRun> {
  const zoneCount = options.zones ?? 3;
  const resources: Registered[] = [];
  const invokes: StackRun['invokes'] = [];
  const pendingOptions = new Map<string, Omit<Registered, 'type' | 'name' | 'id' | 'custom' | 'inputs'>>();

  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const key = `${args.type}::${args.name}`;
        const opts = pendingOptions.get(key) ?? {
          protect: false,
          retainOnDelete: false,
          ignoreChanges: [],
          importId: '',
          secretInputs: [],
          aliases: [],
          urn: '',
          parent: '',
          dependencies: [],
        };
        const inputs = unwrapSecrets(args.inputs) as Record<string, any>;
        // An aliased resource is the one the stack already has under its old name, so it keeps that one's id.
        const stableName = opts.aliases[0] ?? args.name;
        const id = mockId(args.type, stableName);
        resources.push({ type: args.type, name: args.name, id, custom: args.custom ?? true, inputs, ...opts });
        return { id, state: { ...inputs, ...mockState(args.type, stableName, inputs) } };
      },
      call(args) {
        invokes.push({ token: args.token, inputs: args.inputs });
        switch (args.token) {
          case 'aws:index/getAvailabilityZones:getAvailabilityZones': {
            const names = REGION_ZONES(zoneCount);
            return { names, zoneIds: names.map((_, i) => `euw1-az${i + 1}`), id: 'eu-west-1', groupNames: names, state: 'available' };
          }
          case 'aws:route53/getZone:getZone':
            return {
              zoneId: 'Z0123456789MOCKZONE',
              id: 'Z0123456789MOCKZONE',
              name: args.inputs.name,
              privateZone: args.inputs.privateZone ?? false,
            };
          case 'aws:index/getCallerIdentity:getCallerIdentity':
            return { accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/ci`, userId: 'AIDAMOCK', id: ACCOUNT };
          default:
            throw new Error(`unmocked invoke ${args.token}: add it to test/infra/harness.ts`);
        }
      },
    },
    PROJECT,
    options.stack,
    false,
  );

  // The mock API hides resource options; read them off each RegisterResource request.
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource: (req: any, cb: unknown) => unknown;
    newUrn: (parent: string, type: string, name: string) => string;
  };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, cb: unknown) => {
    const raw = req.getObject()?.toJavaScript() ?? {};
    pendingOptions.set(`${req.getType()}::${req.getName()}`, {
      protect: req.getProtect() === true,
      retainOnDelete: req.getRetainondelete() === true,
      ignoreChanges: req.getIgnorechangesList(),
      importId: req.getImportid(),
      secretInputs: Object.keys(raw).filter((k) => raw[k]?.[SECRET_SIG_KEY] === SECRET_SIG),
      aliases: req
        .getAliasesList()
        .map((alias: any) => alias.getSpec()?.getName())
        .filter(Boolean),
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      urn: monitor.newUrn(req.getParent(), req.getType(), req.getName()),
    });
    return register(req, cb);
  };

  const config = { ...stackConfig(options.stack) };
  for (const [key, value] of Object.entries(options.config ?? {})) {
    const full = key.includes(':') ? key : `${PROJECT}:${key}`;
    if (value === undefined) delete config[full];
    else config[full] = value;
  }
  pulumi.runtime.setAllConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])),
  );

  runs += 1;
  const program = options.program
    ? await options.program()
    : ((await import(`../../infra/index.ts?run=${runs}`)) as Record<string, unknown>);
  const outputs: Record<string, any> = {};
  const secretOutputs = new Set<string>();
  for (const [name, value] of Object.entries(program)) {
    const output = pulumi.output(value as pulumi.Input<unknown>) as pulumi.Output<unknown>;
    outputs[name] = await new Promise((resolve) => output.apply(resolve));
    if (await (output as unknown as { isSecret: Promise<boolean> }).isSecret) secretOutputs.add(name);
  }
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();

  return {
    resources,
    outputs,
    secretOutputs,
    invokes,
    ofType: (type) => resources.filter((r) => r.type === type),
    one(type, name) {
      const matches = resources.filter((r) => r.type === type && (name === undefined || r.name === name));
      if (matches.length !== 1) throw new Error(`expected one ${type}${name ? ` named ${name}` : ''}, found ${matches.length}`);
      return matches[0]!;
    },
  };
}

/**
 * `<name>-id`, except where one logical name is used by several types that reference each other (a
 * zone's database subnet, route table and association): AWS's own id prefixes keep them apart.
 */
export function mockId(type: string, name: string): string {
  if (type === 'aws:ec2/subnet:Subnet') return `subnet-${name}`;
  if (type === 'aws:ec2/routeTable:RouteTable') return `rtb-${name}`;
  return `${name}-id`;
}

/** Mocks receive secret inputs still wrapped in the wire format; tests assert on the values. */
function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record[SECRET_SIG_KEY] === SECRET_SIG) return unwrapSecrets(record.value);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

/** Provider-computed outputs the program reads, with recognisable fake values. */
function mockState(type: string, name: string, inputs: Record<string, any>): Record<string, unknown> {
  const arn = `arn:aws:mock:eu-west-1:${ACCOUNT}:${name}`;
  switch (type) {
    case 'aws:ec2/eip:Eip':
      // Documentation ranges, one address per zone (nat-eu-west-1a → .1, …b → .2); the reverse
      // path's load balancer (nlb-<zone>) addresses from another range so the two cannot be confused.
      return {
        publicIp: `${name.startsWith('nlb-') ? '192.0.2' : '203.0.113'}.${'abcdefgh'.indexOf(name.slice(-1)) + 1}`,
      };
    case 'aws:lb/targetGroup:TargetGroup':
      return { arn: `arn:aws:elasticloadbalancing:eu-west-1:${ACCOUNT}:targetgroup/${name}/0123456789abcdef` };
    case 'aws:lb/loadBalancer:LoadBalancer':
      return { arn: `arn:aws:elasticloadbalancing:eu-west-1:${ACCOUNT}:loadbalancer/net/${name}/0123456789abcdef` };
    case 'aws:ec2/vpc:Vpc':
      return { arn, ipv6CidrBlock: '2a05:d018:abc:de00::/56' };
    case 'aws:rds/instance:Instance':
      return {
        arn: `arn:aws:rds:eu-west-1:${ACCOUNT}:db:${inputs.identifier}`,
        address: `${inputs.identifier}.cmock.eu-west-1.rds.amazonaws.com`,
        port: inputs.port ?? 5432,
      };
    case 'aws:rds/parameterGroup:ParameterGroup':
      return { arn, name: `${inputs.namePrefix}20260101000000` };
    case 'random:index/randomPassword:RandomPassword':
      return { result: PLANTED_PASSWORD };
    case 'eks:index:Cluster':
      return {
        kubeconfigJson: JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: inputs.name }] }),
        nodeSecurityGroupId: 'sg-0eksclustermock',
        oidcProviderArn: `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/MOCK`,
        oidcIssuer: 'oidc.eks.eu-west-1.amazonaws.com/id/MOCK',
        eksCluster: { name: inputs.name },
      };
    case 'aws:sqs/queue:Queue':
      return {
        arn: `arn:aws:sqs:eu-west-1:${ACCOUNT}:${inputs.name}`,
        url: `https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/${inputs.name}`,
      };
    case 'aws:apigateway/restApi:RestApi':
      return { arn, rootResourceId: 'rootresource', executionArn: arn };
    case 'aws:apigateway/stage:Stage':
      return { arn, invokeUrl: `https://${inputs.restApi}.execute-api.eu-west-1.amazonaws.com/${inputs.stageName}` };
    case 'aws:apigateway/domainName:DomainName':
      return { arn, regionalDomainName: 'd-mock123.execute-api.eu-west-1.amazonaws.com', regionalZoneId: 'ZLY8HYME6SFDD' };
    case 'aws:acm/certificate:Certificate':
      return {
        arn,
        domainValidationOptions: [
          {
            domainName: inputs.domainName,
            resourceRecordName: `_x1.${inputs.domainName}.`,
            resourceRecordType: 'CNAME',
            resourceRecordValue: '_y1.acm-validations.aws.',
          },
        ],
      };
    case 'aws:route53/record:Record':
      return { fqdn: inputs.name };
    default:
      return { arn };
  }
}

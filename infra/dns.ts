/**
 * Route53: the existing zone is looked up, not created (it already serves the legacy app); the app
 * and webhook records are managed here with their legacy values, and the cutover CLI moves them.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { children } from './children.ts';
import type { DnsConfig, RecordConfig } from './config.ts';
import type { MovableRecord, RecordValue } from './contract.ts';

export interface DnsArgs {
  config: DnsConfig;
}

export class Dns extends pulumi.ComponentResource {
  readonly zoneId: pulumi.Output<string>;
  readonly records: { app: MovableRecord; webhooks: MovableRecord };

  constructor(name: string, args: DnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:Dns', name, {}, opts);
    const child = children(this, name);
    const { config } = args;
    const zone = aws.route53.getZoneOutput({ name: config.zoneName, privateZone: config.privateZone }, { parent: this });

    for (const which of ['app', 'webhooks'] as const) {
      const record = config[which];
      new aws.route53.Record(
        child.name(which),
        {
          zoneId: zone.zoneId,
          name: record.name,
          type: record.type,
          ...recordInputs(record.legacy, config.ttl),
          // The record exists before the stack does (it serves the legacy app): take it over.
          allowOverwrite: true,
          // The CLI lowers the TTL the day before and switches the value on D-day; a later
          // `pulumi up` must not switch it back. After cutover, set the config's legacy value to the
          // new target so the program and the zone agree again.
          // retainOnDelete: the record serves live traffic (legacy before D-day, the new app after)
          // and existed before the stack; `pulumi destroy` (or dropping it from the program) only
          // forgets it. Removing it from the zone is a deliberate act outside Pulumi.
        },
        child.opts(which, { ignoreChanges: ['records', 'aliases', 'ttl'], retainOnDelete: true }),
      );
    }

    this.zoneId = zone.zoneId;
    this.records = { app: movable(config.app, config), webhooks: movable(config.webhooks, config) };
    this.registerOutputs({ zoneId: this.zoneId });
  }
}

function recordInputs(value: RecordValue, ttl: number) {
  if ('values' in value) return { ttl, records: value.values };
  // Alias records carry no TTL: Route53 uses the target's.
  return {
    aliases: [{ name: value.alias.dnsName, zoneId: value.alias.hostedZoneId, evaluateTargetHealth: value.alias.evaluateTargetHealth }],
  };
}

function movable(record: RecordConfig, config: DnsConfig): MovableRecord {
  return {
    name: record.name,
    type: record.type,
    ttl: config.ttl,
    cutoverTtl: config.cutoverTtl,
    legacy: record.legacy,
    cutover: record.cutover,
    // An alias to a load balancer is an A record whatever the legacy type was.
    cutoverType: record.cutoverType ?? ('alias' in record.cutover ? 'A' : record.type),
  };
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { databaseIdentifier, parameterGroupFamily, parameterNames, replicaIdentifier } from '../../infra/naming.ts';
import { baseTags } from '../../infra/tags.ts';
import { chooseZones } from '../../infra/zones.ts';

describe('naming', () => {
  it('derives replica identifiers the CLI and a later pulumi up agree on', () => {
    const id = databaseIdentifier('cutover', 'prod');
    assert.equal(id, 'cutover-prod-postgres');
    assert.equal(replicaIdentifier(id, 2), 'cutover-prod-postgres-replica-2');
    assert.throws(() => replicaIdentifier(id, 0), /from 1/);
  });

  it('maps engine versions to parameter-group families', () => {
    assert.equal(parameterGroupFamily('16.8'), 'postgres16');
    assert.equal(parameterGroupFamily('17'), 'postgres17');
    assert.equal(parameterGroupFamily('9.6.22'), 'postgres9.6');
    assert.throws(() => parameterGroupFamily('latest'), /not a PostgreSQL version/);
  });

  it('puts every parameter under the prefix', () => {
    const names = parameterNames('/cutover/prod/');
    assert.equal(names.prefix, '/cutover/prod');
    for (const name of Object.values(names).slice(1)) assert.ok(name.startsWith('/cutover/prod/'), name);
  });

  it('tags with environment, project and managed-by', () => {
    assert.deepEqual(baseTags({ project: 'cutover', environment: 'prod' }), {
      environment: 'prod',
      project: 'cutover',
      'managed-by': 'pulumi',
    });
  });
});

describe('zone choice', () => {
  const zones = (n: number) => ['eu-west-1c', 'eu-west-1a', 'eu-west-1b', 'eu-west-1d'].slice(0, n);
  it('takes up to three zones in name order when config has no count', () => {
    assert.deepEqual(chooseZones(zones(4), {}, 'cutover'), ['eu-west-1a', 'eu-west-1b', 'eu-west-1c']);
    assert.deepEqual(chooseZones(zones(2), {}, 'cutover'), ['eu-west-1a', 'eu-west-1c']);
  });
  it('honours an explicit count and refuses more zones than the region has, naming the key', () => {
    assert.equal(chooseZones(zones(4), { count: 4 }, 'cutover').length, 4);
    assert.throws(() => chooseZones(zones(2), { count: 3 }, 'cutover'), /cutover:availabilityZoneCount: is 3 but the region has only 2/);
  });
  it('uses pinned zones as given and refuses unavailable ones', () => {
    assert.deepEqual(chooseZones(zones(4), { pinned: ['eu-west-1d', 'eu-west-1a'] }, 'cutover'), ['eu-west-1d', 'eu-west-1a']);
    assert.throws(
      () => chooseZones(zones(2), { pinned: ['eu-west-1d'] }, 'cutover'),
      /cutover:availabilityZones: eu-west-1d not available/,
    );
  });
});

/** The post-data restore list leaves out exactly the indexes, keys and triggers the copy built (by source oid), nothing else. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withoutBuilt } from '../../migrate/steps/postgres/schema-copy.ts';

test('entries of built objects are commented out, policies, statistics and comments stay', () => {
  const list = [
    ';',
    '; Selected TOC Entries:',
    '3301; 1259 16420 INDEX shop ledger_ref app_owner',
    '3302; 1259 16421 INDEX shop orders_tenant app_owner',
    '3303; 2606 16422 CONSTRAINT shop orders orders_pkey app_owner',
    '3304; 2606 16423 FK CONSTRAINT shop orders orders_product_fk app_owner',
    '3305; 2620 16424 TRIGGER shop orders touch app_owner',
    '3306; 3256 16425 POLICY shop orders ro_acme app_owner',
    '3307; 0 16420 ROW SECURITY shop orders app_owner',
    '3308; 3381 16420 STATISTICS shop orders_tenant_product app_owner',
  ].join('\n');
  const out = withoutBuilt(list, new Set(['1259 16420', '2606 16422', '2620 16424', '2606 16420'])).split('\n');
  assert.deepEqual(
    out.filter((l) => l.startsWith(';3')).map((l) => l.split(' ').slice(3, 4)[0]),
    ['INDEX', 'CONSTRAINT', 'TRIGGER'],
  );
  assert.ok(
    out.includes('3307; 0 16420 ROW SECURITY shop orders app_owner'),
    'an oid shared with a built index does not hide an entry of another catalog',
  );
  assert.ok(out.includes('3308; 3381 16420 STATISTICS shop orders_tenant_product app_owner'));
  assert.ok(out.includes('3304; 2606 16423 FK CONSTRAINT shop orders orders_product_fk app_owner'));
});

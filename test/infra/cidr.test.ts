import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrSubnetV4, cidrSubnetV6, ipv4SubnetBlocks, ipv6SubnetBlocks, MAX_AZS, overlapsV4, parseV4 } from '../../infra/cidr.ts';

const range = (cidr: string) => {
  const { address, prefix } = parseV4(cidr);
  return [address, address + 2 ** (32 - prefix) - 1] as const;
};
const overlaps = (a: string, b: string) => {
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return a0 <= b1 && b0 <= a1;
};

describe('IPv4 subnet layout', () => {
  for (const vpc of ['10.40.0.0/16', '172.20.0.0/18', '192.168.16.0/20']) {
    it(`${vpc}: every block of every AZ lies inside the VPC and none overlap`, () => {
      const blocks = Array.from({ length: MAX_AZS }, (_, i) => Object.values(ipv4SubnetBlocks(vpc, i))).flat();
      const [v0, v1] = range(vpc);
      for (const block of blocks) {
        const [b0, b1] = range(block);
        assert.ok(b0 >= v0 && b1 <= v1, `${block} outside ${vpc}`);
      }
      for (let i = 0; i < blocks.length; i++) {
        for (let j = i + 1; j < blocks.length; j++) assert.ok(!overlaps(blocks[i]!, blocks[j]!), `${blocks[i]} overlaps ${blocks[j]}`);
      }
    });
  }

  it('depends only on the AZ index, so adding AZs never moves existing subnets', () => {
    assert.deepEqual(ipv4SubnetBlocks('10.40.0.0/16', 0), {
      private: '10.40.0.0/20',
      public: '10.40.128.0/23',
      database: '10.40.144.0/24',
    });
    assert.deepEqual(ipv4SubnetBlocks('10.40.0.0/16', 2), {
      private: '10.40.32.0/20',
      public: '10.40.132.0/23',
      database: '10.40.146.0/24',
    });
  });

  it('refuses an AZ index outside the layout and a VPC block with host bits', () => {
    assert.throws(() => ipv4SubnetBlocks('10.40.0.0/16', MAX_AZS), /AZ index 8/);
    assert.throws(() => parseV4('10.40.0.1/16'), /host bits/);
    assert.throws(() => cidrSubnetV4('10.0.0.0/26', 3, 0), /too small/);
  });
});

describe('IPv6 subnet layout', () => {
  it('gives each tier of each AZ a distinct /64 of the VPC /56', () => {
    const vpc = '2a05:d018:abc:de00::/56';
    const blocks = Array.from({ length: MAX_AZS }, (_, i) => Object.values(ipv6SubnetBlocks(vpc, i))).flat();
    assert.equal(new Set(blocks).size, blocks.length);
    for (const block of blocks) assert.match(block, /^2a05:d018:abc:de[0-9a-f]{2}::\/64$/);
    assert.deepEqual(ipv6SubnetBlocks(vpc, 1), {
      public: '2a05:d018:abc:de01::/64',
      private: '2a05:d018:abc:de41::/64',
      database: '2a05:d018:abc:de81::/64',
    });
  });

  it('formats like AWS (compressed, lower case)', () => {
    assert.equal(cidrSubnetV6('2600:1f18:0:100::/56', 64, 0), '2600:1f18:0:100::/64');
    assert.equal(cidrSubnetV6('2600:1F18:0:100::/56', 64, 255), '2600:1f18:0:1ff::/64');
    assert.throws(() => cidrSubnetV6('2600:1f18:0:100::/56', 64, 256), /does not fit/);
  });
});

describe('overlapsV4', () => {
  it('agrees with the address ranges for nested, adjacent and disjoint blocks', () => {
    const pairs: [string, string][] = [
      ['10.40.0.0/16', '10.40.8.0/24'],
      ['10.40.8.0/24', '10.40.0.0/16'],
      ['10.40.0.0/16', '10.41.0.0/16'],
      ['198.51.100.30/32', '198.51.100.30/32'],
      ['198.51.100.30/32', '198.51.100.31/32'],
      ['0.0.0.0/0', '192.0.2.0/28'],
    ];
    for (const [a, b] of pairs) assert.equal(overlapsV4(a, b), overlaps(a, b), `${a} ${b}`);
  });
});

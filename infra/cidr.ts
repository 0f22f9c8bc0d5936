/**
 * Subnet address math, kept free of Pulumi so it can be tested exhaustively. Every subnet's block is
 * a pure function of the VPC block and the AZ's index, so adding an AZ appends subnets at the next
 * index and never moves an existing one (moving a subnet means replacing it and everything in it).
 */

export interface SubnetBlocks {
  public: string;
  private: string;
  database: string;
}

/** How many AZs the IPv4 layout reserves room for; a larger count would overlap the next tier. */
export const MAX_AZS = 8;

/**
 * Layout of the VPC's IPv4 block, in fractions of it (a /16 gives the sizes in brackets):
 * private (nodes, pods) 1/16 each from the start [/20 = 4096 addresses], public 1/128 each from the
 * half-way mark [/23], database 1/256 each after the public tier [/24]. Room is left after each tier.
 */
const IPV4_TIERS = {
  private: { newBits: 4, firstNetNum: 0 },
  public: { newBits: 7, firstNetNum: 64 },
  database: { newBits: 8, firstNetNum: 144 },
} as const;

/** IPv6 /64s inside the VPC's /56: public from 0, private from 64, database from 128. */
const IPV6_FIRST_NETNUM = { public: 0, private: 64, database: 128 } as const;

export function ipv4SubnetBlocks(vpcCidr: string, azIndex: number): SubnetBlocks {
  checkAzIndex(azIndex);
  const tier = (name: keyof typeof IPV4_TIERS) => cidrSubnetV4(vpcCidr, IPV4_TIERS[name].newBits, IPV4_TIERS[name].firstNetNum + azIndex);
  return { public: tier('public'), private: tier('private'), database: tier('database') };
}

export function ipv6SubnetBlocks(vpcIpv6Cidr: string, azIndex: number): SubnetBlocks {
  checkAzIndex(azIndex);
  const block = (name: keyof typeof IPV6_FIRST_NETNUM) => cidrSubnetV6(vpcIpv6Cidr, 64, IPV6_FIRST_NETNUM[name] + azIndex);
  return { public: block('public'), private: block('private'), database: block('database') };
}

function checkAzIndex(azIndex: number): void {
  if (!Number.isInteger(azIndex) || azIndex < 0 || azIndex >= MAX_AZS) {
    throw new RangeError(`AZ index ${azIndex} is outside the subnet layout (0..${MAX_AZS - 1})`);
  }
}

/** Terraform's cidrsubnet for IPv4: the netNum-th block with `newBits` more prefix bits. */
export function cidrSubnetV4(cidr: string, newBits: number, netNum: number): string {
  const { address, prefix } = parseV4(cidr);
  const newPrefix = prefix + newBits;
  if (newPrefix > 28) throw new RangeError(`${cidr} is too small to split ${newBits} more bits (AWS subnets are /28 at most)`);
  if (netNum < 0 || netNum >= 2 ** newBits) throw new RangeError(`netNum ${netNum} does not fit in ${newBits} bits`);
  const base = (address >>> 0) + netNum * 2 ** (32 - newPrefix);
  return `${formatV4(base)}/${newPrefix}`;
}

export function parseV4(cidr: string): { address: number; prefix: number } {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = match?.slice(1, 5).map(Number);
  const prefix = Number(match?.[5]);
  if (!match || !octets || octets.some((o) => o > 255) || prefix > 32) throw new RangeError(`'${cidr}' is not an IPv4 CIDR block`);
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  if (address % 2 ** (32 - prefix) !== 0)
    throw new RangeError(
      `'${cidr}' has host bits set (the network address is ${formatV4(address - (address % 2 ** (32 - prefix)))}/${prefix})`,
    );
  return { address, prefix };
}

/** Whether two IPv4 blocks share any address (one contains the other, for CIDR blocks). */
export function overlapsV4(a: string, b: string): boolean {
  const x = parseV4(a);
  const y = parseV4(b);
  const wider = Math.min(x.prefix, y.prefix);
  const network = (address: number) => address - (address % 2 ** (32 - wider));
  return network(x.address) === network(y.address);
}

function formatV4(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join('.');
}

/** cidrsubnet for IPv6, with the new prefix given directly (AWS subnets are always /64). */
export function cidrSubnetV6(cidr: string, newPrefix: number, netNum: number): string {
  const [text, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  if (!text || !Number.isInteger(prefix) || prefix > newPrefix)
    throw new RangeError(`'${cidr}' is not an IPv6 block wider than /${newPrefix}`);
  const bits = BigInt(newPrefix - prefix);
  if (netNum < 0 || BigInt(netNum) >= 1n << bits) throw new RangeError(`netNum ${netNum} does not fit in ${bits} bits of ${cidr}`);
  const base = parseV6(text);
  const value = base + (BigInt(netNum) << BigInt(128 - newPrefix));
  return `${formatV6(value)}/${newPrefix}`;
}

function parseV6(text: string): bigint {
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) throw new RangeError(`'${text}' is not an IPv6 address`);
  const all = [...left, ...Array<string>(missing).fill('0'), ...right];
  return all.reduce((acc, group) => {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) throw new RangeError(`'${text}' is not an IPv6 address`);
    return (acc << 16n) + BigInt(parseInt(group, 16));
  }, 0n);
}

/** RFC 5952 form (lower case, longest run of zero groups compressed), as AWS prints it. */
function formatV6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

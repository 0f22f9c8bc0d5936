import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLUSTER_ID_HEADER, eksToken, TOKEN_PREFIX } from '../../migrate/kube/eks-token.ts';

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'session-token-example',
};

test('the token is a presigned STS GetCallerIdentity URL bound to the cluster name, as aws eks get-token makes it', async () => {
  const token = await eksToken({
    clusterName: 'prod-eks',
    region: 'eu-west-1',
    credentials,
    signingDate: new Date('2024-05-01T12:00:00Z'),
  });
  assert.ok(token.startsWith(TOKEN_PREFIX));
  const encoded = token.slice(TOKEN_PREFIX.length);
  assert.match(encoded, /^[A-Za-z0-9_-]+$/, 'base64url without padding');
  const url = new URL(Buffer.from(encoded, 'base64url').toString('utf8'));
  assert.equal(url.protocol, 'https:');
  assert.equal(url.host, 'sts.eu-west-1.amazonaws.com');
  assert.equal(url.pathname, '/');
  const q = url.searchParams;
  assert.equal(q.get('Action'), 'GetCallerIdentity');
  assert.equal(q.get('Version'), '2011-06-15');
  assert.equal(q.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
  assert.equal(q.get('X-Amz-Expires'), '60');
  assert.equal(q.get('X-Amz-Date'), '20240501T120000Z');
  assert.equal(q.get('X-Amz-Credential'), 'AKIDEXAMPLE/20240501/eu-west-1/sts/aws4_request');
  assert.equal(q.get('X-Amz-Security-Token'), 'session-token-example');
  assert.deepEqual(q.get('X-Amz-SignedHeaders')?.split(';').sort(), ['host', CLUSTER_ID_HEADER]);
  assert.match(q.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
  assert.ok(!url.toString().includes(credentials.secretAccessKey), 'the secret key never travels');
});

test('the signature depends on the cluster name, so a token for one cluster is refused by another', async () => {
  const at = new Date('2024-05-01T12:00:00Z');
  const a = await eksToken({ clusterName: 'a', region: 'us-east-1', credentials, signingDate: at });
  const b = await eksToken({ clusterName: 'b', region: 'us-east-1', credentials, signingDate: at });
  const sig = (t: string) => new URL(Buffer.from(t.slice(TOKEN_PREFIX.length), 'base64url').toString()).searchParams.get('X-Amz-Signature');
  assert.notEqual(sig(a), sig(b));
  assert.equal(
    a,
    await eksToken({ clusterName: 'a', region: 'us-east-1', credentials, signingDate: at }),
    'deterministic for fixed inputs',
  );
});

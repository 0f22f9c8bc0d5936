/**
 * The EKS bearer token, made the way `aws eks get-token` makes it, so the operator needs no aws
 * CLI: a SigV4 query-presigned STS GetCallerIdentity URL carrying the signed header
 * `x-k8s-aws-id: <cluster name>`, base64url-encoded behind the prefix `k8s-aws-v1.`. The API
 * server's authenticator replays the URL against STS to learn who is calling.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

/** Static credentials or a provider, as the signer takes them. */
export type Credentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

export const TOKEN_PREFIX = 'k8s-aws-v1.';
export const CLUSTER_ID_HEADER = 'x-k8s-aws-id';
/** What `aws eks get-token` asks for; EKS itself accepts a token for 15 minutes after signing. */
export const PRESIGN_EXPIRES_SECONDS = 60;

export interface EksTokenOptions {
  clusterName: string;
  region: string;
  credentials?: Credentials;
  /** Signing time; injected by tests so the token is reproducible. */
  signingDate?: Date;
}

export function stsHostname(region: string): string {
  return region.startsWith('cn-') ? `sts.${region}.amazonaws.com.cn` : `sts.${region}.amazonaws.com`;
}

export async function eksToken(options: EksTokenOptions): Promise<string> {
  const signer = new SignatureV4({
    credentials: options.credentials ?? defaultProvider(),
    region: options.region,
    service: 'sts',
    sha256: Sha256,
  });
  const hostname = stsHostname(options.region);
  const request = new HttpRequest({
    method: 'GET',
    protocol: 'https:',
    hostname,
    path: '/',
    query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
    // Not an x-amz- header, so the presigner keeps it a header and lists it in X-Amz-SignedHeaders.
    headers: { host: hostname, [CLUSTER_ID_HEADER]: options.clusterName },
  });
  const signed = await signer.presign(request, { expiresIn: PRESIGN_EXPIRES_SECONDS, signingDate: options.signingDate });
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(signed.query ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) if (v !== null) query.append(key, v);
  }
  const url = `https://${hostname}/?${query.toString()}`;
  return TOKEN_PREFIX + Buffer.from(url, 'utf8').toString('base64url');
}

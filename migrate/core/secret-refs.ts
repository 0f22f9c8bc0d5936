/**
 * Resolves the secret references the outputs contract carries (`ssm:/…`, `env:…`, `file:/…`) into
 * Secret values. Every value read is registered for redaction before anyone can print it.
 */
import { readFile } from 'node:fs/promises';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { secretRefSchema } from '../../infra/contract.ts';
import { withAwsClient } from '../aws/clients.ts';
import { Secret } from './secret.ts';

export type SecretResolver = (ref: string) => Promise<Secret>;

/**
 * `ssm`: a client the caller owns (tests). Otherwise each Parameter Store read gets its own client
 * from the factory and closes it: the resolver has no end of life to close a shared one at, and the
 * cache below keeps reads to one per secret.
 */
export function createSecretResolver(options: { region: string; ssm?: SSMClient }): SecretResolver {
  const cache = new Map<string, Promise<Secret>>();
  const read = async (ref: string): Promise<Secret> => {
    const parsed = secretRefSchema.safeParse(ref);
    if (!parsed.success) throw new Error(`Secret reference '${ref}' ${parsed.error.issues[0]?.message ?? 'is invalid'}`);
    if (ref.startsWith('env:')) {
      const name = ref.slice(4);
      const value = process.env[name];
      if (value === undefined || value === '') throw new Error(`Secret reference ${ref}: environment variable ${name} is not set`);
      return new Secret(value);
    }
    if (ref.startsWith('file:')) {
      const path = ref.slice(5);
      try {
        return new Secret((await readFile(path, 'utf8')).replace(/\r?\n$/, ''));
      } catch (error) {
        throw new Error(`Secret reference ${ref}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? error})`);
      }
    }
    const name = ref.slice(4);
    const getParameter = (ssm: SSMClient) => ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    try {
      const out = await (options.ssm ? getParameter(options.ssm) : withAwsClient('ssm', options.region, getParameter));
      const value = out.Parameter?.Value;
      if (value === undefined) throw new Error('the parameter has no value');
      return new Secret(value);
    } catch (error) {
      throw new Error(`Secret reference ${ref}: ssm:GetParameter on ${name} failed: ${(error as Error).name}: ${(error as Error).message}`);
    }
  };
  return (ref) => {
    let pending = cache.get(ref);
    if (!pending) {
      pending = read(ref);
      cache.set(ref, pending);
      pending.catch(() => cache.delete(ref));
    }
    return pending;
  };
}

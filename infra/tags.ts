/** The tags every taggable resource carries, so cost reports and cleanup can find a stack's resources. */
export interface StackIdentity {
  project: string;
  environment: string;
}

export function baseTags(identity: StackIdentity): Record<string, string> {
  return { environment: identity.environment, project: identity.project, 'managed-by': 'pulumi' };
}

/** Base tags plus a Name (what the EC2 console shows) and any resource-specific tags. */
export function tagsFor(base: Record<string, string>, name: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...base, Name: name, ...extra };
}

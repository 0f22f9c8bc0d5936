/** IAM policy documents, as the JSON text roles and policies take. */

export function policyDocument(statements: Record<string, unknown>[]): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

/** The trust policy of a role that an AWS service (`ec2.amazonaws.com`...) assumes. */
export function assumedByService(service: string): string {
  return policyDocument([{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }]);
}

/**
 * A component's children are named after it (`<component>-<child>`), so a component can be used more
 * than once in a stack. Stacks created before that named them `<child>` alone: the alias (same type,
 * same parent) makes `pulumi up` take over each existing resource under its new name instead of
 * deleting and recreating it (the RDS instance, the EKS cluster, the VPC...). Physical names chosen
 * by the stack (identifiers, parameter paths, record names) do not depend on logical names; the
 * auto-named ones (IAM roles, the security group) keep the name in the stack's state, and only a new
 * stack gets names from the new logical names.
 */
import type * as pulumi from '@pulumi/pulumi';

export interface Children {
  /** The child's logical name: `<component>-<child>`. */
  name(child: string): string;
  /** The child's options: `extra` plus the component as parent and the alias to the bare name. */
  opts<O extends pulumi.CustomResourceOptions | pulumi.ComponentResourceOptions>(
    child: string,
    extra?: O,
  ): O & { parent: pulumi.Resource; aliases: pulumi.Alias[] };
}

export function children(component: pulumi.ComponentResource, componentName: string): Children {
  return {
    name: (child) => `${componentName}-${child}`,
    opts: (child, extra) => ({ ...extra!, parent: component, aliases: [{ name: child }] }),
  };
}


/**
 * IPC authorization as the nucleus applies it (aws-greengrass-nucleus,
 * com.aws.greengrass.authorization.AuthorizationHandler and WildcardTrie; developer guide,
 * "Authorize components to perform IPC operations"):
 * - deny by default; a component is allowed an operation on a resource only if one of its
 *   accessControl policies for that IPC service lists the operation (or "*") and a matching
 *   resource;
 * - "*" in a resource is a glob matching any run of characters, for every service;
 * - for aws.greengrass.ipc.mqttproxy, "+" and "#" in a resource are MQTT wildcards as well;
 * - for aws.greengrass.ipc.pubsub, "+" and "#" are literal characters;
 * - "{iot:thingName}" in a resource is replaced by the core device's thing name.
 */
export const PUBSUB_SERVICE = 'aws.greengrass.ipc.pubsub';
export const MQTTPROXY_SERVICE = 'aws.greengrass.ipc.mqttproxy';

export interface AccessPolicy {
  policyDescription?: string;
  operations: string[];
  resources: string[];
}

/** accessControl as it appears in a component's configuration: service -> policy id -> policy. */
export type AccessControl = Record<string, Record<string, AccessPolicy>>;

export class AuthorizationError extends Error {}

export class Authorizer {
  constructor(private readonly thingName: string) {}

  /** Throws AuthorizationError naming component, operation and resource when not allowed. */
  check(component: string, accessControl: AccessControl | undefined, service: string, operation: string, resource: string): void {
    const policies = accessControl?.[service] ?? {};
    for (const policy of Object.values(policies)) {
      if (!policy.operations.some((op) => op === '*' || op === operation)) continue;
      if (policy.resources.some((pattern) => this.resourceMatches(service, pattern, resource))) return;
    }
    throw new AuthorizationError(
      `Principal ${component} is not authorized to perform ${service}:${operation} on resource ${resource}`,
    );
  }

  private resourceMatches(service: string, pattern: string, resource: string): boolean {
    const expanded = pattern.split('{iot:thingName}').join(this.thingName);
    if (expanded === resource || expanded === '*') return true;
    if (globMatches(expanded, resource)) return true;
    return service === MQTTPROXY_SERVICE && filterCovers(expanded, resource);
  }
}

/**
 * Whether a policy filter allows a requested topic or filter. A plain topic is matched with MQTT
 * rules; a requested filter must be no wider than the policy: a policy "+" does not allow a
 * requested "#" (cmd/app/+ must not grant a subscription to cmd/app/#).
 */
function filterCovers(policy: string, requested: string): boolean {
  // No MQTT "$" rule here: that rule is for broker subscriptions; the nucleus's matcher lets a
  // lone "#" policy allow $aws/... topics too.
  const p = policy.split('/');
  const r = requested.split('/');
  for (let i = 0; i < p.length; i += 1) {
    if (p[i] === '#') return true;
    if (i >= r.length) return false;
    if (r[i] === '#') return false;
    if (p[i] !== '+' && p[i] !== r[i]) return false;
  }
  return p.length === r.length;
}

function globMatches(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return false;
  const regex = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`, 's');
  return regex.test(value);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

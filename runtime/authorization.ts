
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
 * - "{iot:thingName}" in a resource is replaced by the core device's thing name;
 * - "${c}" is the literal character c, so "${*}", "${?}" and "${$}" match "*", "?" and "$"
 *   themselves (WildcardTrie.getActualChar);
 * - a policy id must be unique across all components (AuthorizationHandler refuses a duplicate).
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
    const tokens = tokenize(pattern.split('{iot:thingName}').join(this.thingName));
    if (tokens.length === 1 && tokens[0].kind === 'glob') return true;
    if (globMatches(tokens, resource)) return true;
    return service === MQTTPROXY_SERVICE && filterCovers(tokens, resource);
  }
}

type Token = { kind: 'text'; text: string } | { kind: 'glob' } | { kind: 'plus' } | { kind: 'hash' } | { kind: 'slash' };

/** Splits a resource pattern into literal text and wildcards, resolving "${c}" escapes to text. */
function tokenize(pattern: string): Token[] {
  const tokens: Token[] = [];
  const text = (chars: string) => {
    const last = tokens[tokens.length - 1];
    if (last?.kind === 'text') last.text += chars;
    else tokens.push({ kind: 'text', text: chars });
  };
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '$' && pattern[i + 1] === '{' && pattern[i + 3] === '}' && i + 3 < pattern.length) {
      text(pattern[i + 2]);
      i += 3;
    } else if (c === '*') tokens.push({ kind: 'glob' });
    else if (c === '+') tokens.push({ kind: 'plus' });
    else if (c === '#') tokens.push({ kind: 'hash' });
    else if (c === '/') tokens.push({ kind: 'slash' });
    else text(c);
  }
  return tokens;
}

/** "*" matches any run of characters; everything else (including "+" and "#") is literal. */
function globMatches(tokens: Token[], value: string): boolean {
  const source = tokens
    .map((t) => (t.kind === 'glob' ? '.*' : escapeRegExp(t.kind === 'text' ? t.text : t.kind === 'plus' ? '+' : t.kind === 'hash' ? '#' : '/')))
    .join('');
  return new RegExp(`^${source}$`, 's').test(value);
}

/**
 * Whether a policy filter allows a requested topic or filter, with MQTT wildcards: "+" a whole
 * level, "#" a whole last level. A requested filter must be no wider than the policy: a policy "+"
 * does not allow a requested "#". No MQTT "$" rule: that is for broker subscriptions, and the
 * nucleus's matcher lets a lone "#" policy allow $aws/... topics too.
 */
function filterCovers(tokens: Token[], requested: string): boolean {
  const levels: Token[][] = [[]];
  for (const token of tokens) {
    if (token.kind === 'slash') levels.push([]);
    else levels[levels.length - 1].push(token);
  }
  const r = requested.split('/');
  for (let i = 0; i < levels.length; i += 1) {
    const level = levels[i];
    const whole = level.length === 1 ? level[0].kind : undefined;
    if (whole === 'hash' && i === levels.length - 1) return true;
    if (i >= r.length) return false;
    if (r[i] === '#') return false;
    if (whole === 'plus') continue;
    if (!globMatches(level, r[i])) return false;
  }
  return levels.length === r.length;
}

/** Policy ids that more than one component uses, each with the components that use it. */
export function duplicatePolicyIds(components: Array<{ name: string; accessControl: AccessControl | undefined }>): Array<{ policyId: string; components: string[] }> {
  const owners = new Map<string, Set<string>>();
  for (const { name, accessControl } of components) {
    for (const policies of Object.values(accessControl ?? {})) {
      for (const id of Object.keys(policies)) owners.set(id, (owners.get(id) ?? new Set()).add(name));
    }
  }
  return [...owners.entries()].filter(([, users]) => users.size > 1).map(([policyId, users]) => ({ policyId, components: [...users].sort() }));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

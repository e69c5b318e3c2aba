/**
 * Which clients get a redirect to the registry instead of a proxied answer
 * (SPEC §4): those known to follow registry redirects. Each rule is
 * `prefix:TEXT`, `contains:TEXT` or `equals:TEXT`; the default list is the
 * spec's. Compiled once into one predicate.
 */

export const DEFAULT_REDIRECT_AGENTS: readonly string[] = [
  'prefix:docker/',
  'contains:Docker-Client',
  'contains:containerd/1.4.9',
  'contains:containerd/1.5.5',
  'contains:containerd/1.6',
  'equals:Watchtower (Docker)',
];

export type AgentPredicate = (userAgent: string | undefined) => boolean;

/** Throws on a rule without a known kind. */
export function compileAgentRules(rules: readonly string[]): AgentPredicate {
  const checks = rules.map((rule): ((ua: string) => boolean) => {
    const colon = rule.indexOf(':');
    const kind = rule.slice(0, colon);
    const text = rule.slice(colon + 1);
    if (colon === -1 || text === '') throw new Error(`--redirect-agent "${rule}": expected prefix:, contains: or equals: and a text`);
    if (kind === 'prefix') return (ua) => ua.startsWith(text);
    if (kind === 'contains') return (ua) => ua.includes(text);
    if (kind === 'equals') return (ua) => ua === text;
    throw new Error(`--redirect-agent "${rule}": unknown kind "${kind}"`);
  });
  return (ua) => ua !== undefined && checks.some((check) => check(ua));
}

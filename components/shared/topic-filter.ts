/**
 * MQTT topic filter matching (MQTT 3.1.1 section 4.7, MQTT 5 section 4.7): "+" matches exactly one
 * level, "#" (last level only) matches the parent and any number of levels below it. Filters
 * starting with a wildcard do not match topics that start with "$" (section 4.7.2).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i += 1) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function hasWildcard(topic: string): boolean {
  return topic.includes('+') || topic.includes('#');
}

/** Checks a filter's wildcards are well placed; returns the reason when they are not. */
export function invalidFilterReason(filter: string): string | undefined {
  if (filter.length === 0) return 'topic is empty';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i += 1) {
    const level = levels[i];
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `"#" must be a whole last level in "${filter}"`;
    if (level.includes('+') && level !== '+') return `"+" must be a whole level in "${filter}"`;
  }
  return undefined;
}

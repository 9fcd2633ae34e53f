// Runs advisor cases against a device profile and renders the report.
import { performance } from 'node:perf_hooks';
import { ADVISOR_CASES } from './cases';
import type { AdvisorCase, CaseResult } from './cases';
import type { DeviceProfile } from './devices';

export interface AdvisorReport {
  device: string;
  cases: CaseResult[];
  durationMs: number;
}

/**
 * Cases run concurrently: each has its own broker on its own port and its own client id, and
 * every timing is taken on the broker's side of loopback, so they do not disturb each other.
 */
export async function runAdvisor(profile: DeviceProfile, only?: readonly string[]): Promise<AdvisorReport> {
  const selected = only ? ADVISOR_CASES.filter((c) => only.includes(c.name)) : ADVISOR_CASES;
  const unknown = (only ?? []).filter((name) => !ADVISOR_CASES.some((c) => c.name === name));
  if (unknown.length > 0) throw new RangeError(`unknown advisor case(s): ${unknown.join(', ')}; known: ${ADVISOR_CASES.map((c) => c.name).join(', ')}`);
  const started = performance.now();
  const cases = await Promise.all(selected.map((c) => runCase(c, profile)));
  return { device: profile.name, cases, durationMs: Math.round(performance.now() - started) };
}

async function runCase(advisorCase: AdvisorCase, profile: DeviceProfile): Promise<CaseResult> {
  const started = performance.now();
  try {
    const outcome = await advisorCase.run(profile);
    return { name: advisorCase.name, ...outcome, durationMs: Math.round(performance.now() - started) };
  } catch (error) {
    // A case that cannot complete has not shown conformance: that is a failure, with the reason.
    return {
      name: advisorCase.name,
      result: 'fail',
      summary: `the case could not complete: ${error instanceof Error ? error.message : String(error)}`,
      figures: {},
      evidence: error instanceof Error ? (error.stack ?? error.message) : String(error),
      durationMs: Math.round(performance.now() - started),
    };
  }
}

export function reportPassed(report: AdvisorReport): boolean {
  return report.cases.every((c) => c.result !== 'fail');
}

/** The machine-readable form: one JSON object. */
export function reportJson(report: AdvisorReport): string {
  return JSON.stringify({
    device: report.device,
    durationMs: report.durationMs,
    cases: report.cases.map((c) => ({ name: c.name, result: c.result, ...(c.warning ? { warning: c.warning } : {}), summary: c.summary, figures: c.figures, evidence: c.evidence, durationMs: c.durationMs })),
  });
}

const KEY_FIGURES: Record<string, string[]> = {
  connect: ['timeToConnectMs', 'protocolVersion', 'keepAliveSec'],
  'jitter backoff on missing CONNACK': ['connectsPerDevice', 'lateOverEarlyGrowthPerDevice', 'medianCvAcrossDevices'],
  'exponential backoff': ['growthFactorPerAttempt', 'meanIntervalPerAttemptMs'],
  'reconnect after disconnect': ['waitsAfterDisconnectMs'],
  'reconnect backoff on server disconnect': ['growthFactorPerAttempt', 'meanIntervalPerAttemptMs'],
  'publish retry on missing PUBACK': ['liveResends', 'resendPacketId', 'resendDup'],
  'subscribe retry on missing SUBACK': ['liveResends', 'resentAfterReconnect'],
  'PUBACK for inbound QoS 1': ['pubackAfterMs'],
  'missing PINGRESP': ['keepAliveSec', 'pingreqToDisconnectMs', 'limitMs'],
  'persistent session, happy case': ['reconnectCleanStart', 'resubscribes', 'storedMessageAcked'],
  'expired session': ['resubscribes'],
  TLS: ['untrustedCa', 'wrongSubjectName', 'serverNameOptionHonoured'],
};

/** A readable table: one row per case, then the reason for every verdict that is not a plain pass. */
export function reportTable(report: AdvisorReport): string {
  const rows = report.cases.map((c) => {
    const figures = (KEY_FIGURES[c.name] ?? [])
      .filter((k) => c.figures[k] !== undefined)
      .map((k) => `${k}=${JSON.stringify(c.figures[k])}`)
      .join(' ');
    return [c.name, c.result + (c.warning ? ' (warning)' : ''), `${(c.durationMs / 1000).toFixed(1)} s`, figures];
  });
  const header = ['case', 'result', 'time', 'key figures'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (i === 3 ? 0 : r[i]!.length))));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 3 ? cell : cell.padEnd(widths[i]!))).join('  ');
  const out = [`Device Advisor (offline) - device: ${report.device}`, '', line(header), line(widths.map((w) => '-'.repeat(w)).concat('-----------')), ...rows.map(line), ''];
  for (const c of report.cases) out.push(`${c.name}: ${c.result}${c.warning ? ` - warning: ${c.warning}` : ''} - ${c.summary}`);
  const counts = (['pass', 'sdk-limitation', 'fail'] as const).map((r) => `${report.cases.filter((c) => c.result === r).length} ${r}`).join(', ');
  out.push('', `${counts} in ${(report.durationMs / 1000).toFixed(1)} s: ${reportPassed(report) ? 'PASSED' : 'FAILED'}`);
  return out.join('\n');
}

// Offline Device Advisor: runs the MQTT behaviour cases of test/advisor against the project's
// MQTT 5 transport and a deliberately misbehaving local broker.
// Usage: node dist/scripts/advisor.js [--json] [--case NAME ...]
// Exit code: 0 when every case is pass or sdk-limitation, 1 when any fails, 2 on a usage error.
import { mqtt5TransportProfile } from '../test/advisor/devices';
import { reportJson, reportPassed, reportTable, runAdvisor } from '../test/advisor/runner';

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/scripts/advisor.js [--json] [--case NAME ...]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let json = false;
  const only: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === '--json') json = true;
    else if (arg === '--case') only.push(args[++i] ?? usage('--case needs a case name'));
    else if (arg === '--help' || arg === '-h') usage('Runs the offline Device Advisor cases.');
    else usage(`unknown argument "${arg}"`);
  }
  const report = await runAdvisor(mqtt5TransportProfile, only.length > 0 ? only : undefined);
  process.stdout.write(`${json ? reportJson(report) : reportTable(report)}\n`);
  // aws-crt keeps native handles alive after the clients are closed; exit explicitly.
  process.exit(reportPassed(report) ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`advisor: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});

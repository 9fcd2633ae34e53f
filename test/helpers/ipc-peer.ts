/**
 * A tiny Greengrass component used by the runtime tests: the unmodified SDK IPC client in its own
 * process, started by the runtime with its own SVCUID. What it does is chosen by arguments:
 *   subscribe <topic>           write each local pub/sub message received to received.jsonl
 *   publish <topic> <count>     publish <count> JSON messages, then write publish-result.json
 *   iot-publish <topic>         PublishToIoTCore once; write the outcome to iot-publish-result.json
 *   config <argument>           GetConfiguration of a leaf, an object and a missing key; write config.json
 *   serve                       connect, report RUNNING, idle until SIGTERM
 * Modes for configuration and deployment tests; each appends {label, pid, at} to starts.jsonl:
 *   starts <label>              nothing more
 *   validator <accept|reject|silent|late:<ms>> [message]
 *                               answer every configuration validation request (or not, or ACCEPTED
 *                               only after <ms>); each request goes to validate-events.jsonl. With
 *                               late:<ms> it first sends a report nobody asked for and writes that
 *                               outcome to unasked-report.json
 *   config-watcher [key ...]    subscribe to its own configuration at that key path; each event,
 *                               with the value GetConfiguration then returns, goes to config-events.jsonl
 *   config-self                 subscribe to its own configuration, then UpdateConfiguration with a
 *                               fresh, a stale and a forbidden request; outcomes to update-result.json
 *   deferrer <ms> <label>       subscribe to component updates; defer the first preUpdateEvent of a
 *                               deployment by <ms>, accept later ones; events to update-events.jsonl
 *   slow-answer <ms> <label>    subscribe to component updates; answer each preUpdateEvent only
 *                               <ms> later (recheckAfterMs 0); events and each answer's outcome go
 *                               to update-events.jsonl
 *   report-errored <label>      the first time it runs, report ERRORED over UpdateState
 * Output files go to the working directory, which the runtime sets to {work:path}.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { GreengrassIpc, classifyIpcError, describeIpcError } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';

function record(file: string, entry: Record<string, unknown>): void {
  appendFileSync(file, `${JSON.stringify({ ...entry, pid: process.pid, at: Date.now() })}\n`);
}

async function outcome(call: () => Promise<unknown>): Promise<{ ok: boolean; kind?: string; error?: string }> {
  try {
    await call();
    return { ok: true };
  } catch (error) {
    return { ok: false, kind: classifyIpcError(error), error: describeIpcError(error) };
  }
}

/** The modes of the configuration and deployment tests; false when `mode` is not one of them. */
async function deploymentMode(ipc: GreengrassIpc, mode: string, args: string[]): Promise<boolean> {
  const known = ['starts', 'validator', 'config-watcher', 'config-self', 'deferrer', 'slow-answer', 'report-errored'];
  if (!known.includes(mode)) return false;
  record('starts.jsonl', { mode, label: mode === 'deferrer' || mode === 'slow-answer' ? args[1] : args[0] });
  if (mode === 'validator') {
    const [answer, ...message] = args;
    const lateMs = answer.startsWith('late:') ? Number(answer.slice('late:'.length)) : undefined;
    if (lateMs !== undefined) {
      writeFileSync('unasked-report.json', JSON.stringify(await outcome(() => ipc.sendConfigurationValidityReport('deployment-nobody-asked-about', 'ACCEPTED'))));
    }
    await ipc.subscribeToValidateConfigurationUpdates((configuration, deploymentId) => {
      record('validate-events.jsonl', { deploymentId, configuration });
      if (answer === 'silent') return;
      const send = () =>
        ipc
          .sendConfigurationValidityReport(deploymentId, answer === 'reject' ? 'REJECTED' : 'ACCEPTED', message.join(' ') || undefined)
          .then(() => lateMs !== undefined && record('validate-events.jsonl', { reportOk: deploymentId }))
          .catch((error) => record('validate-events.jsonl', { reportError: describeIpcError(error), kind: classifyIpcError(error) }));
      if (lateMs === undefined) void send();
      else setTimeout(() => void send(), lateMs);
    });
  } else if (mode === 'config-watcher') {
    await ipc.subscribeToConfigurationUpdate(args, (keyPath, componentName) => {
      void ipc.getConfiguration(keyPath).then(
        (value) => record('config-events.jsonl', { componentName, keyPath, value }),
        (error) => record('config-events.jsonl', { componentName, keyPath, error: describeIpcError(error) }),
      );
    });
  } else if (mode === 'config-self') {
    await ipc.subscribeToConfigurationUpdate([], (keyPath) => record('config-events.jsonl', { keyPath }));
    const fresh = await outcome(() => ipc.updateConfiguration(['tuning'], { rate: 5 }));
    const stale = await outcome(() => ipc.updateConfiguration(['tuning'], { rate: 7 }, new Date(Date.now() - 3_600_000)));
    const forbidden = await outcome(() => ipc.updateConfiguration([], { accessControl: {} }));
    const created = await outcome(() => ipc.updateConfiguration(['fresh', 'branch'], { x: 1 }));
    const tuning = await ipc.getConfiguration(['tuning']);
    const branch = await ipc.getConfiguration(['fresh']);
    writeFileSync('update-result.json', JSON.stringify({ fresh, stale, forbidden, created, tuning, branch }));
  } else if (mode === 'deferrer') {
    const deferMs = Number(args[0] ?? 0);
    const deferred = new Set<string>();
    await ipc.subscribeToComponentUpdates((event) => {
      record('update-events.jsonl', { ...event, label: args[1] });
      if (event.kind !== 'pre') return;
      const recheckAfterMs = deferred.has(event.deploymentId) ? 0 : deferMs;
      deferred.add(event.deploymentId);
      void ipc
        .deferComponentUpdate(event.deploymentId, recheckAfterMs, recheckAfterMs > 0 ? 'finishing in-flight work' : undefined)
        .catch((error) => record('update-events.jsonl', { deferError: describeIpcError(error) }));
    });
  } else if (mode === 'slow-answer') {
    const answerAfterMs = Number(args[0] ?? 0);
    await ipc.subscribeToComponentUpdates((event) => {
      record('update-events.jsonl', { ...event, label: args[1] });
      if (event.kind !== 'pre') return;
      setTimeout(() => {
        void ipc.deferComponentUpdate(event.deploymentId, 0).then(
          () => record('update-events.jsonl', { kind: 'answered', deploymentId: event.deploymentId }),
          (error) => record('update-events.jsonl', { kind: 'answer-refused', deploymentId: event.deploymentId, error: describeIpcError(error) }),
        );
      }, answerAfterMs);
    });
  } else if (mode === 'report-errored') {
    if (!existsSync('errored-once')) {
      writeFileSync('errored-once', 'yes');
      setTimeout(() => void ipc.updateState('ERRORED').catch(() => undefined), 300);
      writeFileSync('subscribed', 'yes');
      setInterval(() => undefined, 60_000);
      return true;
    }
  }
  writeFileSync('subscribed', 'yes');
  await ipc.updateState('RUNNING').catch(() => undefined);
  setInterval(() => undefined, 60_000);
  return true;
}

async function main(): Promise<void> {
  const [mode, topic, countText] = process.argv.slice(2);
  const ipc = await GreengrassIpc.connect({ logger: createLogger('ipc-peer'), connectDeadlineMs: 20_000 });
  process.on('SIGTERM', () => {
    void ipc.close().finally(() => process.exit(0));
  });
  if (await deploymentMode(ipc, mode, process.argv.slice(3))) return;
  if (mode === 'subscribe') {
    await ipc.subscribeToTopic(topic, (message, actualTopic) => appendFileSync('received.jsonl', `${JSON.stringify({ topic: actualTopic, message })}\n`));
    writeFileSync('subscribed', 'yes');
  } else if (mode === 'publish') {
    const results: Array<{ ok: boolean; kind?: string; error?: string }> = [];
    for (let i = 0; i < Number(countText ?? 1); i += 1) {
      try {
        await ipc.publishToTopic(topic, { n: i, from: process.pid });
        results.push({ ok: true });
      } catch (error) {
        results.push({ ok: false, kind: classifyIpcError(error), error: describeIpcError(error) });
      }
    }
    writeFileSync('publish-result.json', JSON.stringify(results));
  } else if (mode === 'config') {
    const leaf = await ipc.getConfiguration(['greeting']);
    const nested = await ipc.getConfiguration(['nested']);
    const missing = await ipc.getConfiguration(['no', 'such', 'key']).then(
      () => 'found',
      (error) => describeIpcError(error),
    );
    writeFileSync('config.json', JSON.stringify({ argument: topic, leaf, nested, missing }));
  } else if (mode === 'iot-publish') {
    try {
      await ipc.publishToIoTCore(topic, JSON.stringify({ hello: 'iot' }));
      writeFileSync('iot-publish-result.json', JSON.stringify({ ok: true }));
    } catch (error) {
      writeFileSync('iot-publish-result.json', JSON.stringify({ ok: false, kind: classifyIpcError(error), error: describeIpcError(error) }));
    }
  }
  await ipc.updateState('RUNNING');
  setInterval(() => undefined, 60_000);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

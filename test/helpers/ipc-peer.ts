/**
 * A tiny Greengrass component used by the runtime tests: the unmodified SDK IPC client in its own
 * process, started by the runtime with its own SVCUID. What it does is chosen by arguments:
 *   subscribe <topic>           write each local pub/sub message received to received.jsonl
 *   publish <topic> <count>     publish <count> JSON messages, then write publish-result.json
 *   iot-publish <topic>         PublishToIoTCore once; write the outcome to iot-publish-result.json
 *   config <argument>           GetConfiguration of a leaf, an object and a missing key; write config.json
 *   serve                       connect, report RUNNING, idle until SIGTERM
 * Output files go to the working directory, which the runtime sets to {work:path}.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { GreengrassIpc, classifyIpcError, describeIpcError } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';

async function main(): Promise<void> {
  const [mode, topic, countText] = process.argv.slice(2);
  const ipc = await GreengrassIpc.connect({ logger: createLogger('ipc-peer'), connectDeadlineMs: 20_000 });
  process.on('SIGTERM', () => {
    void ipc.close().finally(() => process.exit(0));
  });
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

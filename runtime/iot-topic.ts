/**
 * The checks the nucleus makes on IoT Core topics before it publishes or subscribes
 * (aws-greengrass-nucleus, mqttclient/IotCoreTopicValidator), mirroring AWS IoT Core's limits
 * ("AWS IoT Core message broker and protocol limits and quotas"): at most 7 forward slashes and
 * 256 bytes, not counting the "$aws/rules/<rule>/" prefix of Basic Ingest topics; no wildcards in a
 * publish topic. The bridge here speaks MQTT 3.1.1, so other "$" topics are checked like any topic,
 * as the nucleus does for MQTT 3.
 */
export const MAX_TOPIC_SLASHES = 7;
export const MAX_TOPIC_BYTES = 256;
const BASIC_INGEST = /^\$aws\/rules\/[^/\s]+?\//;

export function invalidIotTopicReason(topic: string, operation: 'publish' | 'subscribe'): string | undefined {
  if (topic.length === 0) return 'topic must not be empty';
  if (operation === 'publish' && (topic.includes('#') || topic.includes('+'))) return "publish topics must not contain the wildcards '#' or '+'";
  let effective = topic;
  if (BASIC_INGEST.test(topic)) {
    effective = topic.replace(BASIC_INGEST, '');
    if (effective.length === 0) return "the Basic Ingest topic is empty after its '$aws/rules/<rule>/' prefix";
  }
  const slashes = [...effective].filter((c) => c === '/').length;
  if (slashes > MAX_TOPIC_SLASHES) return `topic "${topic}" has ${slashes} forward slashes; AWS IoT Core allows at most ${MAX_TOPIC_SLASHES}`;
  const bytes = Buffer.byteLength(effective);
  if (bytes > MAX_TOPIC_BYTES) return `topic is ${bytes} bytes; AWS IoT Core allows at most ${MAX_TOPIC_BYTES} (not counting a Basic Ingest prefix)`;
  return undefined;
}

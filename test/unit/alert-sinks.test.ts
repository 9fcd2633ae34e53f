import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { SNSClient } from '@aws-sdk/client-sns';
import { LocalFolderArchive } from '../../cloud/archive';
import { ALERTS_ACTIVE_KEY, alertHistoryKey, ArchiveFileSink, readActiveAlerts, SnsSink, WebhookSink } from '../../cloud/alert-sinks';
import { AlertManager, type AlertEvent, type AlertSink } from '../../cloud/alerts';
import { captureLogger, tempDir } from '../helpers/cloud-fixtures';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A local HTTP peer that records every request and answers as `respond` says. */
async function httpPeer(respond: (request: Recorded, response: ServerResponse) => void): Promise<{ url: string; requests: Recorded[]; close(): Promise<void> }> {
  const requests: Recorded[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const recorded = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body };
      requests.push(recorded);
      respond(recorded, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function event(overrides: Partial<AlertEvent> = {}): AlertEvent {
  return {
    alertId: 'component-broken:elevator-0001:com.elevator.StreamBuffer',
    kind: 'component-broken',
    owner: 'device',
    severity: 'critical',
    state: 'firing',
    device: 'elevator-0001',
    component: 'com.elevator.StreamBuffer',
    message: 'com.elevator.StreamBuffer 1.0.0 is BROKEN on elevator-0001.',
    since: '2026-11-26T12:00:00.000Z',
    at: '2026-11-26T12:00:00.000Z',
    details: { version: '1.0.0' },
    ...overrides,
  };
}

function recordingSink(): AlertSink & { events: AlertEvent[] } {
  const events: AlertEvent[] = [];
  return { name: 'recorder', events, deliver: async (e) => void events.push(e) };
}

describe('AlertManager', () => {
  test('emits firing once while the condition repeats, cleared once, and nothing for an alert not firing', async () => {
    let now = Date.parse('2026-11-26T12:00:00Z');
    const sink = recordingSink();
    const alerts = new AlertManager({ sinks: [sink], logger: captureLogger().logger, now: () => new Date(now) });
    const condition = { kind: 'clock-skew' as const, device: 'elevator-0001', message: 'clock off', details: { skewMs: 60_000 } };
    assert.equal(alerts.fire(condition), true);
    now += 1000;
    assert.equal(alerts.fire(condition), false);
    assert.equal(alerts.clear('clock-skew:elevator-0002', 'other device'), false);
    now += 1000;
    assert.equal(alerts.clear('clock-skew:elevator-0001', 'clock back', { skewMs: 10 }), true);
    assert.equal(alerts.clear('clock-skew:elevator-0001', 'clock back'), false);
    await alerts.flush();
    assert.deepEqual(
      sink.events.map((e) => [e.alertId, e.state, e.since, e.at, e.message]),
      [
        ['clock-skew:elevator-0001', 'firing', '2026-11-26T12:00:00.000Z', '2026-11-26T12:00:00.000Z', 'clock off'],
        ['clock-skew:elevator-0001', 'cleared', '2026-11-26T12:00:00.000Z', '2026-11-26T12:00:02.000Z', 'clock back'],
      ],
    );
    assert.deepEqual(sink.events[1].details, { skewMs: 10 });
    assert.deepEqual(alerts.stats(), { alertsFired: 1, alertsCleared: 1, alertsActive: 0, alertSinkFailures: {} });
  });

  test('a sink that throws is counted and logged; the other sinks still get every event', async () => {
    const { logger, entries } = captureLogger();
    const good = recordingSink();
    const broken: AlertSink = { name: 'broken', deliver: () => Promise.reject(new Error('no route to host')) };
    const alerts = new AlertManager({ sinks: [broken, good], logger, now: () => new Date() });
    alerts.fire({ kind: 'device-stale', device: 'elevator-0001', message: 'silent' });
    alerts.clear('device-stale:elevator-0001', 'back');
    await alerts.flush();
    assert.equal(good.events.length, 2);
    assert.deepEqual(alerts.stats().alertSinkFailures, { broken: 2 });
    assert.ok(entries.some((e) => e.level === 'warn' && e.sink === 'broken' && e.error === 'no route to host'));
  });

  test('restored alerts are not emitted again, but their clearing is', async () => {
    const sink = recordingSink();
    const alerts = new AlertManager({ sinks: [sink], logger: captureLogger().logger, now: () => new Date() });
    alerts.restore([event(), event({ alertId: 'x', state: 'cleared' })]);
    assert.deepEqual(alerts.active().map((a) => a.alertId), [event().alertId]);
    assert.equal(alerts.fire({ kind: 'component-broken', device: 'elevator-0001', component: 'com.elevator.StreamBuffer', message: 'again' }), false);
    assert.equal(alerts.clear(event().alertId, 'running'), true);
    await alerts.flush();
    assert.deepEqual(sink.events.map((e) => [e.state, e.since]), [['cleared', event().since]]);
  });
});

describe('ArchiveFileSink', () => {
  test('keeps _alerts/active.json as {updatedAt, alerts} and one history object per event', async () => {
    const dir = await tempDir();
    try {
      const archive = new LocalFolderArchive(dir.path);
      const sink = new ArchiveFileSink(archive, () => new Date('2026-11-26T12:00:05Z'));
      const firing = event();
      await sink.deliver(firing, [firing]);
      assert.deepEqual(JSON.parse((await archive.get(ALERTS_ACTIVE_KEY))!.toString('utf8')), { updatedAt: '2026-11-26T12:00:05.000Z', alerts: [firing] });
      assert.deepEqual(await readActiveAlerts(archive), [firing]);
      const cleared = event({ state: 'cleared', at: '2026-11-26T12:01:00.000Z' });
      await sink.deliver(cleared, []);
      assert.deepEqual(JSON.parse((await archive.get(ALERTS_ACTIVE_KEY))!.toString('utf8')).alerts, []);
      assert.deepEqual(await archive.list('_alerts/history/'), [
        '_alerts/history/2026-11-26/20261126T120000000Z-firing-component-broken!3Aelevator-0001!3Acom!2Eelevator!2EStreamBuffer-1.json',
        '_alerts/history/2026-11-26/20261126T120100000Z-cleared-component-broken!3Aelevator-0001!3Acom!2Eelevator!2EStreamBuffer-2.json',
      ]);
      assert.equal(alertHistoryKey(cleared, 7).endsWith('-7.json'), true);
    } finally {
      await dir.remove();
    }
  });
});

describe('WebhookSink', () => {
  test('POSTs the event as JSON', async () => {
    const peer = await httpPeer((_request, response) => response.writeHead(204).end());
    try {
      const sink = new WebhookSink({ url: `${peer.url}/hooks/alerts`, headers: { authorization: 'Bearer t0ken' } });
      await sink.deliver(event());
      assert.equal(peer.requests.length, 1);
      const [request] = peer.requests;
      assert.equal(request.method, 'POST');
      assert.equal(request.url, '/hooks/alerts');
      assert.equal(request.headers['content-type'], 'application/json');
      assert.equal(request.headers.authorization, 'Bearer t0ken');
      assert.deepEqual(JSON.parse(request.body), event());
      assert.deepEqual(sink.metrics, { delivered: 1, failedAttempts: 0, failed: 0 });
    } finally {
      await peer.close();
    }
  });

  test('a 5xx is retried with backoff until it succeeds', async () => {
    const peer = await httpPeer((request, response) => response.writeHead(peerCount(request) < 3 ? 502 : 200).end());
    let seen = 0;
    function peerCount(_request: Recorded): number {
      seen += 1;
      return seen;
    }
    try {
      const sink = new WebhookSink({ url: peer.url, attempts: 4, retryBaseMs: 10 });
      await sink.deliver(event());
      assert.equal(peer.requests.length, 3);
      assert.deepEqual(sink.metrics, { delivered: 1, failedAttempts: 2, failed: 0 });
    } finally {
      await peer.close();
    }
  });

  test('a peer that never answers times out on every attempt and the delivery fails with the URL in the reason', async () => {
    const peer = await httpPeer(() => undefined);
    try {
      const sink = new WebhookSink({ url: peer.url, attempts: 2, retryBaseMs: 10, timeoutMs: 100 });
      const started = Date.now();
      await assert.rejects(sink.deliver(event()), (error: Error) => error.message.includes(peer.url) && /after 2 attempt/.test(error.message));
      // Two 100 ms timeouts; a sink without one would wait for ever. Loose, for a loaded machine.
      assert.ok(Date.now() - started < 10_000, `gave up after ${Date.now() - started} ms`);
      assert.equal(peer.requests.length, 2);
      assert.deepEqual(sink.metrics, { delivered: 0, failedAttempts: 2, failed: 1 });
    } finally {
      await peer.close();
    }
  });

  test('a 4xx other than 408/429 is not retried: resending the same event cannot help', async () => {
    const peer = await httpPeer((_request, response) => response.writeHead(400).end('bad'));
    try {
      const sink = new WebhookSink({ url: peer.url, attempts: 5, retryBaseMs: 10 });
      await assert.rejects(sink.deliver(event()), /HTTP 400/);
      assert.equal(peer.requests.length, 1);
    } finally {
      await peer.close();
    }
  });

  test('a URL that is not http(s) is refused at construction', () => {
    assert.throws(() => new WebhookSink({ url: 'ftp://example.com/x' }), /http or https/);
    assert.throws(() => new WebhookSink({ url: 'not a url' }));
  });
});

describe('SnsSink (real AWS SDK v3 client, local endpoint)', () => {
  const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:elevator-alerts';
  const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

  function publishResponse(response: ServerResponse): void {
    response.writeHead(200, { 'content-type': 'text/xml' }).end(
      '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>5f2a6d1e-0000-4000-8000-000000000001</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>',
    );
  }

  test('publishes the event to the topic: TopicArn, Message (the event as JSON), Subject and filterable attributes', async () => {
    const peer = await httpPeer((_request, response) => publishResponse(response));
    const sink = new SnsSink({ topicArn: TOPIC, endpoint: peer.url, clientConfig: { credentials } });
    try {
      await sink.deliver(event());
      assert.equal(peer.requests.length, 1);
      const [request] = peer.requests;
      assert.equal(request.method, 'POST');
      assert.match(String(request.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/sns\/aws4_request/);
      const form = new URLSearchParams(request.body);
      assert.equal(form.get('Action'), 'Publish');
      assert.equal(form.get('TopicArn'), TOPIC);
      assert.deepEqual(JSON.parse(form.get('Message')!), event());
      assert.equal(form.get('Subject'), '[FIRING] critical component-broken elevator-0001 com.elevator.StreamBuffer');
      const attributes = new Map<string, string>();
      for (let i = 1; form.has(`MessageAttributes.entry.${i}.Name`); i += 1) {
        attributes.set(form.get(`MessageAttributes.entry.${i}.Name`)!, form.get(`MessageAttributes.entry.${i}.Value.StringValue`)!);
      }
      assert.deepEqual(Object.fromEntries(attributes), { kind: 'component-broken', severity: 'critical', state: 'firing', owner: 'device' });
      assert.equal(sink.metrics.published, 1);
    } finally {
      sink.destroy();
      await peer.close();
    }
  });

  test('an SNS error reaches the manager as a failure of sink "sns", counted, and the ingest side never sees it thrown', async () => {
    const peer = await httpPeer((_request, response) =>
      response
        .writeHead(404, { 'content-type': 'text/xml' })
        .end('<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error><RequestId>r-2</RequestId></ErrorResponse>'),
    );
    const client = new SNSClient({ region: 'eu-west-1', endpoint: peer.url, credentials, maxAttempts: 1 });
    const sink = new SnsSink({ topicArn: TOPIC, client });
    const alerts = new AlertManager({ sinks: [sink], logger: captureLogger().logger, now: () => new Date() });
    try {
      assert.doesNotThrow(() => alerts.fire({ kind: 'gap-permanent', device: 'elevator-0001', stream: 'door-cycle', message: 'lost' }));
      await alerts.flush();
      assert.deepEqual(alerts.stats().alertSinkFailures, { sns: 1 });
      assert.equal(peer.requests.length, 1);
    } finally {
      sink.destroy();
      await peer.close();
    }
  });

  test('a topic that is not an SNS ARN is refused at construction', () => {
    assert.throws(() => new SnsSink({ topicArn: 'elevator-alerts' }), /SNS topic ARN/);
  });
});

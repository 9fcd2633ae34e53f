import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ArchiveBackend } from '../archive';
import type { Logger } from '../../components/shared/logger';
import { errorMessage } from '../../components/shared/logger';
import { buildFleetModel, FleetSampler, GapCache, type BuildOptions, type FleetModel, type SeriesPoint } from './model';
import { FLEET_PAGE_HTML } from './page';

export const DEFAULT_VIEW_HOST = '127.0.0.1';
export const DEFAULT_VIEW_PORT = 8080;
export const DEFAULT_SAMPLE_INTERVAL_MS = 1000;
export const DEFAULT_HISTORY_MS = 15 * 60_000;
/** More live pages than this is a leak or an attack, not people looking. */
const MAX_EVENT_CLIENTS = 50;
/** A page that has not taken this much of what was sent is too slow (or gone): it is dropped and reconnects. */
const MAX_UNSENT_BYTES = 1024 * 1024;

export interface FleetViewOptions {
  archive: ArchiveBackend;
  /** 0 picks a free port. */
  port: number;
  host?: string;
  sampleIntervalMs?: number;
  historyMs?: number;
  build?: Omit<BuildOptions, 'gapCache'>;
  logger?: Logger;
}

/**
 * The fleet view's HTTP server. It samples the archive once per interval (one reader however many
 * pages are open), keeps the history in memory, and pushes each sample to every open page over
 * Server-Sent Events.
 */
export class FleetViewServer {
  private readonly server: Server;
  private readonly sampler: FleetSampler;
  private readonly gapCache = new GapCache();
  private readonly clients = new Set<ServerResponse>();
  private readonly sampleIntervalMs: number;
  private readonly historyMs: number;
  private model?: FleetModel;
  private lastSampleAt = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private sampleFailing = false;
  private address?: AddressInfo;

  constructor(private readonly options: FleetViewOptions) {
    this.sampleIntervalMs = options.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS;
    this.historyMs = options.historyMs ?? DEFAULT_HISTORY_MS;
    this.sampler = new FleetSampler(this.historyMs);
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** Takes the first sample, then listens; resolves with the page's URL. Rejects if the port cannot be bound. */
  async start(): Promise<string> {
    await this.sample();
    const host = this.options.host ?? DEFAULT_VIEW_HOST;
    await new Promise<void>((resolveListen, rejectListen) => {
      this.server.once('error', rejectListen);
      this.server.listen(this.options.port, host, () => {
        this.server.off('error', rejectListen);
        resolveListen();
      });
    });
    this.server.on('error', (error) => this.options.logger?.error('fleet view server error', { error: errorMessage(error) }));
    this.address = this.server.address() as AddressInfo;
    this.scheduleSample();
    return this.url;
  }

  get url(): string {
    if (!this.address) throw new Error('the fleet view is not listening');
    const host = this.address.family === 'IPv6' ? `[${this.address.address}]` : this.address.address;
    return `http://${host}:${this.address.port}/`;
  }

  get port(): number | undefined {
    return this.address?.port;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const client of this.clients) client.end();
    this.clients.clear();
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolveClose) => this.server.close(() => resolveClose()));
    this.server.closeAllConnections();
    await closed;
  }

  /** setTimeout after each sample rather than setInterval, so a slow archive never stacks up samples. */
  private scheduleSample(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sample().finally(() => this.scheduleSample());
    }, this.sampleIntervalMs);
    this.timer.unref();
  }

  private async sample(): Promise<void> {
    let model: FleetModel;
    try {
      model = await buildFleetModel(this.options.archive, new Date(), { ...this.options.build, gapCache: this.gapCache });
    } catch (error) {
      // buildFleetModel reports bad data in the model; reaching here is a bug, so the old model stays and it is logged once per streak.
      if (!this.sampleFailing) this.options.logger?.error('fleet view sample failed', { error: errorMessage(error) });
      this.sampleFailing = true;
      return;
    }
    this.sampleFailing = false;
    const now = Date.now();
    const point = this.sampler.sample(model, now);
    this.model = model;
    this.lastSampleAt = now;
    this.broadcast('update', { model, point });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (!this.hostAllowed(req.headers.host)) return this.send(res, 421, 'text/plain', 'unexpected Host header\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return this.send(res, 405, 'text/plain', 'method not allowed\n');
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/':
        return this.sendPage(res);
      case '/api/fleet':
        return this.send(res, 200, 'application/json', JSON.stringify(this.view()));
      case '/api/events':
        return this.openEvents(req, res);
      case '/healthz': {
        // Sampling stuck for several intervals means the page shows old data: say so.
        const ageMs = Date.now() - this.lastSampleAt;
        const ok = this.model !== undefined && ageMs < this.sampleIntervalMs * 5 + 5000;
        return this.send(res, ok ? 200 : 503, 'application/json', JSON.stringify({ ok, lastSampleAgeMs: ageMs, clients: this.clients.size }));
      }
      case '/favicon.ico':
        // Browsers ask for it on their own; an empty answer keeps a 404 out of the page's console.
        res.writeHead(204, { 'Cache-Control': 'max-age=86400' });
        return void res.end();
      default:
        return this.send(res, 404, 'text/plain', 'not found\n');
    }
  }

  private view(): { model: FleetModel | undefined; series: SeriesPoint[] } {
    return { model: this.model, series: this.sampler.series.points() };
  }

  private sendPage(res: ServerResponse): void {
    const nonce = randomBytes(16).toString('base64');
    const html = FLEET_PAGE_HTML.replaceAll('__NONCE__', nonce).replace('__HISTORY_MS__', String(this.historyMs));
    // Nothing but this page's own script, style and server: the page can never reach the internet.
    res.setHeader('Content-Security-Policy', `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    this.send(res, 200, 'text/html; charset=utf-8', html);
  }

  private openEvents(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= MAX_EVENT_CLIENTS) return this.send(res, 503, 'text/plain', 'too many live pages\n');
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    // retry: how soon the browser reconnects after the server goes away (e.g. npm start restarted).
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    const forget = (): void => void this.clients.delete(res);
    req.once('close', forget);
    res.once('error', forget);
    if (this.model) this.writeEvent(res, 'snapshot', this.view());
  }

  private broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const frame = eventFrame(event, data);
    for (const client of this.clients) this.writeFrame(client, frame);
  }

  private writeEvent(res: ServerResponse, event: string, data: unknown): void {
    this.writeFrame(res, eventFrame(event, data));
  }

  private writeFrame(res: ServerResponse, frame: string): void {
    if (res.writableLength > MAX_UNSENT_BYTES) {
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(frame);
  }

  private send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  /**
   * On a loopback address only loopback names are accepted, so a web page elsewhere cannot read
   * the fleet through DNS rebinding. Bound to another address, any Host is fine.
   */
  private hostAllowed(hostHeader: string | undefined): boolean {
    const bound = this.options.host ?? DEFAULT_VIEW_HOST;
    if (!isLoopback(bound)) return true;
    if (!hostHeader) return false;
    const name = hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.split(':')[0];
    return isLoopback(name) || name === 'localhost';
  }
}

function eventFrame(event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so the whole payload fits one data: line.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

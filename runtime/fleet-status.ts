/**
 * The nucleus's fleet status service, as far as the cloud side of this project relies on it: the
 * component states of the core device, published to AWS IoT Core on
 * `$aws/things/<thing>/greengrassv2/health/json` (nucleus FleetStatusService, model
 * FleetStatusDetails / ComponentDetails). It is what AWS IoT Greengrass shows as the core device's
 * status, and the only place a cloud learns that a component is BROKEN.
 *
 * When the nucleus publishes (FleetStatusService.handleServiceStateChange, schedulePeriodicFleetStatusDataUpdate):
 * - at launch, every component (COMPLETE, trigger NUCLEUS_LAUNCH);
 * - a component turns ERRORED: the components that changed since the last message (PARTIAL,
 *   COMPONENT_STATUS_CHANGE);
 * - a component turns BROKEN: the same, with the overall status UNHEALTHY;
 * - every component has reached a terminal state (RUNNING, FINISHED, BROKEN) after a change: the
 *   components that changed (PARTIAL, COMPONENT_STATUS_CHANGE);
 * - every periodicStatusPublishIntervalSeconds (default 86,400, at a per-device phase): every
 *   component (COMPLETE, CADENCE).
 * The overall status is UNHEALTHY while any component is ERRORED or BROKEN.
 */
import type { ComponentState } from './supervisor';

export const FLEET_STATUS_TOPIC_SUFFIX = 'greengrassv2/health/json';
/** Nucleus FleetStatusService.DEFAULT_PERIODIC_PUBLISH_INTERVAL_SEC. */
export const DEFAULT_PERIODIC_STATUS_INTERVAL_SEC = 86_400;

export type FleetTrigger = 'NUCLEUS_LAUNCH' | 'COMPONENT_STATUS_CHANGE' | 'CADENCE';

export interface FleetComponentDetails {
  componentName: string;
  version: string;
  fleetConfigArns: string[];
  isRoot: boolean;
  status: ComponentState;
}

export interface FleetStatusMessage {
  ggcVersion: string;
  platform: string;
  architecture: string;
  thing: string;
  overallDeviceStatus: 'HEALTHY' | 'UNHEALTHY';
  sequenceNumber: number;
  timestamp: number;
  messageType: 'COMPLETE' | 'PARTIAL';
  trigger: FleetTrigger;
  components: FleetComponentDetails[];
}

export function fleetStatusTopic(thingName: string): string {
  return `$aws/things/${thingName}/${FLEET_STATUS_TOPIC_SUFFIX}`;
}

const TERMINAL: ReadonlySet<ComponentState> = new Set(['RUNNING', 'FINISHED', 'BROKEN']);
const UNHEALTHY: ReadonlySet<ComponentState> = new Set(['ERRORED', 'BROKEN']);

/** The platform and architecture names the nucleus reports (linux; amd64, aarch64, ...). */
function nucleusArchitecture(arch: string): string {
  return arch === 'x64' ? 'amd64' : arch === 'arm64' ? 'aarch64' : arch;
}

export interface FleetStatusOptions {
  thingName: string;
  ggcVersion: string;
  /** Every component the runtime runs, with its version and current state. */
  components: () => Array<{ name: string; version: string; state: ComponentState }>;
  /** Hands a message to the IoT Core bridge (QoS 1, spooled while offline). */
  publish: (topic: string, message: FleetStatusMessage) => void;
  /** The nucleus sends nothing for components reaching terminal states while it shuts down. */
  shuttingDown: () => boolean;
  now?: () => number;
}

export class FleetStatusReporter {
  private sequenceNumber = 0;
  private readonly changed = new Set<string>();
  private readonly now: () => number;
  readonly counters = { published: 0 };

  constructor(private readonly options: FleetStatusOptions) {
    this.now = options.now ?? Date.now;
  }

  /** At launch and on the cadence: every component. */
  publishComplete(trigger: 'NUCLEUS_LAUNCH' | 'CADENCE'): void {
    this.changed.clear();
    this.send('COMPLETE', trigger, this.options.components());
  }

  onComponentState(name: string, state: ComponentState): void {
    this.changed.add(name);
    const all = this.options.components();
    const shouldSend = state === 'ERRORED' || state === 'BROKEN' || (!this.options.shuttingDown() && all.every((c) => TERMINAL.has(c.state)));
    if (!shouldSend) return;
    const reported = all.filter((c) => this.changed.has(c.name));
    this.changed.clear();
    if (reported.length > 0) this.send('PARTIAL', 'COMPONENT_STATUS_CHANGE', reported);
  }

  private send(messageType: FleetStatusMessage['messageType'], trigger: FleetTrigger, components: Array<{ name: string; version: string; state: ComponentState }>): void {
    const overall = this.options.components().some((c) => UNHEALTHY.has(c.state)) ? 'UNHEALTHY' : 'HEALTHY';
    this.sequenceNumber += 1;
    this.options.publish(fleetStatusTopic(this.options.thingName), {
      ggcVersion: this.options.ggcVersion,
      platform: process.platform,
      architecture: nucleusArchitecture(process.arch),
      thing: this.options.thingName,
      overallDeviceStatus: overall,
      sequenceNumber: this.sequenceNumber,
      timestamp: this.now(),
      messageType,
      trigger,
      components: components.map((c) => ({ componentName: c.name, version: c.version, fleetConfigArns: [], isRoot: true, status: c.state })),
    });
    this.counters.published += 1;
  }
}

import { compileValidator } from '../components/shared/validation';
import { encodeKeySegment } from './keys';
import fleetStatusSchema from './fleet-status.schema.json';

/**
 * The Greengrass nucleus's fleet status messages (FleetStatusService), which it publishes to IoT
 * Core on `$aws/things/<thing>/greengrassv2/health/json` when a component changes state, after a
 * deployment and at its own interval. The ingest keeps the latest per device and raises
 * component-broken alerts from them.
 */
export type ComponentState = 'NEW' | 'INSTALLED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'FINISHED' | 'ERRORED' | 'BROKEN';

export interface FleetStatusComponent {
  componentName: string;
  version: string;
  status: ComponentState;
  isRoot?: boolean;
  fleetConfigArns?: string[];
  componentStatusDetails?: Record<string, unknown> | null;
  statusDetails?: Record<string, unknown> | null;
}

export interface FleetStatusMessage {
  ggcVersion: string;
  platform: string;
  architecture: string;
  thing: string;
  overallDeviceStatus: 'HEALTHY' | 'UNHEALTHY';
  sequenceNumber: number;
  /** Epoch milliseconds, the device's clock. */
  timestamp: number;
  messageType: 'COMPLETE' | 'PARTIAL';
  trigger?: string;
  components: FleetStatusComponent[];
}

export const validateFleetStatus = compileValidator<FleetStatusMessage>(fleetStatusSchema);

export const FLEET_STATUS_PREFIX = 'fleet-status/';

/** `fleet-status/<device>/latest.json`: `{device, receivedAt, message, components}`. */
export function fleetStatusKey(device: string): string {
  return `${FLEET_STATUS_PREFIX}${encodeKeySegment(device)}/latest.json`;
}

/** The subscription filter for every thing's fleet status. */
export const FLEET_STATUS_FILTER = '$aws/things/+/greengrassv2/health/json';

/** The thing named by a fleet status topic, or undefined for any other topic. */
export function parseFleetStatusTopic(topic: string): string | undefined {
  const parts = topic.split('/');
  if (parts.length !== 6 || parts[0] !== '$aws' || parts[1] !== 'things' || parts[3] !== 'greengrassv2' || parts[4] !== 'health' || parts[5] !== 'json') return undefined;
  return parts[2].length > 0 ? parts[2] : undefined;
}

export interface KnownComponentState {
  status: ComponentState;
  version: string;
  /** The timestamp of the message that last named the component. */
  reportedAt: string;
}

export interface StoredFleetStatus {
  device: string;
  receivedAt: string;
  /** The last message as received. */
  message: FleetStatusMessage;
  /** Every component's last known state, PARTIAL messages merged into the last COMPLETE one. */
  components: Record<string, KnownComponentState>;
}

/**
 * A PARTIAL message names only the components that changed, so the state of the others is the
 * one last seen; a COMPLETE message names them all, so a component missing from it is gone.
 */
export function mergeComponentStates(previous: Record<string, KnownComponentState>, message: FleetStatusMessage): Record<string, KnownComponentState> {
  const merged: Record<string, KnownComponentState> = message.messageType === 'COMPLETE' ? {} : { ...previous };
  const reportedAt = new Date(message.timestamp).toISOString();
  for (const component of message.components) {
    merged[component.componentName] = { status: component.status, version: component.version, reportedAt };
  }
  return merged;
}

/**
 * Builds the configured sensor source: a SignalSource (simulator, replay, line driver) and the one
 * deriver behind the SensorSource interface the acquisition consumes.
 */
import type { Logger } from '../shared/logger';
import type { SensorAcquisitionConfig } from './config';
import { Deriver, DerivedSource, type SensorSource } from './derive';
import { LineProtocolDriver, openLineDevice } from './line-driver';
import { formatFromPath, ReplaySignals } from './replay';
import { landingHeights, type RejectedInput } from './signals';
import { deriverConfigFor, ElevatorSimulator } from './simulator';

export interface BuiltSource {
  source: SensorSource;
  /** Applies a new configuration: deriver settings at once, simulator keys from its next phase. */
  reconfigure(next: SensorAcquisitionConfig): void;
  close(): Promise<void>;
}

function deriverConfig(config: SensorAcquisitionConfig) {
  return deriverConfigFor(config.simulator, landingHeights(config.simulator), config.rawSamples, config.detector);
}

/** Throws with a clear message when the source cannot start (a missing or unreadable file, a bad CSV header). */
export function buildSensorSource(config: SensorAcquisitionConfig, logger: Logger, random: () => number = Math.random): BuiltSource {
  const onRejected = (rejected: RejectedInput): void => {
    logger.warn('sensor input rejected', { origin: rejected.origin, line: rejected.line, reason: rejected.reason, text: rejected.text });
  };
  const sourceConfig = config.source;
  let current = config.source;
  const restartNeeded = (next: SensorAcquisitionConfig): void => {
    if (JSON.stringify(next.source) !== JSON.stringify(current)) {
      logger.warn('source settings changed; they apply after a restart', { running: current, configured: next.source });
      current = next.source;
    }
  };
  if (sourceConfig.type === 'simulator') {
    const simulator = new ElevatorSimulator(config.simulator, random, { rawSamples: config.rawSamples, detector: config.detector, onRejected });
    return {
      source: simulator,
      reconfigure(next) {
        restartNeeded(next);
        simulator.reconfigure(next.simulator, { rawSamples: next.rawSamples, detector: next.detector });
      },
      async close() {},
    };
  }
  const path = sourceConfig.path;
  if (!path) throw new Error(`source.path is required for source.type ${sourceConfig.type}`);
  if (sourceConfig.type === 'replay') {
    const replay = ReplaySignals.fromFile(path, sourceConfig.format ?? formatFromPath(path), {
      timeScale: sourceConfig.timeScale,
      rebase: sourceConfig.rebase,
      loop: sourceConfig.loop,
    });
    const derived = new DerivedSource(replay, new Deriver(deriverConfig(config)), onRejected);
    let reportedEnd = false;
    const source: SensorSource = {
      advance(realElapsedMs) {
        const records = derived.advance(realElapsedMs);
        if (replay.done && !reportedEnd) {
          reportedEnd = true;
          logger.info('replay finished; no more samples', { path, ...replay.metrics() });
        }
        return records;
      },
      takeRejected: () => derived.takeRejected(),
      metrics: () => derived.metrics(),
    };
    return {
      source,
      reconfigure(next) {
        restartNeeded(next);
        derived.deriver.reconfigure(deriverConfig(next));
      },
      async close() {},
    };
  }
  const driver = new LineProtocolDriver({ clock: sourceConfig.clock, origin: path });
  const derived = new DerivedSource(driver, new Deriver(deriverConfig(config)), onRejected);
  const device = openLineDevice(path, driver, logger);
  return {
    source: derived,
    reconfigure(next) {
      restartNeeded(next);
      derived.deriver.reconfigure(deriverConfig(next));
    },
    async close() {
      device.close();
    },
  };
}

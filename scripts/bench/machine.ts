import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';

/** What every figure of a run is tied to: the issue asks each scenario to name its machine. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  node: string;
  os: string;
  /** 1-minute load average at the start: other work on the box shows up here, not in the figures. */
  loadAverage1m: number;
  hostname: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    freeMemoryGiB: round(freemem() / 2 ** 30, 1),
    node: process.version,
    os: `${osName()} (${process.platform} ${release()})`,
    loadAverage1m: round(loadavg()[0], 2),
    hostname: readHostname(),
  };
}

function osName(): string {
  try {
    const line = readFileSync('/etc/os-release', 'utf8').split('\n').find((l) => l.startsWith('PRETTY_NAME='));
    return line ? line.slice('PRETTY_NAME='.length).replace(/^"|"$/g, '') : 'unknown OS';
  } catch {
    return 'unknown OS';
  }
}

function readHostname(): string {
  try {
    return readFileSync('/etc/hostname', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

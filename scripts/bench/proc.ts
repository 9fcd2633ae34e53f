import { readdirSync, readFileSync } from 'node:fs';

/**
 * Resident memory and CPU time of a process, read from /proc (Linux only, like the devices this
 * ships to). CPU comes in clock ticks; USER_HZ is 100 on every Linux ABI Node supports.
 */
const TICKS_PER_SECOND = 100;

export interface ProcSample {
  rssMiB: number;
  cpuSeconds: number;
}

export function sampleProcess(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name can hold spaces and parentheses, so fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { rssMiB: rssKb / 1024, cpuSeconds: (utime + stime) / TICKS_PER_SECOND };
  } catch {
    return undefined; // gone between listing and reading
  }
}

/** Peak RSS seen over repeated samples of several processes, keyed by a name. */
export class RssTracker {
  readonly peakMiB: Record<string, number> = {};

  sample(pids: Record<string, number | undefined>): void {
    for (const [name, pid] of Object.entries(pids)) {
      if (pid === undefined) continue;
      const s = sampleProcess(pid);
      if (s) this.peakMiB[name] = Math.max(this.peakMiB[name] ?? 0, s.rssMiB);
    }
  }
}

export function cpuSecondsOf(pids: Array<number | undefined>): number {
  return pids.reduce<number>((sum, pid) => sum + (pid === undefined ? 0 : (sampleProcess(pid)?.cpuSeconds ?? 0)), 0);
}

/** Pids whose command line contains every one of `parts` (for processes another module spawned). */
export function findPids(...parts: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (parts.every((p) => cmdline.includes(p))) pids.push(Number(entry));
    } catch {
      // exited while listing
    }
  }
  return pids;
}

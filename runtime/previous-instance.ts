import { existsSync, linkSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';

/**
 * What a runtime that ended without stopping (SIGKILL, OOM kill) leaves on its root: the socket
 * file, and its components' process groups, still running and still writing to their stores. A
 * new runtime that started its own copies beside them would run two acquisitions on one store.
 * On a device the nucleus's systemd unit kills the whole cgroup; this runtime does it itself.
 */

export class RuntimeAlreadyRunningError extends Error {}

/**
 * Takes `<root>/runtime.lock` (created exclusively, holding this pid) for the runtime's lifetime:
 * of two runtimes started on one root in the same instant, one gets it and the other stops. A lock
 * whose process is gone (a SIGKILLed runtime) is taken over. Returns the release function.
 *
 * The pid is written to a file of this process's own and hard-linked into place: link() fails if
 * the lock exists, so a lock is never seen empty. (Created with O_EXCL and then written, another
 * runtime could read it empty in between, take it for stale and remove it: both ran.) Two runtimes
 * taking over the same stale lock in the same instant can still both succeed.
 */
export function acquireRootLock(root: string): () => void {
  const path = join(root, 'runtime.lock');
  const release = (): void => {
    if (readHolder(path) === process.pid) rmSync(path, { force: true });
  };
  const mine = `${path}.${process.pid}`;
  writeFileSync(mine, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (tryLink(mine, path)) return release;
      const holder = readHolder(path);
      // This process already holds it: an earlier runtime object here that did not stop (tests).
      if (holder === process.pid) return release;
      if (holder !== undefined && isLiveNodeProcess(holder)) {
        throw new RuntimeAlreadyRunningError(`another runtime (pid ${holder}) holds ${path}: stop it first; if no runtime is running, delete that file`);
      }
      rmSync(path, { force: true }); // its process is gone
    }
    throw new RuntimeAlreadyRunningError(`another runtime took ${path} while this one was starting`);
  } finally {
    rmSync(mine, { force: true });
  }
}

function tryLink(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isLiveNodeProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A pid reused by something else must not block the runtime forever.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return false;
  }
}

/** Refuses to start when another runtime answers on the root's IPC socket; a stale file is fine. */
export async function assertNoLiveRuntime(socketPath: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw new RuntimeAlreadyRunningError(`another runtime is serving this root (its IPC socket ${socketPath} answers): stop it before starting a second one`);
}

/**
 * SIGKILLs the process group of every component the previous runtime's status.json lists whose
 * process is still alive and still works in that component's work folder (its cwd), so a reused
 * pid of an unrelated process is never touched.
 */
export function reapOrphanedComponents(root: string, logger: Logger): void {
  let previous: { components?: Record<string, { pid?: unknown }> };
  try {
    previous = JSON.parse(readFileSync(join(root, 'status.json'), 'utf8'));
  } catch {
    return; // no previous run, or nothing readable of it: nothing to reap
  }
  for (const [component, state] of Object.entries(previous.components ?? {})) {
    const pid = state?.pid;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue; // gone
    }
    const work = join(root, 'work', component);
    if (cwd !== work && (!existsSync(work) || cwd !== realpathSync(work))) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        logger.error('could not stop a component process left by a previous runtime', { component, pid, error: errorMessage(error) });
        continue;
      }
    }
    logger.warn('a component process of a previous runtime that did not stop was still running; killed it before starting the component again', { component, pid });
  }
}

import { existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
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
 * pid of an unrelated process is never touched. Returns what it killed.
 */
export function reapOrphanedComponents(root: string, logger: Logger): Array<{ component: string; pid: number }> {
  let previous: { components?: Record<string, { pid?: unknown }> };
  try {
    previous = JSON.parse(readFileSync(join(root, 'status.json'), 'utf8'));
  } catch {
    return []; // no previous run, or nothing readable of it: nothing to reap
  }
  const reaped: Array<{ component: string; pid: number }> = [];
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
    reaped.push({ component, pid });
    logger.warn('a component process of a previous runtime that did not stop was still running; killed it before starting the component again', { component, pid });
  }
  return reaped;
}

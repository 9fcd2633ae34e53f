import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalFolderArchive } from '../../cloud/archive';
import { archiveConformance } from './archive-conformance';

archiveConformance('local folder archive', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'archive-conf-'));
  return { archive: new LocalFolderArchive(dir), dispose: () => rm(dir, { recursive: true, force: true }) };
});

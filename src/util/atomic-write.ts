import { rename, writeFile } from 'node:fs/promises';

/** Write a file whole or not at all (temp file + rename), with the given mode. */
export async function writeFileAtomic(file: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, file);
}

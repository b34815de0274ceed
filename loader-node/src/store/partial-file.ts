/**
 * All-or-nothing downloads: bytes go to a temp file beside the destination (same folder, so the
 * final rename is atomic on one file system) and the destination appears only once they are all
 * there. On any failure the temp file is removed, so a reader never sees a partial object.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError } from '@shardline/core';

/**
 * Temp files of downloads in progress end with this suffix (and start with '.'): a cache that
 * finds such files after a crash may delete them.
 */
export const PARTIAL_SUFFIX = '.partial';

// Keeps the temp name under the usual 255-byte limit of a file name.
const MAX_BASE_IN_TEMP_NAME = 200;

/** Checks a download destination: a non-empty path without NUL characters. */
export function requireDestination(destination: unknown): string {
  if (typeof destination !== 'string' || destination === '') {
    throw new ArgumentError('destination', `must be a non-empty path, got ${JSON.stringify(destination)}`);
  }
  if (destination.includes('\0')) throw new ArgumentError('destination', `must not contain NUL, got ${JSON.stringify(destination)}`);
  return destination;
}

/**
 * Runs `write` on a new temp file in `destination`'s folder, then renames it to `destination`
 * (replacing an existing file) and resolves to what `write` returned. If `write` or the rename
 * fails, the temp file is closed and removed and the error is rethrown.
 * File-system errors of the destination (ENOENT for a missing folder, ENOSPC…) are rethrown as
 * Node raised them, with their `code`.
 */
export async function writeAtomically<T>(destination: string, write: (file: FileHandle, tempPath: string) => Promise<T>): Promise<T> {
  const dir = path.dirname(destination);
  const base = path.basename(destination).slice(0, MAX_BASE_IN_TEMP_NAME);
  const temp = path.join(dir, `.${base}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`);
  // 'wx': never reuse or follow something already at the temp name.
  const file = await open(temp, 'wx');
  let closed = false;
  try {
    const result = await write(file, temp);
    closed = true;
    await file.close();
    await rename(temp, destination);
    return result;
  } catch (error) {
    if (!closed) await file.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}

import { InvalidArgumentError, NoSpaceError } from '../errors.ts';

/** Backend-level guard: refuse anything that would read or write outside [0, size). */
export function checkRange(size: number, offset: number, length: number, writing: boolean): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new InvalidArgumentError(`bad range offset=${offset} length=${length}`);
  }
  if (offset + length > size) {
    const msg = `range ${offset}+${length} is past the end of the disk (${size} bytes)`;
    throw writing ? new NoSpaceError(msg) : new InvalidArgumentError(msg);
  }
}

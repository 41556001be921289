import { UsageError } from '../errors.ts';
import type { Address } from '../util/address.ts';

/** Formats `--format` names. Never probed: a guest can write a qcow2 header into its raw disk (libvirt refuses to probe too). */
export const IMAGE_FORMATS = ['raw', 'qcow2'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** What `--image` names: a local file or block device in a given format, or an export on an NBD server. */
export type ImageSpec =
  | { kind: 'file'; path: string; format: ImageFormat }
  | { kind: 'nbd'; uri: string; address: Address; exportName: string };

/** NBD's registered port, the default of an nbd:// URI without one. */
const NBD_DEFAULT_PORT = 10809;

export function parseImageFormat(text: string | undefined, flag = '--format'): ImageFormat {
  const f = text ?? 'raw';
  if ((IMAGE_FORMATS as readonly string[]).includes(f)) return f as ImageFormat;
  throw new UsageError(`${flag}: "${f}" is not an image format; give ${IMAGE_FORMATS.join(' or ')}`);
}

/** `--image` and `--format` as one spec; an NBD URI carries no format of ours (the server opens the image). */
export function parseImageSpec(image: string, format: ImageFormat = 'raw', flag = '--image', formatGiven = false): ImageSpec {
  if (/^nbds?(\+[a-z]+)?:\/\//.test(image)) {
    if (formatGiven && format !== 'raw') throw new UsageError(`${flag}: ${image} is an NBD export; --format ${format} applies to files only (the NBD server opens the image in its format)`);
    return { kind: 'nbd', uri: image, ...parseNbdUri(image, flag) };
  }
  if (image === '') throw new UsageError(`${flag}: empty; give an image file, a block device or an NBD URI`);
  return { kind: 'file', path: image, format };
}

/**
 * `nbd://HOST[:PORT]/NAME` and `nbd+unix:///NAME?socket=PATH` (the NBD URI
 * specification's two plain forms). TLS forms (nbds://) are refused by name.
 */
export function parseNbdUri(uri: string, flag = '--image'): { address: Address; exportName: string } {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new UsageError(`${flag}: "${uri}" is not a valid NBD URI; give nbd://HOST:PORT/NAME or nbd+unix:///NAME?socket=PATH`);
  }
  const exportName = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (u.protocol === 'nbd:' || u.protocol === 'nbd+tcp:') {
    if (!u.hostname) throw new UsageError(`${flag}: ${uri} names no host; give nbd://HOST:PORT/NAME`);
    const port = u.port ? Number(u.port) : NBD_DEFAULT_PORT;
    return { address: { kind: 'tcp', host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port }, exportName };
  }
  if (u.protocol === 'nbd+unix:') {
    const socket = u.searchParams.get('socket');
    if (!socket) throw new UsageError(`${flag}: ${uri} has no socket; give nbd+unix:///NAME?socket=PATH`);
    if (u.hostname) throw new UsageError(`${flag}: ${uri} names a host; a unix socket URI is nbd+unix:///NAME?socket=PATH`);
    return { address: { kind: 'unix', path: socket }, exportName };
  }
  throw new UsageError(`${flag}: ${uri}: ${u.protocol.slice(0, -1)} URIs are not supported; give nbd://HOST:PORT/NAME or nbd+unix:///NAME?socket=PATH`);
}

/** A short name for logs and errors. */
export function describeImage(spec: ImageSpec): string {
  return spec.kind === 'nbd' ? spec.uri : spec.format === 'raw' ? spec.path : `${spec.path} (${spec.format})`;
}

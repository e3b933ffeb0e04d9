import { errorFamily, type ErrorKind } from '../../errors.js';

/** Stable error codes of the libvirt adapter. */
export const LibvirtErrorCode = {
  /** libvirt does not answer at the host's URI (daemon down, wrong URI, no permission). */
  LIBVIRT_DOWN: 'HOST.LIBVIRT_DOWN',
  /** The domain does not exist (any more): undefined between listing and reading, or a wrong id. */
  VM_NOT_FOUND: 'VM.NOT_FOUND',
  /** virsh failed for another reason; stderr is in the message and details. */
  COMMAND_FAILED: 'LIBVIRT.COMMAND_FAILED',
  /** virsh answered something we cannot parse. */
  BAD_OUTPUT: 'LIBVIRT.BAD_OUTPUT',
  /** Domain XML that is not well-formed or lacks required elements. */
  BAD_XML: 'LIBVIRT.BAD_XML',
} as const;
export type LibvirtErrorCode = (typeof LibvirtErrorCode)[keyof typeof LibvirtErrorCode];

const KIND: Record<LibvirtErrorCode, ErrorKind> = {
  'HOST.LIBVIRT_DOWN': 'unavailable',
  'VM.NOT_FOUND': 'not_found',
  'LIBVIRT.COMMAND_FAILED': 'unavailable',
  'LIBVIRT.BAD_OUTPUT': 'internal',
  'LIBVIRT.BAD_XML': 'internal',
};

export const libvirtError = errorFamily(KIND);

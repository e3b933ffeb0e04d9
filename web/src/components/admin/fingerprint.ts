/** The fingerprint a host presented, from a HOST.KEY_CHANGED problem or the host's last connection message. */
export function presentedFingerprintOf(source: { presentedFingerprint?: unknown; message?: string | null } | null | undefined): string | null {
  if (!source) return null;
  if (typeof source.presentedFingerprint === 'string' && source.presentedFingerprint !== '') return source.presentedFingerprint;
  const m = /presented (SHA256:[A-Za-z0-9+/=]+)/.exec(source.message ?? '');
  return m ? m[1]! : null;
}

/** Command an administrator runs on the host's console to see its key fingerprints. */
export const HOST_KEY_CHECK_COMMAND = 'for f in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$f"; done';

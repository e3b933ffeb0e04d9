/** How backups read a host's VM disks (the host's `diskAccess`; see docs/incremental.md, "Reading over SSH"). */
import type { DiskAccess } from '../../api/types';

export const DISK_ACCESS: ReadonlyArray<{ value: DiskAccess; name: string; help: string }> = [
  { value: 'auto', name: 'Auto', help: 'mounted storage when readable here, otherwise through the host over SSH' },
  { value: 'mount', name: 'Mounted storage', help: "the VM storage is mounted on the worker at the host's paths" },
  { value: 'ssh', name: 'Through the host (SSH)', help: 'no mount needed; qcow2 disks without backing file' },
];

/** The select's options: "Auto — mounted storage when readable here, …". */
export const diskAccessOptions = DISK_ACCESS.map((d) => ({ value: d.value, label: `${d.name} — ${d.help}` }));

export const diskAccessOf = (v: DiskAccess | undefined) => DISK_ACCESS.find((d) => d.value === v) ?? DISK_ACCESS[0]!;

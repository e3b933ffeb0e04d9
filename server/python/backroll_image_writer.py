"""
Backroll's image writer: one borg 1.2 archive holding a COMPLETE qcow2 image of a disk, built
from the previous archive's chunk list plus the blocks read now (option (c) of
docs/incremental.md; Proxmox Backup Server's model inside borg).

The archived file is a qcow2 v3 image with preallocated metadata (`qemu-img create -o
preallocation=metadata`): its layout is fixed by the virtual size, guest offset G lives at a
fixed file offset, and the metadata clusters are copied from a template made here. So the
same guest block is always at the same file offset, and chunks cut on a fixed grid of file
offsets stay valid from one backup to the next: a later archive re-references the previous
archive's chunks where the guest did not write (refcount + 1, like borg create of an
unchanged chunk) and stores new chunks only for dirty ones. Every archive is a plain, whole
file: borg extract, borg prune and borg check see nothing special.

Input: one JSON object on stdin (no secrets: the passphrase comes in BORG_PASSPHRASE, like
for borg itself). Output: JSON lines on stdout ({"type": "progress"|"result"|"error"}).
Exit codes: 0 done, 2 error, 3 borg version not verified (nothing written).

Guest data is read over NBD (the unix socket of libvirt's pull-mode backup job) with a
minimal fixed-newstyle NBD client (NBD_OPT_GO, simple replies). The extents (dirty bitmap,
allocation) come from `qemu-img map` on the same export.
"""
import base64
import json
import os
import queue
import re
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

VERIFIED_BORG = ('1.2.4',)
READ_BLOCK = 4 << 20
READ_AHEAD = 4
NBD_OPT_GO = 7
NBD_REP_ACK = 1
NBD_REP_INFO = 3
NBD_CMD_READ = 0
NBD_CMD_DISC = 2


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


class Failure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Nbd:
    def __init__(self, path, export):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.s.connect(path)
        except OSError as e:
            raise Failure('BACKUP.NBD_FAILED', f'cannot connect to the NBD socket {path}: {e}')
        hdr = self._recv(18)
        if hdr[:16] != b'NBDMAGICIHAVEOPT':
            raise Failure('BACKUP.NBD_FAILED', 'not a fixed-newstyle NBD server')
        flags = struct.unpack('>H', hdr[16:18])[0]
        if not flags & 1:
            raise Failure('BACKUP.NBD_FAILED', 'the NBD server lacks fixed newstyle negotiation')
        no_zeroes = flags & 2
        self.s.sendall(struct.pack('>I', 1 | no_zeroes))
        name = export.encode()
        data = struct.pack('>I', len(name)) + name + struct.pack('>H', 0)
        self.s.sendall(b'IHAVEOPT' + struct.pack('>II', NBD_OPT_GO, len(data)) + data)
        self.size = None
        while True:
            magic, _opt, rtype, length = struct.unpack('>QIII', self._recv(20))
            if magic != 0x3E889045565A9:
                raise Failure('BACKUP.NBD_FAILED', 'bad NBD option reply')
            payload = bytes(self._recv(length)) if length else b''
            if rtype == NBD_REP_ACK:
                break
            if rtype == NBD_REP_INFO and len(payload) >= 12 and struct.unpack('>H', payload[:2])[0] == 0:
                self.size = struct.unpack('>Q', payload[2:10])[0]
            elif rtype & 0x80000000:
                raise Failure('BACKUP.NBD_FAILED', f'the NBD server refused export {export!r}: {payload.decode("utf-8", "replace")[:200]}')
        if self.size is None:
            raise Failure('BACKUP.NBD_FAILED', 'the NBD server sent no export size')
        self.handle = 0

    def _recv_into(self, view):
        got = 0
        n = len(view)
        while got < n:
            k = self.s.recv_into(view[got:], n - got)
            if k == 0:
                raise Failure('BACKUP.NBD_FAILED', 'the NBD connection closed')
            got += k

    def _recv(self, n):
        buf = bytearray(n)
        self._recv_into(memoryview(buf))
        return buf

    def read_into(self, off, view):
        """Reads len(view) bytes at `off` straight into `view` (a writable memoryview): no copy."""
        self.handle += 1
        self.s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, NBD_CMD_READ, self.handle, off, len(view)))
        magic, err, handle = struct.unpack('>IIQ', self._recv(16))
        if magic != 0x67446698 or handle != self.handle:
            raise Failure('BACKUP.NBD_FAILED', 'bad NBD reply')
        if err:
            raise Failure('BACKUP.NBD_FAILED', f'NBD read error {err} at offset {off}')
        self._recv_into(view)

    def close(self):
        try:
            self.s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, NBD_CMD_DISC, 0, 0, 0))
        except OSError:
            pass
        self.s.close()


def image_opts(sock, export, bitmap=None):
    esc = lambda s: s.replace(',', ',,')
    o = f'driver=nbd,export={esc(export)},server.type=unix,server.path={esc(sock)}'
    if bitmap:
        o += f',x-dirty-bitmap={esc(bitmap)}'
    return o


def qemu_img_map(args):
    return qemu_img_maps([args])[0]


def qemu_img_maps(arg_lists):
    """Several `qemu-img map` at once (each its own NBD client; the job's server and qemu-nbd --shared allow several)."""
    procs = [subprocess.Popen(['qemu-img', 'map', '--output=json', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in arg_lists]
    out = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise Failure('BACKUP.NBD_FAILED', f'qemu-img map failed: {stderr.strip()[:500]}')
        out.append(json.loads(stdout))
    return out


def layout(virtual_size, tmpdir):
    """The preallocated qcow2 layout: [(file_start, length, guest_start or None)], file size, template path."""
    tpl = os.path.join(tmpdir, 'layout.qcow2')
    r = subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata,cluster_size=65536,compat=1.1', tpl, str(virtual_size)], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure('BACKUP.IMAGE_LAYOUT', f'qemu-img create failed: {r.stderr.strip()[:500]}')
    fsize = os.path.getsize(tpl)
    guest = []
    for e in qemu_img_map(['-f', 'qcow2', tpl]):
        if not e.get('data') or 'offset' not in e:
            raise Failure('BACKUP.IMAGE_LAYOUT', f'unexpected extent in the preallocated layout: {e}')
        guest.append((e['offset'], e['length'], e['start']))
    guest.sort()
    segs = []
    pos = 0
    for fo, ln, g in guest:
        if fo > pos:
            segs.append((pos, fo - pos, None))
        segs.append((fo, ln, g))
        pos = fo + ln
    if pos < fsize:
        segs.append((pos, fsize - pos, None))
    if sum(ln for _, _, g in segs if g is not None) != virtual_size:
        raise Failure('BACKUP.IMAGE_LAYOUT', 'the preallocated layout does not cover the disk')
    return segs, fsize, tpl


def merge(ranges):
    out = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def overlaps(ranges, s, e):
    """ranges: merged, sorted [s, e) lists."""
    import bisect
    i = bisect.bisect_right(ranges, [s, float('inf')]) - 1
    if i >= 0 and ranges[i][1] > s:
        return True
    return i + 1 < len(ranges) and ranges[i + 1][0] < e


CONFIG_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,99}')
CONFIG_ARCHIVE = re.compile(r'config_[0-9]{1,12}')
CONFIG_CHUNK = 1 << 20


def write_config(repository, key, manifest, cache, spec):
    """One archive of small files at the archive root (domain.xml, backroll.json, checkpoint.xml), as
    `borg create` of them from their directory would store them (mode 0600, the backup's time)."""
    from borg.archive import Archive
    from borg.item import Item
    name = spec['archive']
    if not CONFIG_ARCHIVE.fullmatch(name):
        raise Failure('BACKUP.CONFIG_INVALID', f'not a config archive name: {name!r}')
    ts = datetime.strptime(spec['timestamp'], '%Y-%m-%dT%H:%M:%S')
    mtime = int((ts - datetime(1970, 1, 1)).total_seconds()) * 1_000_000_000
    archive = Archive(repository, key, manifest, name, cache=cache, create=True, chunker_params=('fixed', CONFIG_CHUNK, 0))
    stats = archive.stats
    for f in spec['files']:
        if not CONFIG_NAME.fullmatch(f['name']):
            raise Failure('BACKUP.CONFIG_INVALID', f'not a config file name: {f["name"]!r}')
        data = base64.b64decode(f['data'], validate=True)
        chunks = []
        for off in range(0, len(data), CONFIG_CHUNK):
            piece = data[off:off + CONFIG_CHUNK]
            chunks.append(cache.add_chunk(key.id_hash(piece), piece, stats, wait=False))
            repository.async_response(wait=False)
        item = Item(path=f['name'], mode=stat.S_IFREG | 0o600, uid=0, gid=0, user='root', group='root', mtime=mtime, atime=mtime, ctime=mtime)
        item.chunks = chunks
        item.get_size(memorize=True)
        stats.nfiles += 1
        archive.add_item(item, show_progress=False)
    archive.save(timestamp=ts, additional_metadata={'comment': ''})
    emit({'type': 'config', 'archive': name, 'originalSize': stats.osize, 'compressedSize': stats.csize, 'deduplicatedSize': stats.usize})


def main():
    started = time.monotonic()
    cfg = json.loads(sys.stdin.readline())
    import borg
    version = getattr(borg, '__version__', '?')
    if version not in VERIFIED_BORG:
        emit({'type': 'unsupported', 'reason': f'borg {version} is not a version the incremental path was verified with ({", ".join(VERIFIED_BORG)})'})
        return 3
    from borg.logger import setup_logging
    setup_logging(stream=sys.stderr, level='warning', json=True)
    from borg.archive import Archive
    from borg.cache import Cache, assert_secure
    from borg.helpers import Manifest
    from borg.compress import CompressionSpec
    from borg.item import Item
    from borg.repository import Repository

    G = int(cfg['chunkSize'])
    sock, export = cfg['socket'], cfg['export']
    item_path = cfg['itemPath']
    ts = datetime.strptime(cfg['timestamp'], '%Y-%m-%dT%H:%M:%S')
    lock_wait = int(cfg.get('lockWait', 10))
    phases = {'imports': round(time.monotonic() - started, 3)}
    mark = lambda name: phases.__setitem__(name, round(time.monotonic() - started, 3))

    # The extents first: an NBD server may allow one client at a time (qemu-nbd's default).
    zeros = []
    dirty_guest = None
    wanted = []
    if cfg.get('bitmap'):
        wanted.append(('dirty', ['--image-opts', image_opts(sock, export, cfg['bitmap'])]))
    if cfg.get('skipZeros', True):
        wanted.append(('zeros', ['--image-opts', image_opts(sock, export)]))
    maps = dict(zip([w[0] for w in wanted], qemu_img_maps([w[1] for w in wanted]))) if wanted else {}
    if 'dirty' in maps:
        dirty_guest = merge([(e['start'], e['start'] + e['length']) for e in maps['dirty'] if not e.get('data')])
    if 'zeros' in maps:
        zeros = merge([(e['start'], e['start'] + e['length']) for e in maps['zeros'] if e.get('zero')])
    nbd = Nbd(sock, export)
    mark('extents')
    vsize = nbd.size
    if cfg.get('virtualSize') is not None and int(cfg['virtualSize']) != vsize:
        raise Failure('BACKUP.NBD_FAILED', f'the NBD export has {vsize} bytes, the disk {cfg["virtualSize"]}')
    tmpdir = tempfile.mkdtemp(prefix='backroll-image-')
    try:
        segs, fsize, tpl = layout(vsize, tmpdir)
        mark('layout')
        tfd = os.open(tpl, os.O_RDONLY)
        g2f = [(g, fo, ln) for fo, ln, g in segs if g is not None]
        g2f.sort()

        def guest_to_file(gs, ge):
            out = []
            for g, fo, ln in g2f:
                s, e = max(gs, g), min(ge, g + ln)
                if s < e:
                    out.append((fo + s - g, fo + e - g))
            return out

        read = {'bytes': 0}

        def guest_bytes(gs, ge):
            """Guest data [gs, ge): zero extents are not read."""
            buf = bytearray(ge - gs)
            view = memoryview(buf)
            pos = gs
            import bisect
            i = max(0, bisect.bisect_right(zeros, [gs, float('inf')]) - 1)
            while pos < ge:
                z = zeros[i] if i < len(zeros) else None
                if z and z[0] <= pos < z[1]:
                    pos = min(ge, z[1])
                    i += 1
                    continue
                if z and z[1] <= pos:
                    i += 1
                    continue
                end = min(ge, z[0]) if z and z[0] < ge else ge
                off = pos
                while off < end:
                    n = min(end - off, 4 << 20)
                    nbd.read_into(off, view[off - gs:off - gs + n])
                    read['bytes'] += n
                    off += n
                pos = end
            return buf

        def file_bytes(fs_, fe):
            parts = []
            for fo, ln, g in segs:
                s, e = max(fs_, fo), min(fe, fo + ln)
                if s >= e:
                    continue
                if g is None:
                    parts.append(os.pread(tfd, e - s, s))
                else:
                    parts.append(guest_bytes(g + s - fo, g + e - fo))
            # One part (the usual case inside the data area): no join, no copy.
            return parts[0] if len(parts) == 1 else b''.join(parts)

        def to_read(ranges):
            """Guest bytes inside file ranges that are not zero extents."""
            total = 0
            for fs_, fe in ranges:
                for fo, ln, g in segs:
                    s, e = max(fs_, fo), min(fe, fo + ln)
                    if s < e and g is not None:
                        gs, ge = g + s - fo, g + e - fo
                        total += ge - gs - sum(max(0, min(ge, z1) - max(gs, z0)) for z0, z1 in zeros)
            return total

        with Repository(cfg['repo'], exclusive=True, lock_wait=lock_wait) as repository:
            manifest, key = Manifest.load(repository, (Manifest.Operation.WRITE,))
            key.compressor = CompressionSpec(cfg['compression']).compressor
            assert_secure(repository, manifest, lock_wait)
            with Cache(repository, key, manifest, lock_wait=lock_wait) as cache:
                mark('repository')
                base_chunks = None
                reason = cfg.get('fullReason')
                base = cfg.get('baseArchive')
                if dirty_guest is not None:
                    if not base or base not in manifest.archives:
                        reason = f'the base archive {base} is not in the repository'
                    else:
                        b = Archive(repository, key, manifest, base, cache=cache)
                        found = [it for it in b.iter_items(filter=lambda it: it.path == item_path)]
                        if len(found) != 1 or 'chunks' not in found[0]:
                            reason = f'the base archive {base} has no file {item_path}'
                        elif sum(c.size for c in found[0].chunks) != fsize:
                            reason = f'the base archive {base} holds an image of another size (disk resized or older layout)'
                        else:
                            base_chunks = found[0].chunks
                            missing = [c for c in base_chunks if not cache.seen_chunk(c.id)]
                            if missing:
                                reason = f'{len(missing)} chunks of the base archive {base} are not in the repository'
                                base_chunks = None
                # Plan: which file ranges to produce (read) and which base chunks to re-reference.
                plan = []  # (start, end, base_entry or None)
                if base_chunks is not None:
                    dirty_file = merge([r for gs, ge in dirty_guest for r in guest_to_file(gs, ge)] + [(fo, fo + ln) for fo, ln, g in segs if g is None])
                    pos = 0
                    for c in base_chunks:
                        s, e = pos, pos + c.size
                        dirty = overlaps(dirty_file, s, e)
                        if dirty and plan and plan[-1][2] is None and plan[-1][1] == s:
                            plan[-1] = (plan[-1][0], e, None)
                        else:
                            plan.append((s, e, None if dirty else c))
                        pos = e
                    mode = 'incremental'
                else:
                    plan.append((0, fsize, None))
                    mode = 'full'
                bytes_to_read = to_read([(s, e) for s, e, c in plan if c is None])
                mark('plan')
                emit({'type': 'progress', 'mode': mode, 'reason': reason, 'bytesToRead': bytes_to_read, 'bytesRead': 0, 'diskSize': vsize})

                archive = Archive(repository, key, manifest, cfg['archive'], cache=cache, create=True, chunker_params=('fixed', G, 0))
                stats = archive.stats
                chunks = []
                last = 0.0
                # The blocks to read, in plan order: up to 4 MiB each, cut on the chunk grid.
                blocks = []
                for s, e, c in plan:
                    pos = s
                    while c is None and pos < e:
                        blk_end = min(e, max((pos // G + 1) * G, ((pos + READ_BLOCK) // G) * G))
                        blocks.append((pos, blk_end))
                        pos = blk_end
                # A reader thread keeps READ_AHEAD blocks in flight: the NBD server (and the SSH
                # forward) deliver the next blocks while this thread hashes, compresses and writes.
                # Socket reads release the GIL, so the two overlap on separate cores.
                ahead = queue.Queue(maxsize=READ_AHEAD)
                stop = threading.Event()

                def reader():
                    try:
                        for bs, be in blocks:
                            if stop.is_set():
                                return
                            ahead.put((bs, be, file_bytes(bs, be)))
                    except BaseException as err:  # handed to the main thread, raised there
                        ahead.put((None, None, err))

                producer = threading.Thread(target=reader, name='nbd-reader', daemon=True)
                producer.start()
                try:
                    for s, e, c in plan:
                        if c is not None:
                            chunks.append(cache.chunk_incref(c.id, stats))
                            continue
                        pos = s
                        while pos < e:
                            bs, blk_end, block = ahead.get()
                            if bs is None:
                                raise block
                            if bs != pos:
                                raise Failure('BACKUP.NBD_FAILED', f'internal: block at {bs} read, {pos} expected')
                            bpos = pos
                            mv = memoryview(block)
                            while bpos < blk_end:
                                nxt = min(blk_end, (bpos // G + 1) * G)
                                data = bytes(mv[bpos - pos:nxt - pos])
                                cid = key.id_hash(data)
                                chunks.append(cache.add_chunk(cid, data, stats, wait=False))
                                repository.async_response(wait=False)
                                bpos = nxt
                            pos = blk_end
                            now = time.monotonic()
                            if now - last > 0.5:
                                last = now
                                emit({'type': 'progress', 'mode': mode, 'bytesToRead': bytes_to_read, 'bytesRead': read['bytes'], 'diskSize': vsize})
                except BaseException:
                    # A reader blocked in recv (a stalled server) must not keep this process alive: end the connection.
                    stop.set()
                    try:
                        nbd.s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    raise
                finally:
                    stop.set()
                    # Unblock a reader waiting on a full queue, then wait for it (it owns the NBD socket until then).
                    while producer.is_alive():
                        try:
                            ahead.get(timeout=0.1)
                        except queue.Empty:
                            pass
                    producer.join()
                mtime = int((ts - datetime(1970, 1, 1)).total_seconds()) * 1_000_000_000
                item = Item(path=item_path, mode=stat.S_IFREG | 0o600, uid=0, gid=0, user='root', group='root', mtime=mtime, atime=mtime, ctime=mtime)
                item.chunks = chunks
                item.get_size(memorize=True)
                stats.nfiles += 1
                archive.add_item(item, show_progress=False)
                mark('data')
                archive.save(timestamp=ts, additional_metadata={'comment': ''})
                mark('saved')
                emit({
                    'type': 'result',
                    'mode': mode,
                    'reason': reason,
                    'bytesToRead': bytes_to_read,
                    'bytesRead': read['bytes'],
                    'diskSize': vsize,
                    'imageSize': fsize,
                    'originalSize': stats.osize,
                    'compressedSize': stats.csize,
                    'deduplicatedSize': stats.usize,
                    'chunks': len(chunks),
                    'reusedChunks': sum(1 for _, _, c in plan if c is not None),
                    'durationSeconds': time.monotonic() - started,
                    'phases': phases,
                })
                if cfg.get('thenConfig'):
                    # The restore point's config archive, in this process and transaction context
                    # (no second borg start): its files arrive on the next stdin line, once the
                    # caller has this disk's result; an empty object or EOF means none.
                    line = sys.stdin.readline()
                    spec = json.loads(line) if line.strip() else {}
                    if spec.get('archive'):
                        write_config(repository, key, manifest, cache, spec)
        os.close(tfd)
    finally:
        nbd.close()
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Failure as f:
        emit({'type': 'error', 'code': f.code, 'message': str(f)})
        sys.exit(2)
    except Exception as e:  # borg's own errors (lock timeout, passphrase, …)
        emit({'type': 'error', 'code': 'BORG.FAILED', 'message': f'{type(e).__name__}: {e}'})
        sys.exit(2)

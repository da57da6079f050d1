# A pass-through FUSE file system over a folder whose reads of shard files can be made to hang,
# as on a disk that stops answering reads while its node stays up. Test tooling for
# test/harness/hangfs.ts, run with Debian's python3 and python3-fusepy.
#
#   hangfs.py <backing folder> <mount point> <flag file>
#
# While <flag file> exists, every read of a file under data/ (the drive's shard files) blocks
# until the flag is removed; everything else (metadata, writes) goes straight through.
import errno
import os
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class HangFS(Operations):
    def __init__(self, root, flag):
        self.root = root
        self.flag = flag

    def _p(self, path):
        return os.path.join(self.root, path.lstrip('/'))

    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        keys = ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink', 'st_size', 'st_uid')
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._p(path))

    def statfs(self, path):
        s = os.statvfs(self._p(path))
        keys = ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')
        return {k: getattr(s, k) for k in keys}

    def mkdir(self, path, mode):
        os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        os.rmdir(self._p(path))

    def unlink(self, path):
        os.unlink(self._p(path))

    def rename(self, old, new):
        os.rename(self._p(old), self._p(new))

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._p(path), uid, gid)

    def truncate(self, path, length, fh=None):
        os.truncate(self._p(path), length)

    def utimens(self, path, times=None):
        os.utime(self._p(path), times)

    def open(self, path, flags):
        # The backing file system gets no O_DIRECT: FUSE's writes are not aligned for it.
        return os.open(self._p(path), flags & ~os.O_DIRECT)

    def create(self, path, mode, fi=None):
        return os.open(self._p(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        if path.startswith('/data/') or '/data/' in path:
            while os.path.exists(self.flag):
                time.sleep(0.05)
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


if __name__ == '__main__':
    backing, mountpoint, flag = sys.argv[1:4]
    FUSE(HangFS(backing, flag), mountpoint, foreground=True, nothreads=False)

"""
File systems that fail on purpose, made by the test and removed in its cleanup (root
only; a test is skipped, saying why, where they cannot be made):

  - L{tmpfs}: a small tmpfs; filling it makes C{write(2)} fail with ENOSPC.
  - L{LoopDisk}: an ext4 file system on a loop device whose backing file lives on a
    tmpfs.  L{LoopDisk.failBeyond} shrinks the device under the mounted file system
    (the loop driver's C{lo_sizelimit}, set live with C{LOOP_SET_STATUS64}), so writeback
    of blocks past that point fails and C{fsync} returns EIO, for real; C{failBeyond(0)}
    gives the space back.  (No device-mapper here: C{dmsetup}'s C{error} target needs
    the kernel's dm driver.)  L{LoopDisk.snapshot} copies the backing file: what a power
    cut at that instant would leave on the disk, without what only the page cache holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

__all__ = ["LoopDisk", "fill", "tmpfs"]

LOOP_SET_STATUS64 = 0x4C04
LOOP_GET_STATUS64 = 0x4C05
#: struct loop_info64 (linux/loop.h): device, inode, rdevice, offset, sizelimit, number,
#: encrypt type, encrypt key size, flags, file name, crypt name, encrypt key, init[2].
LOOP_INFO64 = "=QQQQQIIII64s64s32sQQ"


def _run(test: SynchronousTestCase, *argv: str) -> None:
    found = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if found.returncode != 0:
        test.skipTest(f"cannot {' '.join(argv[:2])} here: {found.stderr.strip()}")


def _umount(path: str) -> None:
    for _ in range(20):
        if subprocess.run(["umount", path], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", path], capture_output=True)


def tmpfs(test: SynchronousTestCase, size: str) -> str:
    """A fresh tmpfs of C{size} (mount's syntax: C{256k}, C{64m}), unmounted in cleanup."""
    if os.geteuid() != 0:
        test.skipTest("mounting a file system needs root")
    path = tempfile.mkdtemp(prefix="netd-adv-fs-")
    test.addCleanup(shutil.rmtree, path, ignore_errors=True)
    _run(test, "mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path)
    test.addCleanup(_umount, path)
    return path


def fill(directory: str, name: str = "filler") -> int:
    """Write a file in C{directory} until the file system is full; its size in bytes."""
    written = 0
    block = b"\0" * 4096
    with open(os.path.join(directory, name), "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                written += f.write(block)
    return written


class LoopDisk:
    """
    A C{size_mb} ext4 file system (with its journal unless C{journal} is false) on a
    loop device over a sparse file on a fresh tmpfs; C{path} is where it is mounted.
    Everything is undone in the test's cleanup.
    """

    def __init__(self, test: SynchronousTestCase, sizeMiB: int = 32, journal: bool = True) -> None:
        for tool in ("losetup", "mkfs.ext4"):
            if shutil.which(tool) is None:
                test.skipTest(f"{tool} is not installed")
        self.test = test
        self.backing = tmpfs(test, f"{sizeMiB * 3}m")
        self.image = os.path.join(self.backing, "disk.img")
        with open(self.image, "wb") as f:
            f.truncate(sizeMiB * 1024 * 1024)
        features = [] if journal else ["-O", "^has_journal"]
        _run(
            test,
            "mkfs.ext4",
            "-q",
            "-F",
            "-b",
            "4096",
            "-N",
            "64",
            "-m",
            "0",
            *features,
            self.image,
        )
        self.device = self._attach(self.image)
        self.path = tempfile.mkdtemp(prefix="netd-adv-disk-")
        test.addCleanup(shutil.rmtree, self.path, ignore_errors=True)
        _run(test, "mount", "-o", "errors=continue", self.device, self.path)
        test.addCleanup(_umount, self.path)

    def _attach(self, image: str) -> str:
        found = subprocess.run(
            ["losetup", "--find", "--show", image], capture_output=True, text=True, timeout=60
        )
        if found.returncode != 0:
            self.test.skipTest(f"no loop device here: {found.stderr.strip()}")
        device = found.stdout.strip()
        self.test.addCleanup(subprocess.run, ["losetup", "-d", device], capture_output=True)
        return device

    def occupy(self, sizeMiB: int) -> None:
        """Fill the low blocks with a file (written through), so what comes next lies beyond."""
        with open(os.path.join(self.path, "occupied"), "wb") as f:
            for _ in range(sizeMiB):
                f.write(b"\0" * (1024 * 1024))
            f.flush()
            os.fsync(f.fileno())

    def endOf(self, name: str) -> int:
        """
        Where the data of file C{name} ends on the device (bytes, its last extent's
        end, from C{filefrag}): blocks allocated from now on lie beyond it.
        """
        found = subprocess.run(
            ["filefrag", "-v", "-b4096", os.path.join(self.path, name)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        ends = [
            int(match.group(1))
            for match in re.finditer(r"\d+\.\.\s*\d+:\s+\d+\.\.\s*(\d+):", found.stdout)
        ]
        return (max(ends) + 1) * 4096

    def failBeyond(self, limit: int) -> None:
        """Make the device end at C{limit} bytes (0: its whole backing file) while mounted."""
        fd = os.open(self.device, os.O_RDWR)
        try:
            info = bytearray(struct.calcsize(LOOP_INFO64))
            fcntl.ioctl(fd, LOOP_GET_STATUS64, info)
            fields = list(struct.unpack(LOOP_INFO64, info))
            fields[4] = limit
            fcntl.ioctl(fd, LOOP_SET_STATUS64, struct.pack(LOOP_INFO64, *fields))
        finally:
            os.close(fd)

    def remount(self) -> None:
        """Unmount and mount again: the page cache is gone, files read from the device."""
        _umount(self.path)
        _run(self.test, "mount", "-o", "errors=continue", self.device, self.path)

    def snapshot(self) -> str:
        """
        Copy the device's backing file now and mount the copy (its journal replayed, as
        after a power cut); return where it is mounted.
        """
        copy = os.path.join(self.backing, f"snapshot-{time.monotonic_ns()}.img")
        subprocess.run(["cp", "--sparse=always", self.image, copy], check=True, timeout=60)
        device = self._attach(copy)
        path = tempfile.mkdtemp(prefix="netd-adv-snap-")
        self.test.addCleanup(shutil.rmtree, path, ignore_errors=True)
        _run(self.test, "mount", device, path)
        self.test.addCleanup(_umount, path)
        return path

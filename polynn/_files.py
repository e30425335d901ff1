"""Safe access to model files: open for reading without blocking, write atomically, name the file in every error."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from ._signals import deferred_interrupts
from .errors import FileAccessError, InvalidArgumentError, ModelFileError

__all__ = ["filepath", "describe", "reading", "atomic_write", "TEMP_SUFFIX", "STALE_AFTER_S"]

TEMP_SUFFIX = ".polynn-tmp"
# A temporary file whose writer's pid is gone is removed at once; one unmodified for this long is
# removed whatever its pid says (a writer on another host, or a pid reused since the kill).
STALE_AFTER_S = 3600.0
_NAME_LIMIT = 200  # characters of a path's repr in an error message
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
# Written by polynn before it named its temporary files: mkstemp's 8 random characters.
_LEGACY_TEMP = r"\.{base}\.[a-z0-9_]{{8}}\.tmp"


def filepath(path: object) -> str:
    """`path` as a str: str, bytes (decoded as open() does, with os.fsdecode) or os.PathLike of either."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        # An int would be taken by open() as a file descriptor (0 is stdin): refused.
        raise InvalidArgumentError("filepath", path, "a str, bytes or os.PathLike file path")
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise InvalidArgumentError("filepath", path, "an os.PathLike whose __fspath__ returns str or bytes") from None


def describe(name: str) -> str:
    """The repr of a path for an error message, shortened in the middle when long."""
    text = repr(name)
    if len(text) <= _NAME_LIMIT:
        return text
    return f"{text[:120]}...{text[-60:]} ({len(name)} characters)"


def os_reason(error: OSError | ValueError) -> str:
    """What went wrong, as the OS says it, with the errno name: "Permission denied (EACCES)"."""
    if isinstance(error, OSError) and error.errno is not None:
        code = errno.errorcode.get(error.errno)
        text = error.strerror or os.strerror(error.errno)
        return f"{text} ({code})" if code else text
    return str(error) or type(error).__name__


def _kind(mode: int) -> str | None:
    """What a non-regular file is ('a named pipe (FIFO)'), None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def _checked_name(path: object, verb: str) -> tuple[str, str]:
    name = filepath(path)
    what = describe(name)
    if "\0" in name:
        raise ModelFileError(f"cannot {verb} model file {what}: the path contains a NUL character; "
                             f"accepted: a path without NUL characters")
    return name, what


def _refuse_special(mode: int, what: str, verb: str) -> None:
    kind = _kind(mode)
    if kind is not None:
        raise ModelFileError(f"cannot {verb} model file {what}: it is {kind}; accepted: a regular file")


@contextlib.contextmanager
def reading(path: object) -> Iterator[tuple[BinaryIO, int]]:
    """(stream, size) of the regular file at `path`, open for reading; every OS error a ModelFileError.

    The type is checked before opening, so a FIFO or a device is never opened (opening a FIFO blocks
    until a writer comes), and again on the open descriptor: a file swapped in between is refused too.
    """
    name, what = _checked_name(path, "open")
    try:
        mode = os.stat(name).st_mode
    except (OSError, ValueError) as error:
        raise FileAccessError(f"cannot open model file {what}: {os_reason(error)}", error) from error
    _refuse_special(mode, what, "open")
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise FileAccessError(f"cannot open model file {what}: {os_reason(error)}", error) from error
    try:
        info = os.fstat(fd)
        _refuse_special(info.st_mode, what, "open")
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        stream = os.fdopen(fd, "rb")
    except BaseException as error:
        os.close(fd)
        if isinstance(error, OSError):
            raise FileAccessError(f"cannot open model file {what}: {os_reason(error)}", error) from error
        raise
    with stream:
        try:
            yield stream, info.st_size
        except OSError as error:
            raise FileAccessError(f"cannot read model file {what}: {os_reason(error)}", error) from error


# ---- writing ---------------------------------------------------------------------------


def _host() -> str:
    return format(zlib.crc32(os.uname().nodename.encode()) if hasattr(os, "uname") else 0, "08x")


def _temp_stem(base: str) -> str:
    """'.<base>' of the temporary files of target `base`; a digest where the name would get too long."""
    if len(os.fsencode(base)) <= 180:
        return f".{base}"
    return f".polynn-{zlib.crc32(os.fsencode(base)):08x}"


def _temp_pattern(base: str) -> re.Pattern[str]:
    """<stem>.<host>.<pid>.<random>.polynn-tmp: whose file it is and which process writes it."""
    return re.compile(re.escape(_temp_stem(base)) + r"\.([0-9a-f]{8})\.([0-9]+)\.[0-9a-f]{16}" + re.escape(TEMP_SUFFIX))


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows: the age rule decides there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or a pid that cannot be probed: assume it lives
    return True


def _remove_stale(directory: str, base: str) -> None:
    """Remove the temporary files of target `base` left by a killed writer (never a live writer's)."""
    pattern, legacy = _temp_pattern(base), re.compile(_LEGACY_TEMP.format(base=re.escape(base)))
    host, now = _host(), time.time()
    with contextlib.suppress(OSError):
        with os.scandir(directory) as entries:
            for entry in entries:
                match = pattern.fullmatch(entry.name)
                if match is None and not legacy.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    gone = match is not None and match.group(1) == host and not _pid_alive(int(match.group(2)))
                    if gone or now - info.st_mtime > STALE_AFTER_S:
                        os.unlink(entry.path)


def _create_temp(directory: str, base: str, mode: int) -> tuple[int, str]:
    prefix = f"{_temp_stem(base)}.{_host()}.{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(directory, f"{prefix}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            return os.open(temporary, flags, mode), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", temporary)


def _check_target(name: str, target: str, what: str) -> os.stat_result | None:
    """The stat of the file to replace (None if new); refuses directories, special and read-only files."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise FileAccessError(f"cannot save model file {what}: {os_reason(error)}", error) from error
    if stat.S_ISDIR(info.st_mode):
        raise InvalidArgumentError("filepath", describe(name), "a file path, not a directory")
    _refuse_special(info.st_mode, what, "save")
    # A file without any write permission bit is read-only on purpose: refused even for root, who
    # could replace it (as an editor refuses to overwrite a read-only file without being forced).
    if not info.st_mode & 0o222 or not os.access(target, os.W_OK):
        why = "read-only" if not info.st_mode & 0o222 else "not writable by this user"
        raise ModelFileError(f"cannot save model file {what}: the file is {why} (mode "
                             f"{stat.S_IMODE(info.st_mode):04o}); accepted: a writable file (change its mode or "
                             f"save elsewhere)")
    return info


def atomic_write(path: object, write: Callable[[BinaryIO], None]) -> None:
    """Write a file with `write(stream)` beside the target, fsync it, then rename it over the target.

    A crash, a kill or an error leaves the old file whole; a failed or interrupted save removes its
    temporary file, and the next save to the same place removes those of killed writers. A symlink
    is written through (its target is replaced, the link stays). The mode of an existing file is
    kept; a new file gets 0o666 less the umask, as an ordinary file does. OS errors are ModelFileError.
    """
    name, what = _checked_name(path, "save")
    target = os.path.realpath(name)
    if target != os.path.abspath(name):
        what = f"{what} (the link's target {describe(target)})"
    directory, base = os.path.split(target)
    info = _check_target(name, target, what)
    if not os.path.isdir(directory):
        raise InvalidArgumentError("filepath", describe(name), "a path in an existing directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ModelFileError(f"cannot save model file {what}: its directory {describe(directory)} is not "
                             f"writable; accepted: a path in a writable directory")
    _remove_stale(directory, base)
    temporary = None
    try:
        # Ctrl-C held while the file is created and its name kept, so the finally below knows it.
        with deferred_interrupts():
            fd, temporary = _create_temp(directory, base, 0o600 if info is not None else 0o666)
        with os.fdopen(fd, "wb") as stream:
            if info is not None:
                mode = stat.S_IMODE(info.st_mode) & 0o777
                os.chmod(stream.fileno() if os.chmod in os.supports_fd else temporary, mode)
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        temporary = None
    except OSError as error:
        raise FileAccessError(f"cannot save model file {what}: {os_reason(error)}; the previous file, if any, "
                              f"is unchanged", error) from error
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    # The rename itself is durable only once the directory entry is flushed (POSIX).
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

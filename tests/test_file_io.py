"""Opening and writing model files: special files, OS errors, temporary files, symlinks, read-only targets, kills."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from polynn import _safetensors
from polynn.errors import InvalidArgumentError, ModelFileError
from polynn.layers import Dense
from polynn.models import Sequential, load_model

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX special files and signals")
pytestmark = posix_only


def small_model(seed=1, units=4):
    model = Sequential([Dense(units, input_dim=3)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=seed)
    return model


def same_weights(model, other):
    return all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))


def others(path):
    """Names in path's directory other than path itself: temporary files left behind."""
    return sorted(name for name in os.listdir(os.path.dirname(path)) if name != os.path.basename(path))


@pytest.fixture
def deadline():
    """A file operation that hangs fails the test after 10 s instead of hanging the run."""
    def expire(signum, frame):
        raise TimeoutError("the model file operation hung for 10 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def saved(tmp_path):
    """A model and the file it was saved to."""
    model = small_model()
    path = tmp_path / "model.safetensors"
    model.save(path)
    return model, path


# ---- reading: what is not a regular model file is refused, promptly, naming the file ----------------


def _fifo(tmp_path):
    path = tmp_path / "pipe.safetensors"
    os.mkfifo(path)
    return path


def _loop(tmp_path):
    os.symlink(tmp_path / "b.safetensors", tmp_path / "a.safetensors")
    os.symlink(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    return tmp_path / "a.safetensors"


def _socket(tmp_path):
    path = str(tmp_path / "s")
    if len(os.fsencode(path)) >= 100:
        pytest.skip("a socket's path is limited to about 100 bytes")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)  # the socket file stays after close
    return path


def _denied(tmp_path):
    if ROOT:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "private.safetensors"
    small_model().save(path)
    path.chmod(0)
    return path


UNREADABLE = {
    "named pipe": (_fifo, "named pipe"),
    "symlink loop": (_loop, "ELOOP"),
    "name too long": (lambda t: t / ("m" * 300), "ENAMETOOLONG"),
    "path too long": (lambda t: t.joinpath(*["d" * 200] * 25), "ENAMETOOLONG"),
    "NUL in path": (lambda t: str(t / "a\0b.safetensors"), "NUL"),
    "directory": (lambda t: t, "a directory"),
    "/dev/null": (lambda t: "/dev/null", "character device"),
    "/dev/zero": (lambda t: "/dev/zero", "character device"),
    "socket": (_socket, "socket"),
    "missing": (lambda t: t / "absent.safetensors", "ENOENT"),
    "not a directory on the way": (lambda t: t / "file" / "m.safetensors", "ENOTDIR"),
    "permission denied": (_denied, "EACCES"),
}


@pytest.mark.parametrize("loader", ["load_model", "load_weights"])
@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_paths_raise_model_file_error_naming_the_file(tmp_path, deadline, case, loader):
    (tmp_path / "file").write_bytes(b"x")
    make, cause = UNREADABLE[case]
    path = make(tmp_path)
    start = time.monotonic()
    with pytest.raises(ModelFileError) as caught:
        if loader == "load_model":
            load_model(path)
        else:
            small_model().load_weights(path)
    message = str(caught.value)
    assert cause in message
    assert message.count(repr(os.fspath(path))[:100]) == 1 and len(message) < 600
    assert time.monotonic() - start < 5


def test_a_fifo_swapped_in_after_the_type_check_is_refused(tmp_path, deadline, monkeypatch):
    """The race: the path is a regular file when checked and a FIFO when opened."""
    fifo = _fifo(tmp_path)
    regular = os.stat(__file__)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if os.fspath(p) == str(fifo) else real_stat(p, *a, **k))
    with pytest.raises(ModelFileError, match="named pipe"):
        load_model(fifo)


def test_a_permission_error_on_open_is_a_model_file_error(saved, monkeypatch):
    """What a user other than root meets on a file of mode 000 (simulated: the tests may run as root)."""
    _, path = saved
    real_open = os.open

    def denied(name, flags, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ModelFileError, match=re.escape(repr(str(path))) + ".*EACCES"):
        load_model(path)


def test_a_read_error_is_a_model_file_error(saved, monkeypatch):
    _, path = saved

    def failing_read(stream, size):
        stream.read(8)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_safetensors, "read_header", failing_read)
    with pytest.raises(ModelFileError, match=re.escape(repr(str(path))) + ".*EIO"):
        load_model(path)


@pytest.mark.parametrize("bad", [12345, None, 3.5, ["m.safetensors"]])
def test_paths_of_the_wrong_type_are_refused(tmp_path, bad):
    with pytest.raises(InvalidArgumentError, match="filepath"):
        load_model(bad)
    with pytest.raises(InvalidArgumentError, match="filepath"):
        small_model().save(bad)


def test_bytes_and_pathlike_paths_work(tmp_path):
    model = small_model()
    model.save(os.fsencode(tmp_path / "bytes.safetensors"))
    model.save_weights(os.fsencode(tmp_path / "bytes.weights.safetensors"))
    assert same_weights(model, load_model(os.fsencode(tmp_path / "bytes.safetensors")))
    assert same_weights(model, load_model(tmp_path / "bytes.safetensors"))
    other = small_model(seed=2)
    other.load_weights(os.fsencode(tmp_path / "bytes.weights.safetensors"))
    assert same_weights(model, other)


# ---- writing: symlinks, read-only and special targets ------------------------------------------------


def test_saving_to_a_symlink_writes_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.safetensors"
    small_model(seed=1).save(target)
    link = tmp_path / "latest.safetensors"
    os.symlink(os.path.join("real", "model.safetensors"), link)
    newer = small_model(seed=2)
    newer.save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "model.safetensors")
    assert same_weights(newer, load_model(target))
    assert others(target) == [] and others(link) == ["real"]


def test_saving_to_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "latest.safetensors"
    os.symlink("model.safetensors", link)
    model = small_model()
    model.save(link)
    assert link.is_symlink() and same_weights(model, load_model(tmp_path / "model.safetensors"))


def test_saving_to_a_symlink_loop_is_refused(tmp_path, deadline):
    path = _loop(tmp_path)
    with pytest.raises(ModelFileError, match="ELOOP"):
        small_model().save(path)
    assert (tmp_path / "a.safetensors").is_symlink() and (tmp_path / "b.safetensors").is_symlink()


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o555])
def test_a_read_only_target_is_refused_and_kept(saved, mode):
    _, path = saved
    before = path.read_bytes()
    path.chmod(mode)
    for save in (small_model(seed=2).save, small_model(seed=2).save_weights):
        with pytest.raises(ModelFileError, match=re.escape(repr(str(path))) + ".*read-only"):
            save(path)
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == mode
    assert others(path) == []


@pytest.mark.skipif(ROOT, reason="root writes in any directory")
def test_a_read_only_directory_is_refused_clearly(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ModelFileError, match="not writable"):
            small_model().save(folder / "m.safetensors")
    finally:
        folder.chmod(0o755)


def test_saving_over_a_fifo_is_refused(tmp_path, deadline):
    fifo = _fifo(tmp_path)
    with pytest.raises(ModelFileError, match="named pipe"):
        small_model().save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and others(fifo) == []


@pytest.mark.parametrize("name", ["a\0b.safetensors", "m" * 300])
def test_impossible_names_are_refused_on_save(tmp_path, name):
    with pytest.raises(ModelFileError, match="NUL|ENAMETOOLONG"):
        small_model().save(os.path.join(tmp_path, name))
    assert os.listdir(tmp_path) == []


def test_a_long_but_valid_name_saves(tmp_path):
    """The target's name fits in 255 bytes; its temporary file's name must too."""
    path = tmp_path / ("m" * 250)
    model = small_model()
    model.save(path)
    model.save(path)
    assert same_weights(model, load_model(path)) and others(path) == []


# ---- writing: modes ----------------------------------------------------------------------------------


def test_an_existing_files_mode_is_kept(saved):
    _, path = saved
    path.chmod(0o640)
    small_model(seed=2).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_an_ordinary_file_gets(tmp_path, umask):
    previous = os.umask(umask)
    try:
        small_model().save(tmp_path / "m.safetensors")
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~umask


# ---- writing: OS errors ------------------------------------------------------------------------------


def _fail_writing(code):
    def install(monkeypatch):
        real = _safetensors.write

        def write(stream, tensors, metadata=None):
            stream.write(b"\0" * 100)
            stream.flush()
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(_safetensors, "write", write)
        return real
    return install


def _fail(function, code, when=lambda *args: True):
    def install(monkeypatch):
        real = getattr(os, function)

        def failing(*args, **kwargs):
            if when(*args):
                raise OSError(code, os.strerror(code))
            return real(*args, **kwargs)

        monkeypatch.setattr(os, function, failing)
    return install


FAILURES = {
    "disk full while writing": (_fail_writing(errno.ENOSPC), "ENOSPC"),
    "quota while writing": (_fail_writing(errno.EDQUOT), "EDQUOT"),
    "I/O error while writing": (_fail_writing(errno.EIO), "EIO"),
    "fsync fails": (_fail("fsync", errno.EIO), "EIO"),
    "read-only filesystem": (_fail("open", errno.EROFS, lambda path, flags, *a: flags & os.O_CREAT), "EROFS"),
    "permission denied creating": (_fail("open", errno.EACCES, lambda path, flags, *a: flags & os.O_CREAT), "EACCES"),
    "rename fails": (_fail("replace", errno.EBUSY), "EBUSY"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_os_errors_while_saving_name_the_file_and_keep_the_old_one(saved, monkeypatch, case):
    _, path = saved
    before = path.read_bytes()
    install, code = FAILURES[case]
    install(monkeypatch)
    with pytest.raises(ModelFileError) as caught:
        small_model(seed=2).save(path)
    monkeypatch.undo()
    assert repr(str(path)) in str(caught.value) and code in str(caught.value)
    assert path.read_bytes() == before and others(path) == []


def _child(code, *args, **kwargs):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=60, **kwargs)


_FILE_SIZE_LIMIT = """
    import json, os, resource, sys
    from polynn.errors import ModelFileError
    from polynn.layers import Dense
    from polynn.models import Sequential
    path = sys.argv[1]
    small = Sequential([Dense(2, input_dim=2)])
    small.compile(optimizer="sgd", loss="mse", backend="numpy", dtype="float64")
    small.save(path)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    big = Sequential([Dense(200, input_dim=200)])
    big.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64")
    try:
        big.save(path)
        outcome = "saved"
    except ModelFileError as error:
        outcome = "ModelFileError: " + str(error)
    except BaseException as error:
        outcome = "raw " + type(error).__name__ + ": " + str(error)
    print(json.dumps(outcome))
"""


def test_the_file_size_limit_is_a_model_file_error(tmp_path):
    path = tmp_path / "m.safetensors"
    done = _child(_FILE_SIZE_LIMIT, path)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome.startswith("ModelFileError") and "EFBIG" in outcome and repr(str(path)) in outcome
    assert load_model(path).get_weights()[0].shape == (2, 2) and others(path) == []


# ---- temporary files: killed writers' are removed, live writers' are not -----------------------------


_KILLED_MID_SAVE = """
    import os, signal, sys
    from polynn import _safetensors
    from polynn.layers import Dense
    from polynn.models import Sequential

    real = _safetensors.write
    def write(stream, tensors, metadata=None):
        stream.write(b"\\0" * 4096)
        stream.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    _safetensors.write = write
    model = Sequential([Dense(4, input_dim=3)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64")
    model.save(sys.argv[1])
"""


def test_a_killed_writers_temporary_file_is_removed_by_the_next_save(saved):
    model, path = saved
    sibling = path.with_name("sibling.safetensors")
    for target in (path, sibling):
        done = _child(_KILLED_MID_SAVE, target)
        assert done.returncode == -signal.SIGKILL
    left = others(path)
    assert len(left) == 2  # each killed writer left a temporary file
    assert same_weights(model, load_model(path))
    model.save(path)
    # Only the temporary file of this target goes: the sibling's is for its own next save.
    assert len(others(path)) == 1 and "sibling" in others(path)[0]
    model.save(sibling)
    assert others(path) == ["sibling.safetensors"]


_PAUSED_WRITER = """
    import sys
    from polynn import _safetensors
    from polynn.layers import Dense
    from polynn.models import Sequential

    real = _safetensors.write
    def write(stream, tensors, metadata=None):
        stream.write(b"\\0" * 4096)
        stream.flush()
        print("paused", flush=True)
        sys.stdin.readline()
        stream.seek(0)
        real(stream, tensors, metadata)
        stream.truncate()
    _safetensors.write = write
    model = Sequential([Dense(4, input_dim=3)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=5)
    model.save(sys.argv[1])
    print("saved", flush=True)
"""


def test_a_live_writers_temporary_file_is_left_alone(saved):
    model, path = saved
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_PAUSED_WRITER), str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "paused"
        assert len(others(path)) == 1
        model.save(path)  # meanwhile, in this process
        assert len(others(path)) == 1
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "saved"
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
        writer.stdout.close()
    assert writer.returncode == 0
    expected = Sequential([Dense(4, input_dim=3)])
    expected.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=5)
    assert same_weights(expected, load_model(path)) and others(path) == []


def test_an_abandoned_temporary_file_is_removed_after_an_hour(saved):
    from polynn import _files

    model, path = saved
    # A temporary file of a pid that lives (this process) but has not been written to for two hours:
    # a writer on another host, or a pid reused since its writer was killed.
    old = path.with_name(f".{path.name}.00000000.{os.getpid()}.{'0' * 16}{_files.TEMP_SUFFIX}")
    legacy = path.with_name(f".{path.name}.abcd1234.tmp")
    fresh = path.with_name(f".{path.name}.00000000.{os.getpid()}.{'1' * 16}{_files.TEMP_SUFFIX}")
    unrelated = path.with_name("notes.tmp")
    for file in (old, legacy, fresh, unrelated):
        file.write_bytes(b"partial")
    past = time.time() - 2 * _files.STALE_AFTER_S
    for file in (old, legacy, unrelated):
        os.utime(file, (past, past))
    model.save(path)
    assert others(path) == sorted([fresh.name, unrelated.name])


_RACER = """
    import sys
    from polynn.layers import Dense
    from polynn.models import Sequential
    model = Sequential([Dense(300, input_dim=300)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=int(sys.argv[2]))
    for _ in range(15):
        model.save(sys.argv[1])
"""


def test_two_processes_saving_to_one_path_both_succeed(tmp_path):
    path = tmp_path / "shared.safetensors"
    racers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(_RACER), str(path), str(seed)],
                               stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    errors = [racer.communicate(timeout=120)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], errors
    loaded = load_model(path)
    candidates = []
    for seed in (1, 2):
        candidate = Sequential([Dense(300, input_dim=300)])
        candidate.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=seed)
        candidates.append(same_weights(candidate, loaded))
    assert sum(candidates) == 1 and others(path) == []


# ---- kill -9 and Ctrl-C at random moments of a save (slow) --------------------------------------------


_SAVER = """
    import os, sys
    from polynn.layers import Dense
    from polynn.models import Sequential

    model = Sequential([Dense(1000, input_dim=1000), Dense(1)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=3)
    try:
        for k in range(10**6):
            weights = model.get_weights()
            weights[-1][...] = k
            model.set_weights(weights)
            model.save(sys.argv[1])
            print(k, flush=True)
    except KeyboardInterrupt:
        folder, name = os.path.split(sys.argv[1])
        # On a line of its own: the Ctrl-C may have cut a print(k) between the number and its newline.
        print("\\ninterrupted", sorted(set(os.listdir(folder)) - {name}), flush=True)
        sys.exit(3)
"""


def _saving_child(path):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SAVER), str(path)],
                            stdout=subprocess.PIPE, text=True)


def _check_complete(path, completed):
    """The file is the last save the child reported complete, or the one after it (done, not yet reported)."""
    loaded = load_model(path)
    kernel, bias = loaded.get_weights()[0], loaded.get_weights()[-1]
    assert kernel.shape == (1000, 1000) and np.isfinite(kernel).all()
    assert bias.shape == (1,) and bias[0] in (completed, completed + 1)


@pytest.mark.slow
def test_kill_9_at_random_moments_of_a_save(tmp_path):
    path = tmp_path / "big.safetensors"
    chance = random.Random(22)
    left_behind = 0
    for _ in range(20):
        process = _saving_child(path)
        try:
            lines = [process.stdout.readline()]  # one complete save exists
            time.sleep(chance.uniform(0.0, 0.25))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        lines += process.stdout.read().split()
        process.stdout.close()
        _check_complete(path, int(lines[-1]))
        left_behind += len(others(path))
        small_model().save(path)  # the next save removes what the killed writer left
        assert others(path) == []
    assert left_behind > 0  # some kills did land mid-save


@pytest.mark.slow
def test_ctrl_c_at_random_moments_of_a_save(tmp_path):
    path = tmp_path / "big.safetensors"
    chance = random.Random(23)
    for _ in range(10):
        process = _saving_child(path)
        try:
            output = [process.stdout.readline().strip()]  # one complete save exists
            time.sleep(chance.uniform(0.0, 0.25))
            process.send_signal(signal.SIGINT)
            output += [line for line in process.stdout.read().splitlines() if line]
        finally:
            process.wait(timeout=60)
            process.stdout.close()
        assert process.returncode == 3 and output[-1] == "interrupted []"
        _check_complete(path, int([line for line in output if line.isdigit()][-1]))
        assert others(path) == []


def test_os_level_refusals_are_also_os_errors_with_their_errno(tmp_path):
    """Code written against the raw OSError of earlier versions still catches them."""
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(OSError) as raised:
        load_model(missing)
    assert isinstance(raised.value, ModelFileError) and raised.value.errno == errno.ENOENT
    assert repr(str(missing)) in str(raised.value)

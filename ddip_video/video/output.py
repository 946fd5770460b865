"""All-or-nothing outputs: a run's files appear in the output folder only when it succeeds."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from ddip_video.errors import InputError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so folders left by killed runs stay
    fcntl = None

STAGING_PREFIX = ".ddip-staging-"
_LOCK = ".lock"  # in a staging folder: held by its run for as long as the run lives


class StagedOutputDir:
    """Collects a whole run's outputs in a hidden staging folder inside OUTDIR, and moves
    them into OUTDIR only when the run succeeds (``commit()``).

    On failure or Ctrl-C (``__exit__`` with an exception) the staging folder is removed, so
    no half-written outputs are left, and earlier files in OUTDIR are untouched until commit
    replaces them. Leaving the ``with`` block without an exception commits. A run killed
    outright (SIGKILL, the out-of-memory killer, a power cut) cannot clean up; the staging
    folders such runs left in OUTDIR are removed by the next run there, known by their lock,
    which the system released when their process died. Runs that commit into one OUTDIR at
    the same moment take turns, so that it holds one run's outputs, not a mix.
    """

    def __init__(self, outdir, input_path=None, resume: Callable[[Path], bool] | None = None):
        """resume: given, the run picks up the staging folder an interrupted run left
        in OUTDIR (its half-written outputs removed, its hidden working files kept)
        for which resume(folder) is true, and refuses, with one line, to start
        without one."""
        self.outdir = Path(outdir)
        self._input = Path(input_path) if input_path is not None else None
        self._check_outdir()
        self._created = not self.outdir.exists()
        self.keep_for_resume = False  # set by a run once its working files can be picked up
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot create the output folder {self.outdir} ({error.strerror})") from None
        try:
            adopted = _adopt_staging(self.outdir, resume) if resume is not None else None
        except InputError:
            if self._created:
                self.outdir.rmdir()
            raise
        remove_abandoned_staging(self.outdir)
        self._committed: list[Path] | None = None
        self._lock = None
        if adopted is not None:
            self._staging, self._lock = adopted
            return
        self._staging = self.outdir / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
        try:
            self._staging.mkdir()
            self._lock = _hold_lock(self._staging)
        except OSError as error:  # a read-only or full file system, a folder not ours
            self.discard()
            raise InputError(f"cannot write into the output folder {self.outdir} ({error.strerror})") from None

    def _check_outdir(self) -> None:
        if self.outdir.exists() and not self.outdir.is_dir():
            raise InputError(f"the output folder is a file: {self.outdir}")
        if self._input is not None and self._input.is_dir():
            outdir, source = self.outdir.resolve(), self._input.resolve()
            if outdir == source or outdir.is_relative_to(source):
                raise InputError(
                    f"the output folder {self.outdir} must not be inside the input folder {self._input}"
                )

    def path(self, name) -> Path:
        """Where to write the output ``name`` (a file or folder name) during the run."""
        name = str(name)
        if name in ("", ".", "..") or Path(name).name != name or name.startswith("."):
            raise ValueError(f"not a plain output name: {name!r}")
        if self._committed is not None:
            raise RuntimeError("the outputs were already committed")
        if self._input is not None and same_path(self.outdir / name, self._input):
            raise InputError(f"{self.outdir / name}: writing it would overwrite the input")
        return self._staging / name

    def scratch(self, name: str) -> Path:
        """A hidden folder for the run's own working files (never an output): inside the
        staging folder, removed with it, or kept with it for --resume."""
        folder = self._staging / f".{self.path(name).name}"
        folder.mkdir(exist_ok=True)
        return folder

    def commit(self) -> list[Path]:
        """Move every staged item into the output folder, replacing same-named ones: all
        of them, or (an OSError raised) none, the folder left as it was."""
        if self._committed is not None:
            return self._committed
        with _folder_lock(self.outdir):  # two runs into one folder: all outputs from one of them
            staged = sorted(item for item in self._staging.iterdir()
                            if not item.name.startswith("."))  # a writer's unfinished temporary file, the lock
            for item in staged:
                check_replaceable(item, self.outdir / item.name)
            final = _replace_all(staged, self.outdir, self._staging / ".replaced")
        self._remove_staging()
        self._committed = final
        return final

    def check_outputs(self, names) -> None:
        """Refuses, before any work, an OUTDIR in which one of the outputs `names` would
        overwrite the input or take the place of something of the user's."""
        for name in names:
            target = self.outdir / name
            if self._input is not None and same_path(target, self._input):
                raise InputError(f"{target}: writing it would overwrite the input")
            check_replaceable(Path(name), target)

    def discard(self) -> None:
        """Remove everything staged; the output folder keeps its earlier contents."""
        self._remove_staging()
        if self._created and self._committed is None:
            with contextlib.suppress(OSError):
                self.outdir.rmdir()  # only succeeds if nothing else was put there

    def _remove_staging(self) -> None:
        remove_path(self._staging)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> StagedOutputDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        elif self.keep_for_resume and self._committed is None:
            self._keep_working_files()
            exc.add_note(f"the finished work is kept in {self._staging}: the same command with --resume "
                         "picks up from there")
        else:
            self.discard()
        return False

    def _keep_working_files(self) -> None:
        """Removes the staged outputs, keeps the hidden working files for --resume, and
        lets go of the folder (a later run without --resume removes it as abandoned)."""
        _remove_outputs(self._staging)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _hold_lock(staging: Path) -> int | None:
    """Locks a new staging folder for the life of this process; the descriptor, or None
    where the file system has no locks (its folders are then never taken for abandoned)."""
    if fcntl is None:
        return None
    pending = staging / ".lock-pending"
    descriptor = os.open(pending, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.replace(pending, staging / _LOCK)  # seen by other runs only once held
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """Holds an exclusive lock on the folder itself (none where locks are not to be had)."""
    descriptor = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            descriptor = os.open(folder, os.O_RDONLY)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _remove_outputs(staging: Path) -> None:
    for item in staging.iterdir():
        if not item.name.startswith("."):
            remove_path(item)


def _take_lock(folder: Path) -> int | None:
    """The descriptor of a staging folder's lock, taken; None where its run lives (or it has none)."""
    try:
        descriptor = os.open(folder / _LOCK, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _adopt_staging(outdir: Path, matches: Callable[[Path], bool]) -> tuple[Path, int]:
    """The staging folder of an interrupted run in outdir that `matches`, with its lock
    held and its half-written outputs removed; InputError where there is none."""
    other = False
    for folder in sorted(outdir.glob(f"{STAGING_PREFIX}*")) if fcntl is not None else ():
        descriptor = _take_lock(folder)
        if descriptor is None:
            continue
        if matches(folder):
            _remove_outputs(folder)
            return folder, descriptor
        other = True
        os.close(descriptor)
    if other:
        raise InputError(f"--resume: the interrupted run in {outdir} was of another input or with other options "
                         "(run without --resume to start over)")
    raise InputError(f"--resume: {outdir} holds no interrupted run to pick up")


def remove_abandoned_staging(outdir: Path) -> None:
    """Removes the staging folders in ``outdir`` whose run died without cleaning up: their
    lock can be taken. A live run's is held; one without a lock is left (its run is in
    its first instant, or the file system has no locks)."""
    if fcntl is None:
        return
    for folder in outdir.glob(f"{STAGING_PREFIX}*"):
        descriptor = _take_lock(folder)
        if descriptor is None:
            continue  # held: a live run
        try:
            remove_path(folder)
        finally:
            os.close(descriptor)


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (through symlinks and hard links too)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_replaceable(output: Path, target: Path) -> None:
    """Refuses (InputError) to replace `target` with the output named like `output`
    (a file has a suffix, a folder of frames none) where the target is not an earlier
    output of that kind: a folder where a file goes, a file where the folder goes, or a
    folder holding anything but PNG images (an earlier run's frames)."""
    if target.is_symlink() or not target.exists():
        return
    folder_output = not output.suffix
    if target.is_dir() and not folder_output:
        raise InputError(f"{target} is a folder, not an earlier output: move it away, or choose another OUTDIR")
    if not target.is_dir() and folder_output:
        raise InputError(f"{target} is in the way of the output folder {target.name}: move it away, "
                         "or choose another OUTDIR")
    if target.is_dir() and any(not (p.is_file() and p.suffix == ".png") for p in target.iterdir()):
        raise InputError(f"{target} holds more than PNG frames of an earlier run: move it away, "
                         "or choose another OUTDIR")


def _replace_all(items: list[Path], outdir: Path, aside: Path) -> list[Path]:
    """Moves every item into outdir, the same-named earlier ones first into `aside`;
    on any failure, puts back what was moved and raises: all or nothing."""
    aside.mkdir()
    staging = aside.parent
    moved_aside: list[Path] = []
    placed: list[Path] = []
    try:
        for item in items:
            target = outdir / item.name
            if target.exists() or target.is_symlink():
                os.replace(target, aside / item.name)
                moved_aside.append(target)
        for item in items:
            os.replace(item, outdir / item.name)
            placed.append(outdir / item.name)
    except BaseException:
        for target in reversed(placed):
            with contextlib.suppress(OSError):
                os.replace(target, staging / target.name)  # back into staging, removed with it
        for target in reversed(moved_aside):
            with contextlib.suppress(OSError):
                os.replace(aside / target.name, target)
        raise
    remove_path(aside)
    return placed


def replace_path(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing a file or folder already there.

    A file replaces a file atomically. A folder cannot replace a folder in one step, so the
    old one is first moved aside (the target is missing only for that instant).
    """
    target_is_folder = target.is_dir() and not target.is_symlink()
    if not target_is_folder and not source.is_dir():
        os.replace(source, target)
        return
    aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    if target.exists() or target.is_symlink():
        os.replace(target, aside)
    os.replace(source, target)
    remove_path(aside)


def remove_path(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


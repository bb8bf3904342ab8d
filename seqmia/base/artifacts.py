"""Atomic artefact writers: a crash mid-write never leaves a half file at the final path.

Each writer writes to a temporary file in the destination folder, flushes it to disk and then
renames it over the destination (``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import mmap
import os
import pickle
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seqmia.base.errors import DamagedFileError, UserError, first_line

if TYPE_CHECKING:  # torch is imported where it is used: stages without it never pay for it
    import torch


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask is process-wide, not safe to toggle from threads


class WriteError(UserError, OSError):
    """A file that could not be written (disk full, a file size limit, an I/O error). Its message
    names the file, the cause and the free space left; the previous file there is unchanged.
    Still an ``OSError`` (with the cause's ``errno``) for code that catches those."""


# Cause-specific advice appended to a WriteError's message.
WRITE_HINTS = {
    errno.ENOSPC: "free some space on that file system, or write the outputs elsewhere",
    errno.EDQUOT: "the disk quota is used up; free some of it",
    errno.EFBIG: "the file exceeds a size limit (the file system's, or the process's ulimit -f)",
}


def human_bytes(n_bytes: int) -> str:
    """``1.2 GiB``: a byte count in binary units, one decimal above bytes."""
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n_bytes} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def write_error(path: Path, step: str, err: OSError) -> WriteError:
    """A one-line ``WriteError`` for ``err``, raised while ``step`` (``writing it``) of writing
    ``path``: the file, the cause (the errno's text), the free space, and advice where known."""
    cause = os.strerror(err.errno) if err.errno else first_line(err)
    try:  # the usage of the folder's file system; the folder may be what failed to appear
        free = f"{human_bytes(shutil.disk_usage(path.parent).free)} free on its file system"
    except OSError:
        free = "free space unknown"
    kept = f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"
    hint = f"; {WRITE_HINTS[err.errno]}" if err.errno in WRITE_HINTS else ""
    error = WriteError(f"cannot write {path}: {cause} (while {step}; {free}); {kept}{hint}")
    error.errno = err.errno  # only errno: OSError's str() would otherwise replace the message
    return error


def _about(err: OSError, tmp: Path) -> bool:
    """Whether ``err``, raised in an ``atomic_path`` block, is a failure to write ``tmp``: no
    file named (write(2), flush and close errors name none) or ``tmp`` itself. An error about
    another file (a missing input read in the block) is the caller's, and passes unchanged."""
    if isinstance(err, WriteError):  # a nested atomic write already said which file failed
        return False
    named = [f for f in (err.filename, err.filename2) if f is not None]
    return all(Path(os.fsdecode(f)) == tmp for f in named)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    An ``OSError`` while creating, writing (in the block), flushing or moving the temporary file
    becomes a one-line ``WriteError`` naming ``path``; the temporary file is removed either way and
    the previous file at ``path`` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise write_error(path, "creating a temporary file beside it", err) from err
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as err:
            if not _about(err, tmp_path):
                raise
            raise write_error(path, "writing it", err) from err
        step = "flushing it to disk"
        try:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
            step = "moving it into place"
            os.replace(tmp_path, path)
        except OSError as err:
            raise write_error(path, step, err) from err
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(outputs: list[Path]) -> list[Path]:
    """Delete the temporary files ``atomic_path`` leaves when killed: ``.NAME.XXXX.tmp`` beside
    each output file ``NAME``, and any ``.*.tmp`` inside each output folder. Returns them."""
    stale: list[Path] = []
    for out in outputs:
        if out.is_dir():
            stale += [p for p in out.rglob(".*.tmp") if p.is_file()]
        elif out.parent.is_dir():
            stale += [p for p in out.parent.glob(f".{out.name}.*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as Parquet (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays into one uncompressed ``.npz``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickled objects). Members stored uncompressed (what
    ``write_npz`` writes) are memory-mapped read-only: a stage that reads some rows of a large
    array holds only the pages of those rows, not a copy of the whole array. Random access is
    advised so the kernel maps only the pages read (no read-ahead, no fault-around)."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            array = _mapped_member(path, fh, info) if info.compress_type == 0 else None
            if array is None:
                with archive.open(info) as member:
                    array = np.lib.format.read_array(member, allow_pickle=False)
            arrays[name] = array
    return arrays


def _mapped_member(path: str | Path, fh, info: zipfile.ZipInfo) -> np.ndarray | None:
    """The stored (uncompressed) ``.npy`` member ``info`` as a read-only memory map, or None
    where it cannot be mapped (object arrays, empty arrays)."""
    fh.seek(info.header_offset)
    local = fh.read(30)  # the member's local header: its name and extra field lengths at 26..30
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    version = np.lib.format.read_magic(fh)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read_header(fh)
    if dtype.hasobject or int(np.prod(shape)) == 0:
        return None
    array = np.memmap(
        path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape, order="F" if fortran else "C"
    )
    array._mmap.madvise(mmap.MADV_RANDOM)
    return np.asarray(array)  # a plain read-only ndarray view of the map


# Key under which ``save_state_dict`` stores the SHA-256 of the weights inside the file itself,
# so the check travels with the file through DVC's cache, checkouts and copies.
CHECKSUM_KEY = "_sha256"
RESTORE_HINT = (
    "restore it with `dvc checkout`, or rerun the stage that writes it (`dvc repro -f <stage>`)"
)


class UntrustedFileError(UserError, pickle.UnpicklingError):
    """A file that would need unpickling arbitrary objects (possibly code) to be read."""


def weights_digest(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """SHA-256 over every entry's name, dtype, shape and bytes (sorted by name), as (32,) uint8."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(k for k in state if k != CHECKSUM_KEY):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)


def save_state_dict(path: str | Path, module: torch.nn.Module) -> None:
    """Save ``module``'s state dict (tensors on CPU) with its checksum, atomically."""
    import torch

    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    state[CHECKSUM_KEY] = weights_digest(state)
    # Serialise to memory first: torch.save names the archive's records after the file it writes
    # to, and the random temporary name would make identical weights differ byte for byte.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict saved by ``save_state_dict``; refuses pickled code (weights only), and a
    file that is damaged or whose weights no longer match their recorded checksum, with a
    ``DamagedFileError`` naming the file. Weights saved elsewhere (no checksum) load unchecked."""
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DamagedFileError(f"{path} is missing; {RESTORE_HINT}") from None
    except pickle.UnpicklingError as err:
        raise UntrustedFileError(
            f"{path} holds pickled objects besides tensors; refused, since loading them could run "
            f"code ({first_line(err)}); save plain state dicts only"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise DamagedFileError(
            f"{path} cannot be read as saved weights ({first_line(err)}); {RESTORE_HINT}"
        ) from None
    if not isinstance(state, dict):
        raise DamagedFileError(f"{path} does not hold a state dict; {RESTORE_HINT}")
    recorded = state.pop(CHECKSUM_KEY, None)
    if recorded is not None and not torch.equal(recorded, weights_digest(state)):
        raise DamagedFileError(
            f"{path} changed after it was written (its weights do not match the SHA-256 recorded "
            f"in it); {RESTORE_HINT}"
        )
    return state

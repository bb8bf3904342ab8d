"""A given target's files: where they must live, how they are named in errors, what they hash to.

Standard library only: params validation refuses an exported program without the opt-in, and
must not pay for torch to say so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from seqmia.base.errors import UserError

# Every file of a checkpoint target lives here, so one DVC dependency covers them all.
TARGET_DIR = "target"
# A checkpoint with this suffix is a torch.export archive, loaded by torch.export.load.
EXPORTED_SUFFIX = ".pt2"
# The params key that lets such an archive load. Loading one unpickles parts of it (weights
# marked as pickled, opaque constants, sample inputs that torch retries without weights_only),
# and unpickling can run any code stored in the file: like a factory, it needs an explicit yes.
EXPORTED_OPT_IN_KEY = "target.run_code_in_exported_program"
ECHO_CHARS = 100  # how much of a user's path an error quotes


class CheckpointError(UserError, ValueError):
    """A target checkpoint, member list or preprocessing that the audit cannot use."""


def _clip(text: str) -> str:
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


def exported_program_refusal(file: str) -> str:
    """The one-line refusal of the torch.export archive ``file`` when the user did not opt in."""
    return (
        f"target.checkpoint {_clip(file)} is a torch.export archive ({EXPORTED_SUFFIX}), and "
        f"loading one can run code stored in it; set {EXPORTED_OPT_IN_KEY}: true only for a "
        "file you trust, or give a weights-only state dict (torch.save(model.state_dict(), "
        "path)) with train.model or target.factory"
    )


def target_file(root: Path, value: str, key: str) -> Path:
    """The file ``value`` (relative to ``root``) of params key ``key``: it must exist inside
    ``root/target/``, the folder the stages depend on."""
    path = (root / value).resolve()
    folder = (root / TARGET_DIR).resolve()
    if not path.is_relative_to(folder):
        raise CheckpointError(
            f"params key '{key}' is {_clip(repr(value))}, outside the {TARGET_DIR}/ folder; "
            f"copy the file into {folder} (the stages track that folder as a DVC dependency)"
        )
    if not path.is_file():
        raise CheckpointError(f"params key '{key}': no file at {path}")
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

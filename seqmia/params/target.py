"""Section ``target``: where the audited model comes from."""

from __future__ import annotations

import dataclasses
from typing import Literal

from seqmia.params.schema import register_rules, register_section


@dataclasses.dataclass(frozen=True)
class TargetParams:
    """Where the audited (target) model comes from: trained here, or a given checkpoint.

    For ``source: checkpoint`` every path is relative to the repository root and lies in the
    ``target/`` folder, which the stages that read it list as a DVC dependency
    (seqmia.target.checkpoint).
    """

    source: Literal["train", "checkpoint"]
    # A state dict of ``train.model`` (or of ``factory``'s module), or a torch.export ``.pt2``.
    checkpoint: str
    # Optional ``package.module:factory`` returning the untrained module for the state dict
    # (imports and runs that code); "" uses ``train.model``.
    factory: str
    # Load a ``.pt2`` checkpoint, which can run code stored in it (seqmia.target.files); a
    # ``.pt2`` is refused without it. Only for a file you trust.
    run_code_in_exported_program: bool
    # Files of the target's training samples and of samples it never saw: one sample id (row of
    # dataset.npz) or image path (relative to the image-folder root) per line.
    members: str
    nonmembers: str
    # Preprocessing the target expects: per-channel mean/std on [0, 1] pixels ([] = the dataset's
    # per-pixel statistics, as the pipeline's own models), [height, width] ([] = as stored),
    # channels (0 = as stored, 1 = grey, 3 = RGB).
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: tuple[int, ...]
    channels: int


register_rules(
    TargetParams,
    {
        "channels": (lambda v: v in (0, 1, 3), "0 (as stored), 1 (grey) or 3 (RGB)"),
        "resize": (lambda v: len(v) in (0, 2) and all(d >= 1 for d in v), "[] or [height, width]"),
        "std": (lambda v: all(d > 0 for d in v), "a list of numbers > 0"),
    },
)
register_section("target", TargetParams)

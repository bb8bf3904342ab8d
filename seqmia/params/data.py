"""Section ``data``: which dataset to prepare and where to find it."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from seqmia.data.registry import DATASETS
from seqmia.params.schema import AT_LEAST_1, OneOf, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class DataParams:
    """Which dataset to prepare and where to find it."""

    name: Annotated[str, OneOf(DATASETS)]
    # Folder of the ImageFolder tree (``<path>/train/<class>/…``) for ``name: imagefolder``,
    # relative to the data root or absolute; ignored for named datasets.
    path: str
    # auto: a local copy under the data root, else the dataset's standard downloader (progress,
    # checksum where the publisher gives one); never: a local copy only.
    download: Literal["auto", "never"]
    # news20 only: TF-IDF vocabulary size (the most frequent terms of the fitted documents).
    vocab_size: int


register_rules(DataParams, {"vocab_size": AT_LEAST_1})
register_section("data", DataParams)

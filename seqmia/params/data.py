"""Section ``data``: which dataset to prepare and where to find it."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from seqmia.data.registry import DATASETS
from seqmia.params.schema import AT_LEAST_1, OneOf, register_rules, register_section


@dataclasses.dataclass(frozen=True)
class DataParams:
    """Which dataset to prepare and where to find it."""

    name: Annotated[str, OneOf(DATASETS)]
    # Folder of the ImageFolder tree (``<path>/train/<class>/…``) for ``name: imagefolder``,
    # relative to the data root or absolute; ignored for named datasets.
    path: str
    # Fetch a named dataset with its standard downloader when no local copy is found.
    download: bool
    # news20 only: TF-IDF vocabulary size (the most frequent terms of the fitted documents).
    vocab_size: int


register_rules(DataParams, {"vocab_size": AT_LEAST_1})
register_section("data", DataParams)

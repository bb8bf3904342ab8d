"""The datasets that ``data.name`` may name: one registry, with what each one's samples are.

Params validation takes the names, kinds and class counts from ``DATASETS``;
``seqmia.data.sources.load_dataset`` reads the chosen one. Readers are named, not imported, so
validating params.yaml does not pay for numpy, PIL or pandas. Every reader is named in
``seqmia.data.sources``, the module that calls them, so that a stage reading data has every reader's
module in its import graph (and its dvc.yaml deps).
"""

from __future__ import annotations

import dataclasses

from seqmia.base.lazy import Lazy


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: the reader of a named dataset and what its samples are."""

    # read(root=, download=, **{option: value for option in options}) -> RawDataset
    read: Lazy
    kind: str  # "image" (C, H, W) | "tabular" or "text" (feature vectors (D,))
    # Classes, where the publisher fixes them (None: known only once read); lets per-class part
    # sizes be turned into sample counts before any data is read.
    classes: int | None
    # The data.* options its reader takes besides the root and download: "path", "vocab_size".
    options: tuple[str, ...] = ()

    @property
    def features(self) -> bool:
        """Samples are feature vectors, not images: only models that flatten take them."""
        return self.kind != "image"


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(Lazy("seqmia.data.sources:load_cifar", name="cifar10"), "image", 10),
    "cifar100": DatasetSpec(Lazy("seqmia.data.sources:load_cifar", name="cifar100"), "image", 100),
    "cinic10": DatasetSpec(Lazy("seqmia.data.sources:load_cinic10"), "image", 10),
    "gtsrb": DatasetSpec(Lazy("seqmia.data.sources:load_gtsrb"), "image", 43),
    "mnist": DatasetSpec(Lazy("seqmia.data.sources:load_idx", name="mnist"), "image", 10),
    "fashion_mnist": DatasetSpec(Lazy("seqmia.data.sources:load_idx", name="fashion_mnist"), "image",
                                 10),
    "imagefolder": DatasetSpec(Lazy("seqmia.data.sources:load_image_folder"), "image", None,
                               ("path",)),
    "location": DatasetSpec(Lazy("seqmia.data.sources:load_tabular", name="location"), "tabular", 30),
    "purchase100": DatasetSpec(Lazy("seqmia.data.sources:load_tabular", name="purchase100"),
                               "tabular", 100),
    "texas100": DatasetSpec(Lazy("seqmia.data.sources:load_tabular", name="texas100"), "tabular", 100),
    "news20": DatasetSpec(Lazy("seqmia.data.sources:load_news20"), "text", 20, ("vocab_size",)),
}
IMAGE_DATASETS = tuple(n for n, spec in DATASETS.items() if spec.kind == "image")
TABULAR_DATASETS = tuple(n for n, spec in DATASETS.items() if spec.kind == "tabular")
TEXT_DATASETS = tuple(n for n, spec in DATASETS.items() if spec.kind == "text")
FEATURE_DATASETS = tuple(n for n, spec in DATASETS.items() if spec.features)
KNOWN_CLASS_COUNTS = {n: spec.classes for n, spec in DATASETS.items() if spec.classes is not None}

"""The per-sample metrics that ``sequences.metrics`` may name: one registry.

Each entry names its function in ``seqmia.attacks.seqmia.metrics`` (log-posteriors (N, C) and
labels (N,) -> (N,)); the functions are imported when first used, so validating params.yaml does
not pay for torch.
"""

from __future__ import annotations

from seqmia.base.lazy import Lazy

METRICS: dict[str, Lazy] = {
    "loss": Lazy("seqmia.attacks.seqmia.metrics:loss_metric"),
    "max": Lazy("seqmia.attacks.seqmia.metrics:max_metric"),
    "sd": Lazy("seqmia.attacks.seqmia.metrics:sd_metric"),
    "entropy": Lazy("seqmia.attacks.seqmia.metrics:entropy_metric"),
    "m_entropy": Lazy("seqmia.attacks.seqmia.metrics:m_entropy_metric"),
}

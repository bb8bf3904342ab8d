"""Model inputs of stored samples, made one batch at a time from the prepared arrays: a part is
held as its stored rows (uint8 images), never as a float32 copy of the whole part."""

from __future__ import annotations

import numpy as np
import torch

from seqmia.data.inputs import is_image, to_model_input
from seqmia.data.samples import gather_rows


class BatchedInputs:
    """Model inputs of stored samples, made one batch at a time.

    Holds the stored rows ``x`` ((N, H, W, C) uint8 images or (N, D) float features) and turns
    the rows a batch selects into float32 model input ((B, C, H, W) or (B, D)) with
    ``seqmia.data.to_model_input``: the same elementwise arithmetic as converting the whole part
    at once, so every value is bit-identical, but only one batch is ever held in float32 (a
    uint8 image takes a quarter of its float32 input). Indexing with a (B,) index tensor or a
    slice returns the batch on ``device``; ``shape``, ``ndim`` and ``len`` describe the model
    input (N, C, H, W) / (N, D) the rows stand for.
    """

    def __init__(
        self, x: np.ndarray, mean: np.ndarray, std: np.ndarray, device: torch.device | str = "cpu"
    ) -> None:
        self.x = x  # the rows as given: ``gather_rows`` copies them out of a mapped file
        self.mean, self.std = mean, std
        self.device = torch.device(device)
        n = len(self.x)
        self.shape = (n, self.x.shape[3], *self.x.shape[1:3]) if is_image(self.x) else self.x.shape
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        rows = self.x[index] if isinstance(index, slice) else self.x[index.cpu().numpy()]
        return to_model_input(rows, self.mean, self.std).to(self.device)

    def to(self, device: torch.device | str) -> BatchedInputs:
        """The same rows, with batches made on ``device``."""
        return BatchedInputs(self.x, self.mean, self.std, device)

    def materialise(self) -> torch.Tensor:
        """The whole part as one float32 tensor (N, C, H, W) / (N, D) on ``device``."""
        return self[slice(None)]


def stored_inputs(
    dataset: dict[str, np.ndarray], ids: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[BatchedInputs | torch.Tensor, torch.Tensor]:
    """Model inputs (made per batch on a CPU, one tensor on an accelerator) and labels (n,) int64
    on ``device`` of the samples ``ids`` (n,) of a prepared dataset (``x``, ``y``, ``mean``,
    ``std``)."""
    x = BatchedInputs(gather_rows(dataset["x"], ids), dataset["mean"], dataset["std"], device)
    # On an accelerator the part lives in its memory, not the host's: convert it once there
    # rather than per batch on the CPU (the same values either way).
    inputs = x if x.device.type == "cpu" else x.materialise()
    return inputs, torch.from_numpy(dataset["y"][ids].astype(np.int64)).to(device)

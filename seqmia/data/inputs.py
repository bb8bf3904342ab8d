"""Prepared arrays to model inputs: normalisation and the (N, C, H, W) layout. Used by every
stage that runs a model (and by prepare, which computes the normalisation); no file formats."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where a tensor is made: prepare needs the arithmetic, not torch
    import torch


def is_image(x: np.ndarray) -> bool:
    """True for (N, H, W, C) images, False for (N, D) feature vectors."""
    return x.ndim == 4


def normalisation_stats(x: np.ndarray, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation over samples, in [0, 1] units; identity for features.

    x: (N, H, W, C) uint8 -> two float32 arrays of shape (H, W, C). Accumulates in float64 over
    chunks so memory stays at one chunk. The std is floored so constant pixels (the borders of
    MNIST-like images) do not divide by zero.
    x: (N, D) float32 features -> zeros and ones of shape (D,): the tabular sets are binary
    indicators and TF-IDF rows are already L2-normalised, and the models of the literature take
    them as they are; standardising sparse binary columns would turn rare features into large
    values and change the task the paper's numbers describe.
    """
    if not is_image(x):
        return np.zeros(x.shape[1:], np.float32), np.ones(x.shape[1:], np.float32)
    mean = x.mean(axis=0, dtype=np.float64)
    sq = np.zeros(x.shape[1:], dtype=np.float64)
    # One float64 buffer, centred and squared in place: a chunk costs one buffer, not the three
    # temporaries of ``(c - mean) * (c - mean)`` (the values, and so the sums, are the same).
    buffer = np.empty((min(chunk, len(x)), *x.shape[1:]), dtype=np.float64)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        centred = buffer[: len(part)]
        np.copyto(centred, part)
        np.subtract(centred, mean, out=centred)
        np.multiply(centred, centred, out=centred)
        sq += centred.sum(axis=0)
    std = np.sqrt(sq / len(x))
    return (mean / 255.0).astype(np.float32), np.maximum(std / 255.0, 1e-3).astype(np.float32)


def to_model_input(
    x: np.ndarray, mean: np.ndarray, std: np.ndarray, chunk: int = 1024
) -> torch.Tensor:
    """Normalised float32 model input.

    (N, H, W, C) uint8 images -> (N, C, H, W), in [0, 1] units then ``(x - mean) / std``.
    (N, D) float features -> (N, D) ``(x - mean) / std``.
    Converts ``chunk`` samples at a time into the one output array, so the float temporaries of
    the arithmetic never exceed one chunk (the values are the same as converting all at once).
    """
    import torch

    if not is_image(x):
        xf = (x.astype(np.float32) - mean) / std
        return torch.from_numpy(np.ascontiguousarray(xf, dtype=np.float32))
    n, h, w, c = x.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    for start in range(0, n, chunk):
        xf = (x[start : start + chunk].astype(np.float32) / 255.0 - mean) / std
        out[start : start + chunk] = xf.transpose(0, 3, 1, 2)
    return torch.from_numpy(out)


def input_shape(x: np.ndarray) -> tuple[int, ...]:
    """Shape of one model input: (C, H, W) for (N, H, W, C) images, (D,) for (N, D) features."""
    if is_image(x):
        _, h, w, c = x.shape
        return (c, h, w)
    return tuple(int(d) for d in x.shape[1:])


def num_classes(dataset: dict[str, np.ndarray]) -> int:
    """Number of classes of the prepared dataset (its ``classes`` array)."""
    return len(dataset["classes"])

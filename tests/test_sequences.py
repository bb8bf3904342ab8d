"""Long-format sequence frames and their conversion back to (N, T, k) arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqmia.attacks.seqmia.frames import (
    ID_COLUMNS,
    frame_to_arrays,
    metric_columns,
    sequence_frame,
)

NAMES = ["loss", "max", "m_entropy"]
N, T, K = 6, 4, 3


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(N, T, K))  # float64
    sample_ids = np.array([42, 7, 19, 3, 100, 8])  # deliberately unsorted
    parts = np.array(["target_in"] * 3 + ["target_out"] * 3)
    members = np.array([1, 1, 1, 0, 0, 0])
    labels = np.array([0, 1, 2, 0, 1, 2])
    per_snapshot = [torch.from_numpy(values[:, t, :]) for t in range(T)]
    frame = sequence_frame(sample_ids, parts, members, labels, per_snapshot, NAMES)
    return values, sample_ids, parts, members, labels, frame


def test_frame_layout(inputs):
    _, sample_ids, _, _, _, frame = inputs
    assert list(frame.columns) == [*ID_COLUMNS, *NAMES]
    assert metric_columns(frame) == NAMES
    assert len(frame) == N * T
    np.testing.assert_array_equal(frame["sample_id"], np.repeat(np.sort(sample_ids), T))
    np.testing.assert_array_equal(frame["snapshot"], np.tile(np.arange(1, T + 1), N))
    assert all(frame[name].dtype == np.float64 for name in NAMES)


def test_round_trip_is_exact_and_sorted_by_sample_id(inputs):
    values, sample_ids, parts, members, labels, frame = inputs
    samples, arrays = frame_to_arrays(frame)
    order = np.argsort(sample_ids)
    assert arrays.shape == (N, T, K)
    assert arrays.dtype == np.float64
    np.testing.assert_array_equal(arrays, values[order])
    np.testing.assert_array_equal(samples["sample_id"], sample_ids[order])
    np.testing.assert_array_equal(samples["part"], parts[order])
    np.testing.assert_array_equal(samples["member"], members[order])
    np.testing.assert_array_equal(samples["label"], labels[order])


def test_round_trip_from_shuffled_frame(inputs):
    values, sample_ids, _, _, _, frame = inputs
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    _, arrays = frame_to_arrays(shuffled)
    np.testing.assert_array_equal(arrays, values[np.argsort(sample_ids)])


def test_metric_subset_in_requested_order(inputs):
    values, sample_ids, _, _, _, frame = inputs
    _, arrays = frame_to_arrays(frame, ["m_entropy", "loss"])
    np.testing.assert_array_equal(arrays, values[np.argsort(sample_ids)][:, :, [2, 0]])


def test_name_count_mismatch_raises(inputs):
    values, sample_ids, parts, members, labels, _ = inputs
    per_snapshot = [torch.from_numpy(values[:, t, :]) for t in range(T)]
    with pytest.raises(ValueError):
        sequence_frame(sample_ids, parts, members, labels, per_snapshot, NAMES[:2])


def test_ragged_frame_missing_one_row_raises(inputs):
    frame = inputs[-1]
    with pytest.raises(ValueError, match="ragged"):
        frame_to_arrays(frame.drop(index=5).reset_index(drop=True))


def test_ragged_frame_with_divisible_row_count_raises(inputs):
    # Four samples each lose a different snapshot: N * T - T rows, a multiple of T, so a
    # row count alone cannot tell; only the two untouched samples have a full sequence.
    frame = inputs[-1]
    drop = [0 * T + 0, 1 * T + 1, 2 * T + 2, 3 * T + 3]  # sample i loses snapshot i + 1
    ragged = frame.drop(index=drop).reset_index(drop=True)
    assert len(ragged) % T == 0
    with pytest.raises(ValueError, match="ragged"):
        frame_to_arrays(ragged)


def test_duplicated_snapshot_raises(inputs):
    frame = inputs[-1]
    # Sample 0 lacks snapshot 4 but has snapshot 3 twice: row count is still N * T.
    bad = frame.copy()
    bad.loc[3, "snapshot"] = 3
    assert len(bad) == N * T
    with pytest.raises(ValueError, match="ragged"):
        frame_to_arrays(bad)

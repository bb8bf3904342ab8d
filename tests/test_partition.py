"""Stage 0's seeded, class-balanced, disjoint partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqmia.data.partition import (
    PartitionError,
    check_disjoint,
    deal,
    make_partition,
    part_ids,
    role_counts,
    stratified_counts,
)
from seqmia.data.parts import PARTS

SIZES = {"target_in": 3, "target_out": 3, "shadow_in": 3, "shadow_out": 3, "distill": 6}
CLASSES = 10
PER_CLASS = 30


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    # 10 classes x 30 samples, interleaved and shuffled so sample id does not give the class.
    rng = np.random.default_rng(123)
    return rng.permutation(np.repeat(np.arange(CLASSES), PER_CLASS))


def test_columns_and_dtypes(labels):
    frame = make_partition(labels, SIZES, seed=0)
    assert list(frame.columns) == ["sample_id", "label", "role"]
    assert frame["sample_id"].dtype == np.int64
    assert frame["label"].dtype == np.int64
    assert list(frame["role"].cat.categories) == list(PARTS)


def test_parts_are_disjoint(labels):
    frame = make_partition(labels, SIZES, seed=0)
    assert not frame["sample_id"].duplicated().any()
    ids = [set(part_ids(frame, p)) for p in PARTS]
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not ids[i] & ids[j]
    check_disjoint(frame)  # does not raise


def test_part_sizes_and_class_balance(labels):
    frame = make_partition(labels, SIZES, seed=0)
    assert len(frame) == sum(SIZES.values()) * CLASSES
    for part, size in SIZES.items():
        rows = frame[frame["role"] == part]
        assert len(rows) == size * CLASSES
        counts = rows["label"].value_counts()
        assert sorted(counts.index) == list(range(CLASSES))
        assert (counts == size).all()


def test_labels_match_sample_ids(labels):
    frame = make_partition(labels, SIZES, seed=0)
    np.testing.assert_array_equal(frame["label"].to_numpy(), labels[frame["sample_id"]])
    assert frame["sample_id"].between(0, len(labels) - 1).all()


def test_sorted_by_role_then_sample_id(labels):
    frame = make_partition(labels, SIZES, seed=0)
    codes = frame["role"].cat.codes.to_numpy()
    assert (np.diff(codes) >= 0).all()
    for part in PARTS:
        ids = part_ids(frame, part)
        assert (np.diff(ids) > 0).all()


def test_same_seed_same_frame(labels):
    pd.testing.assert_frame_equal(
        make_partition(labels, SIZES, seed=7), make_partition(labels, SIZES, seed=7)
    )


def test_different_seed_different_assignment(labels):
    a = make_partition(labels, SIZES, seed=7)
    b = make_partition(labels, SIZES, seed=8)
    assert not np.array_equal(part_ids(a, "target_in"), part_ids(b, "target_in"))


def test_too_large_sizes_raise(labels):
    sizes = dict(SIZES, distill=PER_CLASS)  # needs 42 per class; each class has 30
    with pytest.raises(PartitionError) as info:
        make_partition(labels, sizes, seed=0)
    message = str(info.value)
    assert "has 30 samples" in message
    assert "42" in message


def test_missing_part_size_raises(labels):
    sizes = {k: v for k, v in SIZES.items() if k != "distill"}
    with pytest.raises(PartitionError, match="distill"):
        make_partition(labels, sizes, seed=0)


def test_check_disjoint_raises_on_duplicate(labels):
    frame = make_partition(labels, SIZES, seed=0)
    target_in = frame.index[frame["role"] == "target_in"][0]
    shadow_in = frame.index[frame["role"] == "shadow_in"][0]
    frame.loc[shadow_in, "sample_id"] = frame.loc[target_in, "sample_id"]
    with pytest.raises(PartitionError):
        check_disjoint(frame)


# --- partition.unit: total (imbalanced classes) ---------------------------------------------

IMBALANCED = np.random.default_rng(5).permutation(np.repeat(np.arange(4), [100, 50, 30, 20]))
TOTALS = {"target_in": 40, "target_out": 40, "shadow_in": 40, "shadow_out": 40, "distill": 30}


def test_stratified_counts_sum_and_proportions():
    counts = stratified_counts(np.array([100, 50, 30, 20]), 40)
    assert counts.sum() == 40
    np.testing.assert_array_equal(counts, [20, 10, 6, 4])
    assert stratified_counts(np.array([1, 1, 1]), 2).tolist() == [1, 1, 0]  # ties: lower class


def test_total_unit_sizes_disjoint_and_stratified():
    frame = make_partition(IMBALANCED, TOTALS, seed=3, unit="total")
    check_disjoint(frame)
    for part, size in TOTALS.items():
        assert (frame["role"] == part).sum() == size
    mixes = [
        frame[frame["role"] == p]["label"].value_counts().sort_index().tolist()
        for p in ("target_in", "target_out", "shadow_in", "shadow_out")
    ]
    assert all(m == mixes[0] for m in mixes)  # members and non-members: one class mix
    assert mixes[0] == [20, 10, 6, 4]
    np.testing.assert_array_equal(frame["label"], IMBALANCED[frame["sample_id"]])
    pd.testing.assert_frame_equal(frame, make_partition(IMBALANCED, TOTALS, seed=3, unit="total"))


def test_per_class_on_imbalanced_data_suggests_total():
    with pytest.raises(PartitionError, match="partition.unit: total"):
        make_partition(IMBALANCED, SIZES | {"distill": 10}, seed=0)


def test_total_unit_too_large_raises():
    with pytest.raises(PartitionError, match="in total"):
        make_partition(IMBALANCED, TOTALS | {"distill": 100}, seed=0, unit="total")


def test_total_unit_rounding_overflow_raises():
    labels = np.repeat(np.arange(3), 2)
    sizes = dict.fromkeys(PARTS, 1)  # 5 of 6 samples, but every tie goes to class 0
    with pytest.raises(PartitionError, match="class 0 has 2 samples"):
        make_partition(labels, sizes, seed=0, unit="total")


def test_deal_shuffles_each_class_once_and_deals_pools_in_order():
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    classes = np.array([0, 1])
    counts = {p: np.array([1, 1]) for p in PARTS}
    inside = np.array([True, True, True, True, False, False, False, False])
    pools = [(inside, ["target_in", "target_out"]), (~inside, ["shadow_in", "shadow_out"])]
    frame = deal(labels, classes, counts, pools, seed=5)
    rng = np.random.default_rng(5)  # the same draws, by hand: one permutation per class
    expected = {}
    for label in (0, 1):
        order = rng.permutation(np.flatnonzero(labels == label))
        first = [i for i in order if inside[i]]
        rest = [i for i in order if not inside[i]]
        for part, i in zip(
            ["target_in", "target_out", "shadow_in", "shadow_out"],
            first[:2] + rest[:2],
            strict=True,
        ):
            expected.setdefault(part, []).append(int(i))
    for part, ids in expected.items():
        assert part_ids(frame, part).tolist() == sorted(ids)
    assert role_counts(frame) == {
        "target_in": 2,
        "target_out": 2,
        "shadow_in": 2,
        "shadow_out": 2,
        "distill": 0,
    }


def test_a_partition_of_another_dataset_is_refused_by_ids_and_by_labels():
    from seqmia.base.errors import UserError
    from seqmia.data.partition import check_partition_matches

    labels = np.array([0, 1, 0, 1])
    ours = pd.DataFrame({"sample_id": [0, 3], "label": [0, 1], "role": ["distill"] * 2})
    check_partition_matches(ours, labels, "p", "d")  # indexes these labels: accepted
    with pytest.raises(UserError, match="ids 0..7.*holds 4 samples"):
        check_partition_matches(ours.assign(sample_id=[0, 7]), labels, "p", "d")
    with pytest.raises(UserError, match="gives 1 of its 2 samples other labels"):
        check_partition_matches(ours.assign(label=[1, 1]), labels, "p", "d")

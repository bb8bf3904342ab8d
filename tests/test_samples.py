"""The samples of a part as model inputs: ids, normalised inputs and labels, in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seqmia.data.inputs import input_shape, num_classes, to_model_input
from seqmia.data.samples import attack_samples, part_tensors, population_samples


def tiny() -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    rng = np.random.default_rng(0)
    dataset = {
        "x": rng.integers(0, 256, size=(10, 2, 2, 3), dtype=np.uint8),
        "y": np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]),
        "classes": np.array(["a", "b", "c"]),
        "mean": np.full((2, 2, 3), 0.5, np.float32),
        "std": np.full((2, 2, 3), 0.25, np.float32),
    }
    partition = pd.DataFrame(
        {
            "sample_id": [1, 6, 3, 8, 0, 9, 2, 4],
            "role": [
                "shadow_in",
                "shadow_in",
                "shadow_out",
                "shadow_out",
                "distill",
                "distill",
                "target_in",
                "target_out",
            ],
        }
    )
    return dataset, partition


def test_part_tensors_are_the_parts_rows_normalised() -> None:
    dataset, partition = tiny()
    ids, x, y = part_tensors(dataset, partition, "shadow_in")
    assert ids.tolist() == [1, 6]
    assert torch.equal(x, to_model_input(dataset["x"][[1, 6]], dataset["mean"], dataset["std"]))
    assert x.shape == (2, 3, 2, 2) and y.tolist() == [1, 0] and y.dtype == torch.int64


def test_attack_samples_are_members_then_nonmembers() -> None:
    dataset, partition = tiny()
    table, x, y = attack_samples(dataset, partition, "shadow")
    assert table["sample_id"].tolist() == [1, 6, 3, 8]
    assert table["part"].tolist() == ["shadow_in"] * 2 + ["shadow_out"] * 2
    assert table["member"].tolist() == [1, 1, 0, 0]
    assert table["label"].tolist() == y.tolist() == [1, 0, 0, 2]
    expected = to_model_input(dataset["x"][[1, 6, 3, 8]], dataset["mean"], dataset["std"])
    assert torch.equal(x, expected)


def test_population_is_the_distillation_part() -> None:
    dataset, partition = tiny()
    table, x, y = population_samples(dataset, partition)
    assert table.to_dict("list") == {"sample_id": [0, 9], "label": [0, 0]}
    assert x.shape == (2, 3, 2, 2) and y.tolist() == [0, 0]


def test_shape_and_classes_of_the_prepared_dataset() -> None:
    dataset, _ = tiny()
    assert input_shape(dataset["x"]) == (3, 2, 2) and num_classes(dataset) == 3


def test_released_pages_read_back_the_same_bytes(tmp_path) -> None:
    from seqmia.base.artifacts import load_npz, write_npz
    from seqmia.data.samples import release_pages, sample_tensors

    dataset, _ = tiny()
    write_npz(tmp_path / "d.npz", **dataset)
    mapped = load_npz(tmp_path / "d.npz")
    assert isinstance(mapped["x"].base, np.memmap)  # what release_pages acts on
    before = sample_tensors(mapped, np.array([7, 2]))  # releases the pages of x
    release_pages(mapped["x"])
    np.testing.assert_array_equal(mapped["x"], dataset["x"])
    after = sample_tensors(mapped, np.array([7, 2]))
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    release_pages(dataset["x"])  # an array in memory: nothing to release

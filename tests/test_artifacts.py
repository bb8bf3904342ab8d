"""Atomic artefact writers, weights-only loading and derived seeds."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from seqmia.base.artifacts import (
    atomic_path,
    load_npz,
    load_state_dict,
    read_json,
    save_state_dict,
    write_csv,
    write_json,
    write_npz,
    write_parquet,
)
from seqmia.base.seeding import derive_seed, make_generator


class Payload:
    """An arbitrary pickled object: a weights-only loader must refuse it."""

    def __init__(self) -> None:
        self.command = "rm -rf /"


class Boom(RuntimeError):
    pass


def test_atomic_path_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(Boom):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise Boom
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_atomic_path_success_writes_destination(tmp_path):
    dest = tmp_path / "file.txt"
    with atomic_path(dest) as tmp:
        assert tmp != dest and tmp.parent == dest.parent
        tmp.write_text("done")
    assert dest.read_text() == "done"
    assert list(tmp_path.iterdir()) == [dest]


def test_write_json_failure_leaves_no_file(tmp_path):
    dest = tmp_path / "metrics.json"
    with pytest.raises(TypeError):
        write_json(dest, {"ok": 1, "bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_old_content(tmp_path):
    dest = tmp_path / "metrics.json"
    write_json(dest, {"auc": 0.75})
    with pytest.raises(TypeError):
        write_json(dest, {"auc": object()})
    assert read_json(dest) == {"auc": 0.75}
    assert list(tmp_path.iterdir()) == [dest]


def test_write_json_round_trip_and_mode(tmp_path):
    dest = tmp_path / "a" / "b.json"
    obj = {"auc": 0.5, "tpr_at_fpr": {"0.001": 0.0}, "n": [1, 2]}
    write_json(dest, obj)
    assert read_json(dest) == obj
    assert dest.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode


def test_other_writers_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    write_parquet(tmp_path / "f.parquet", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), frame)
    write_csv(tmp_path / "f.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv"), frame)
    write_npz(tmp_path / "f.npz", x=np.arange(3), y=np.eye(2))
    with np.load(tmp_path / "f.npz") as z:
        np.testing.assert_array_equal(z["x"], np.arange(3))
        np.testing.assert_array_equal(z["y"], np.eye(2))


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    save_state_dict(tmp_path / "m.pt", module)
    loaded = load_state_dict(tmp_path / "m.pt")
    expected = module.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    fresh.load_state_dict(loaded)


def test_load_state_dict_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(path)


def test_derive_seed_stable_literal():
    # Fixed across processes and Python versions (sha256, not hash()).
    assert derive_seed(0, "train", "target") == 1058161152242436390


@pytest.mark.parametrize("names", [(), ("partition",), ("train", "shadow"), ("a", "b", "c")])
def test_derive_seed_type_and_range(names):
    seed = derive_seed(123, *names)
    assert type(seed) is int
    assert 0 <= seed < 2**63


def test_derive_seed_separates_streams():
    seeds = {
        derive_seed(0, "train", "target"),
        derive_seed(0, "train", "shadow"),
        derive_seed(1, "train", "target"),
        derive_seed(0, "distill", "target"),
        derive_seed(0, "train"),
    }
    assert len(seeds) == 5


def test_make_generator_uses_derived_seed():
    g = make_generator(0, "attack")
    assert g.initial_seed() == derive_seed(0, "attack")
    a = torch.rand(3, generator=make_generator(0, "attack"))
    b = torch.rand(3, generator=make_generator(0, "distill"))
    assert not torch.equal(a, b)


def test_load_npz_maps_stored_members_read_only_with_the_same_values(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(7, 4, 4, 3), dtype=np.uint8)
    arrays = {"x": x, "y": np.arange(7), "classes": np.array(["a", "bb"]), "e": np.zeros(0)}
    write_npz(tmp_path / "d.npz", **arrays)
    loaded = load_npz(tmp_path / "d.npz")
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)
    assert type(loaded["x"]) is np.ndarray and not loaded["x"].flags.writeable
    assert not loaded["x"].flags.owndata  # a view of the file, not a copy
    np.testing.assert_array_equal(loaded["x"][[5, 1]], x[[5, 1]])

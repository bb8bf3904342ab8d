"""A ``.pt2`` target runs no code from the file unless the user opted in.

``torch.export.load`` unpickles parts of an archive. Three crafted archives, each built here from
a real export, carry a payload that writes a marker file when unpickled: a weight whose config
says it is pickled, sample inputs that fail weights-only loading (torch retries them without
``weights_only``), and an opaque constant. Each test shows both that the pipeline refuses the
archive with one line and the marker never appears, and that ``torch.export.load`` on the same
file does write it, so the refusal cannot pass for want of a payload.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.export.pt2_archive._package import PT2ArchiveReader, PT2ArchiveWriter

from seqmia.models.architectures import build_model
from seqmia.params.schema import ParamsError
from seqmia.params.target import TargetParams
from seqmia.params.whole import params_from_dict
from seqmia.target.checkpoint import (
    ExportedTarget,
    load_given_target,
    load_target,
    query_given_target,
    target_input,
)
from seqmia.target.files import CheckpointError
from tasks import sections
from tests.conftest import REPO

OPT_IN = "target.run_code_in_exported_program"
SHAPE = (1, 8, 8)  # the tiny dataset's images as the model takes them: (C, H, W)
CLASSES = 10

Records = dict[str, bytes]


class Payload:
    """Unpickles as ``value`` after creating the file ``marker``: code that runs on loading."""

    def __init__(self, marker: Path, value: str = "None") -> None:
        self.marker, self.value = marker, value

    def __reduce__(self) -> tuple:
        # builtins.eval: the file needs nothing from this test module to run its code.
        return eval, (f"(open({str(self.marker)!r}, 'w').close(), {self.value})[1]",)


def torch_bytes(obj: object) -> bytes:
    """``obj`` as ``torch.save`` writes it (a pickle inside torch's zip format)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def small_cnn(seed: int = 0) -> torch.nn.Module:
    return build_model("small_cnn", SHAPE, CLASSES, torch.Generator().manual_seed(seed)).eval()


def export(model: torch.nn.Module, path: Path) -> Path:
    """``model`` saved by ``torch.export.save`` at ``path``, with a dynamic batch dimension."""
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.randn(4, *SHAPE),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def rewrite_archive(source: Path, dest: Path, edit: Callable[[Records], None]) -> Path:
    """Copy the archive ``source`` to ``dest`` through torch's own archive reader and writer,
    with its records (name -> bytes) changed by ``edit`` first. The zip container's own
    records (``.data/``) are left to the writer."""
    with PT2ArchiveReader(str(source)) as reader:
        records = {
            name: reader.read_bytes(name)
            for name in reader.get_file_names()
            if not name.startswith(".data/")
        }
    edit(records)
    with PT2ArchiveWriter(str(dest)) as writer:
        for name, data in records.items():
            writer.write_bytes(name, data)
    return dest


WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
SAMPLE_INPUTS = "data/sample_inputs/model.pt"


def pickled_weight(records: Records, marker: Path) -> None:
    """Route 1: mark the first weight as pickled; its payload runs, then hands back a parameter
    of the right shape, so the program loads and runs as if nothing happened."""
    config = json.loads(records[WEIGHTS_CONFIG])
    meta = next(iter(config["config"].values()))
    sizes = [size["as_int"] for size in meta["tensor_meta"]["sizes"]]
    meta["use_pickle"] = True
    value = f"__import__('torch').nn.Parameter(__import__('torch').zeros({sizes}))"
    records[f"data/weights/{meta['path_name']}"] = torch_bytes(Payload(marker, value))
    records[WEIGHTS_CONFIG] = json.dumps(config).encode()


def sample_inputs(records: Records, marker: Path) -> None:
    """Route 2: sample inputs ((args), {kwargs}) holding a global weights-only loading refuses;
    torch then loads them again without weights_only, and the payload hands back a tensor."""
    value = f"__import__('torch').zeros(4, {', '.join(map(str, SHAPE))})"
    records[SAMPLE_INPUTS] = torch_bytes(((Payload(marker, value),), {}))


def opaque_constant(records: Records, marker: Path) -> None:
    """Route 3: an extra constant stored as an opaque object, which torch reads with plain
    ``pickle.loads``."""
    config = json.loads(records[CONSTANTS_CONFIG])
    config["config"]["payload"] = {
        "path_name": "opaque_obj_0",
        "is_param": False,
        "use_pickle": True,
        "tensor_meta": None,
    }
    records["data/constants/opaque_obj_0"] = pickle.dumps(
        Payload(marker, "__import__('torch').zeros(1)")
    )
    records[CONSTANTS_CONFIG] = json.dumps(config).encode()


ROUTES = {
    "pickled_weight": pickled_weight,
    "sample_inputs": sample_inputs,
    "opaque_constant": opaque_constant,
}


def crafted_archive(tmp_path: Path, route: str) -> tuple[Path, Path]:
    """(archive, marker): a real export of a small CNN under ``tmp_path/target/`` rewritten with
    the payload of ``route``; the marker file does not exist yet."""
    folder = tmp_path / "target"
    folder.mkdir(exist_ok=True)
    marker = tmp_path / f"ran-{route}"
    base = export(small_cnn(), tmp_path / "base.pt2")
    archive = rewrite_archive(
        base, folder / "model.pt2", lambda records: ROUTES[route](records, marker)
    )
    return archive, marker


def tiny_dataset(n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "x": rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8),
        "y": np.arange(n) % CLASSES,
        "classes": np.array([str(c) for c in range(CLASSES)]),
        "mean": np.full((8, 8, 1), 0.5, np.float32),
        "std": np.full((8, 8, 1), 0.25, np.float32),
    }


def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def given(checkpoint: str, opt_in: bool) -> dict:
    """The raw params with a checkpoint target ``checkpoint`` and the opt-in key ``opt_in``."""
    raw = raw_params()
    raw["target"].update(
        source="checkpoint",
        checkpoint=checkpoint,
        members="target/members.txt",
        nonmembers="target/nonmembers.txt",
        run_code_in_exported_program=opt_in,
    )
    return raw


def target_params(checkpoint: str, opt_in: bool) -> TargetParams:
    """A checkpoint target's section as a stage gets it, without whole-file validation (which
    would refuse the ``.pt2`` before the loader is reached)."""
    base = params_from_dict(raw_params()).target
    return dataclasses.replace(
        base,
        source="checkpoint",
        checkpoint=checkpoint,
        members="target/members.txt",
        nonmembers="target/nonmembers.txt",
        run_code_in_exported_program=opt_in,
    )


def load_as_a_stage(root: Path, checkpoint: str, opt_in: bool) -> torch.nn.Module:
    """``load_given_target`` as the partition, train and distill stages call it."""
    train = params_from_dict(raw_params()).train
    given = sections.given_target(target_params(checkpoint, opt_in), train, root)
    return load_given_target(given, tiny_dataset(), torch.device("cpu"))


def load_directly(archive: Path) -> torch.nn.Module:
    """``torch.export.load`` of ``archive``, as the loader calls it with the opt-in.

    Logging is off for the call: torch's warning after its weights_only fallback has two ``%s``
    and one argument; a stage only prints a logging error for it, but pytest's log capture raises
    it out of ``torch.export.load`` and would hide that the load itself succeeds."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        return torch.export.load(str(archive)).module()
    finally:
        logging.disable(before)


def assert_refused(err: pytest.ExceptionInfo, file: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert file in message and "can run code" in message and OPT_IN in message
    assert "torch.save(model.state_dict(), path)" in message


# ----- the three payload routes ---------------------------------------------------------------


@pytest.mark.parametrize("route", list(ROUTES))
def test_crafted_archive_is_refused_and_would_have_run_its_payload(
    tmp_path: Path, route: str
) -> None:
    archive, marker = crafted_archive(tmp_path, route)

    with pytest.raises(CheckpointError) as err:
        load_as_a_stage(tmp_path, "target/model.pt2", opt_in=False)
    assert_refused(err, "model.pt2")
    with pytest.raises(CheckpointError) as err:  # the core loader refuses by default
        load_target(archive, small_cnn, "ignored", torch.device("cpu"))
    assert_refused(err, "model.pt2")
    with pytest.raises(ParamsError) as err:  # and so does validation, before any stage work
        params_from_dict(given("target/model.pt2", opt_in=False))
    assert_refused(err, "target/model.pt2")
    assert not marker.exists()

    # The same file is a real payload: what the loader would call with the opt-in runs it, and
    # the program still loads and answers, so nothing would have looked wrong.
    program = load_directly(archive)
    assert marker.exists()
    assert program(torch.randn(3, *SHAPE)).shape == (3, CLASSES)


def test_a_pt2_under_another_name_runs_no_code(tmp_path: Path) -> None:
    archive, marker = crafted_archive(tmp_path, "pickled_weight")
    # A .pt name passes validation; behind a symbolic link the loader sees the real .pt2 file
    # and still refuses it without the opt-in.
    (tmp_path / "target" / "link.pt").symlink_to(archive)
    params_from_dict(given("target/link.pt", opt_in=False))
    with pytest.raises(CheckpointError) as err:
        load_as_a_stage(tmp_path, "target/link.pt", opt_in=False)
    assert_refused(err, "model.pt2")
    # Renamed, it is read as a state dict: weights only, which the archive is not.
    archive.rename(tmp_path / "target" / "renamed.pt")
    with pytest.raises(CheckpointError, match="does not load as a weights-only state dict"):
        load_as_a_stage(tmp_path, "target/renamed.pt", opt_in=True)
    assert not marker.exists()


# ----- the opt-in -----------------------------------------------------------------------------


def test_trusted_exported_program_loads_with_the_opt_in(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    model = small_cnn(3)
    export(model, tmp_path / "target" / "model.pt2")
    params_from_dict(given("target/model.pt2", opt_in=True))
    loaded = load_as_a_stage(tmp_path, "target/model.pt2", opt_in=True)
    assert isinstance(loaded, ExportedTarget)
    train = params_from_dict(raw_params()).train
    target = sections.given_target(target_params("target/model.pt2", True), train, tmp_path)
    dataset, ids = tiny_dataset(), np.arange(6)
    with torch.no_grad():
        expected = model(target_input(dataset, ids, target.preprocessing))
    assert torch.allclose(query_given_target(target, dataset, loaded, ids, batch=4), expected)


def test_params_refuse_a_pt2_checkpoint_without_the_opt_in() -> None:
    assert params_from_dict(raw_params()).target.run_code_in_exported_program is False
    with pytest.raises(ParamsError) as err:
        params_from_dict(given("target/model.pt2", opt_in=False))
    assert_refused(err, "target/model.pt2")
    assert params_from_dict(given("target/model.pt2", opt_in=True)).target.source == "checkpoint"
    bad = given("target/model.pt2", opt_in=False)
    bad["target"]["run_code_in_exported_program"] = "yes"
    with pytest.raises(ParamsError, match=f"'{OPT_IN}' must be true or false"):
        params_from_dict(bad)


def test_opt_in_on_a_state_dict_checkpoint_is_harmless(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    for opt_in in (False, True):
        assert params_from_dict(given("target/model.pt", opt_in)).target.source == "checkpoint"
    # A state dict still loads weights only with the key set: a pickled payload is refused and
    # never runs.
    marker = tmp_path / "ran"
    torch.save({"weight": Payload(marker)}, tmp_path / "target" / "model.pt")
    with pytest.raises(CheckpointError, match="does not load as a weights-only state dict"):
        load_as_a_stage(tmp_path, "target/model.pt", opt_in=True)
    assert not marker.exists()
    torch.save(small_cnn(2).state_dict(), tmp_path / "target" / "model.pt")
    loaded = load_as_a_stage(tmp_path, "target/model.pt", opt_in=True)  # train.model: small_cnn
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(loaded(x), small_cnn(2)(x))

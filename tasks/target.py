"""A given (checkpoint) target: partition around its member lists, validate and record it, and
query it for logits. Only used when ``target.source`` is ``checkpoint``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger, task

import seqmia.params.target  # noqa: F401 - the schema of params.target, which it reads
from seqmia.artifacts import read_json, write_json, write_parquet
from seqmia.checkpoint import (
    EXPORTED_SUFFIX,
    CheckpointError,
    Preprocessing,
    check_disjoint_lists,
    count_target_parameters,
    file_sha256,
    given_target_partition,
    image_folder_index,
    load_factory,
    load_target,
    parse_sample_list,
    preprocess,
    read_sample_list,
    target_file,
    target_logits,
)
from seqmia.data import data_root
from seqmia.inference import accuracy
from seqmia.layout import Layout
from seqmia.params.partition import PARTS
from seqmia.params.schema import StageParams as Params
from seqmia.partition import check_disjoint, part_ids
from seqmia.runtime import resolve_device
from seqmia.seeding import derive_seed, make_generator
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.models import new_model, num_classes


def import_export_machinery(params: Params) -> None:
    """Import what loading a ``.pt2`` program needs, in the flow's thread before any task starts:
    ``torch.export.load`` imports torch._dynamo lazily, and so does the first optimiser a sibling
    task builds; two threads doing that at once can meet a half-initialised module."""
    if params.target.source == "checkpoint" and params.target.checkpoint.endswith(EXPORTED_SUFFIX):
        import torch._dynamo  # noqa: F401


def member_lists(params: Params, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Sample ids of the target's members and non-members, checked: known and disjoint."""
    dataset = load_prepared(layout.dataset_file)
    # info.json writes the data root as a placeholder (outputs do not depend on where it is).
    source = read_json(layout.dataset_info).get("source", "")
    paths = image_folder_index(source.replace("$SEQMIA_DATA_ROOT", str(data_root().resolve())))
    lists = []
    for key in ("members", "nonmembers"):
        path = target_file(layout.root, getattr(params.target, key), f"target.{key}")
        entries = read_sample_list(path)
        lists.append(parse_sample_list(entries, len(dataset["y"]), paths, f"target.{key}"))
    check_disjoint_lists(*lists)
    return lists[0], lists[1]


def architecture(params: Params) -> str:
    """What builds the target: the factory, an exported program, or ``train.model``."""
    if params.target.checkpoint.endswith(EXPORTED_SUFFIX):
        return "exported program"
    return params.target.factory or params.train.model


def load_given_target(params: Params, layout: Layout, device: torch.device) -> torch.nn.Module:
    """The checkpoint target, loaded (weights only for state dicts) and ready to query."""
    dataset = load_prepared(layout.dataset_file)
    path = target_file(layout.root, params.target.checkpoint, "target.checkpoint")
    if params.target.factory:
        build = load_factory(params.target.factory)
    else:  # built for the input the target takes, which its preprocessing may resize
        shape = tuple(query_input(params, dataset, np.arange(1)).shape[1:])
        build = lambda: new_model(params, dataset, make_generator(0, "load"), shape)  # noqa: E731
    return load_target(path, build, architecture(params), device)


def preprocessing(params: Params) -> Preprocessing:
    """The input preprocessing the target expects (``target.*``)."""
    t = params.target
    return Preprocessing(mean=t.mean, std=t.std, resize=t.resize, channels=t.channels)


def query_input(params: Params, dataset: dict[str, np.ndarray], ids: np.ndarray) -> torch.Tensor:
    """The given target's input (n, ...) for samples ``ids``: its own preprocessing."""
    return preprocess(dataset["x"][ids], preprocessing(params), dataset["mean"], dataset["std"])


def query_target(
    params: Params, layout: Layout, model: torch.nn.Module, ids: np.ndarray, batch_size: int = 500
) -> torch.Tensor:
    """Logits (n, classes) of the given target on samples ``ids``, preprocessed its way."""
    inputs = query_input(params, load_prepared(layout.dataset_file), ids)
    return target_logits(model, inputs, batch_size)


def check_target_runs(params: Params, layout: Layout, model: torch.nn.Module, ids) -> None:
    """Query the target on two samples: it must take the preprocessed input and give one logit
    per class of the dataset."""
    classes = num_classes(load_prepared(layout.dataset_file))
    try:
        logits = query_target(params, layout, model, ids[:2])
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's model refused our input
        raise CheckpointError(
            f"the target does not run on the preprocessed input ({str(err).splitlines()[0]}); "
            "check target.resize, target.channels, target.mean/std"
        ) from err
    if logits.ndim != 2 or logits.shape[1] != classes:
        raise CheckpointError(
            f"the target gives outputs of shape {tuple(logits.shape[1:])} per sample, but the "
            f"dataset has {classes} classes"
        )


@task(**ARTEFACT_TASK)
def partition_around_target(params: Params, layout: Layout) -> dict[str, int]:
    """Check the given target (lists, checkpoint, a trial query) before any work, then deal
    target_in/out from its member lists and the other parts from samples in neither list."""
    members, nonmembers = member_lists(params, layout)
    model = load_given_target(params, layout, torch.device("cpu"))
    check_target_runs(params, layout, model, members)
    labels = load_prepared(layout.dataset_file)["y"]
    requested = {part: getattr(params.partition, part) for part in PARTS}
    frame = given_target_partition(
        labels, members, nonmembers, requested, derive_seed(params.seed, "partition"),
        unit=params.partition.unit,
    )  # fmt: skip
    check_disjoint(frame)
    write_parquet(layout.partition_file, frame)
    counts = {str(k): int(v) for k, v in frame["role"].value_counts(sort=False).items()}
    get_run_logger().info(
        "given target: %d members, %d non-members listed; partition %s",
        len(members), len(nonmembers), counts,
    )  # fmt: skip
    return counts


@task(**ARTEFACT_TASK, task_run_name="record-target")
def record_target(params: Params, layout: Layout) -> dict:
    """Validate the given target and write its report in the trained targets' format: parameter
    count, accuracy on its members (train) and non-members (test), and the files' hashes."""
    device = resolve_device(params.device)
    partition = pd.read_parquet(layout.partition_file)
    labels = load_prepared(layout.dataset_file)["y"]
    model = load_given_target(params, layout, device)
    acc = {}
    for part in ("target_in", "target_out"):
        ids = part_ids(partition, part)
        logits = query_target(params, layout, model, ids)
        acc[part] = accuracy(logits, torch.from_numpy(labels[ids].astype(np.int64)))
    t = params.target
    hashes = {
        key: file_sha256(target_file(layout.root, getattr(t, key), f"target.{key}"))
        for key in ("checkpoint", "members", "nonmembers")
    }
    report = {
        "role": "target",
        "model": architecture(params),
        "parameters": count_target_parameters(model),
        "train_accuracy": acc["target_in"],
        "test_accuracy": acc["target_out"],
        "train_samples": len(part_ids(partition, "target_in")),
        "history": [],
        "source": "checkpoint",
        "checkpoint": t.checkpoint,
        "factory": t.factory,
        "sha256": hashes,
        "preprocessing": {"mean": t.mean, "std": t.std, "resize": t.resize, "channels": t.channels},
    }
    write_json(layout.model_report("target"), report)
    get_run_logger().info(
        "target (checkpoint %s, %s, %d parameters): accuracy %.4f on members, %.4f on "
        "non-members", t.checkpoint, report["model"], report["parameters"],
        report["train_accuracy"], report["test_accuracy"],
    )  # fmt: skip
    return {"role": "target", **{k: report[k] for k in ("train_accuracy", "test_accuracy")}}

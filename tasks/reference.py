"""Reference: LiRA's reference models, trained like the target on draws from the attacker's data.

Every draw comes from the shadow pool (shadow_in + shadow_out) only; no target sample is ever
trained on. Each model then scores the attack samples of both roles: on the target's samples
every reference model is OUT (offline LiRA), on the shadow pool some are IN and some OUT, which
lets the attacker calibrate a decision threshold on its own data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from seqmia.artifacts import save_state_dict, write_json, write_parquet
from seqmia.config import ROLES, Params
from seqmia.data.samples import attack_samples, population_samples, sample_tensors
from seqmia.layout import Layout
from seqmia.lira import reference_training_sets
from seqmia.partition import part_ids
from seqmia.runtime import resolve_device
from seqmia.seeding import derive_seed, make_generator
from seqmia.training import predict_logits
from tasks.common import ARTEFACT_TASK, load_prepared
from tasks.models import train_classifier
from tasks.stopping import raise_if_stopped


def attacker_pool(partition: pd.DataFrame) -> np.ndarray:
    """Sorted ids (P,) of the attacker's labelled data the reference models draw from."""
    return np.sort(np.concatenate([part_ids(partition, p) for p in ("shadow_in", "shadow_out")]))


def training_ids(params: Params, partition: pd.DataFrame, index: int) -> np.ndarray:
    """Sorted sample ids that reference model ``index`` (1-based) trains on.

    The draws come one model after another from one generator seeded by ``seed``, so model i's
    set stays the same when ``reference.models`` grows; each is the target's training-set size.
    """
    pool = attacker_pool(partition)
    labels = partition.set_index("sample_id").loc[pool, "label"].to_numpy()
    size = len(part_ids(partition, "target_in"))
    rng = np.random.default_rng(derive_seed(params.seed, "reference"))
    inside = reference_training_sets(labels, size, params.reference.models, rng)
    return pool[inside[index - 1]]


@task(**ARTEFACT_TASK, task_run_name="reference-{index}")
def train_reference(index: int, params: Params, layout: Layout) -> dict:
    """Train reference model ``index``; save it, its report and its logits on every attack
    sample (with whether it trained on that sample) and on RMIA's population samples."""
    logger = get_run_logger()
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    ids = training_ids(params, partition, index)
    left_out = np.setdiff1d(attacker_pool(partition), ids)
    model, report = train_classifier(
        params, dataset, sample_tensors(dataset, ids), sample_tensors(dataset, left_out),
        make_generator(params.seed, "reference", str(index)), resolve_device(params.device),
        logger, label=f"reference {index}",
    )  # fmt: skip
    frames = []
    for role in ROLES:
        samples, inputs, _ = attack_samples(dataset, partition, role)
        logits = predict_logits(model, inputs).numpy()
        frame = samples[["sample_id"]].assign(role=role, in_training=samples["sample_id"].isin(ids))
        frames.append(frame.assign(**{f"logit_{c}": logits[:, c] for c in range(logits.shape[1])}))
    # RMIA's population samples z (the distillation part; never trained on by any model here).
    population, inputs, _ = population_samples(dataset, partition)
    logits = predict_logits(model, inputs).numpy()
    frame = population[["sample_id"]].assign(role="population", in_training=False)
    frames.append(frame.assign(**{f"logit_{c}": logits[:, c] for c in range(logits.shape[1])}))
    raise_if_stopped()
    save_state_dict(layout.reference_model_file(index), model)
    write_json(layout.reference_report(index), {"index": index, **report})
    write_parquet(layout.reference_logits_file(index), pd.concat(frames, ignore_index=True))
    keep = ("train_accuracy", "test_accuracy")
    return {"index": index, **{k: report[k] for k in keep}}

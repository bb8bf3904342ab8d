"""Reference: LiRA's reference models, trained like the target on draws from the attacker's data.

Every draw comes from the shadow pool (shadow_in + shadow_out) only; no target sample is ever
trained on. Each model then scores the attack samples of both roles: on the target's samples
every reference model is OUT (offline LiRA), on the shadow pool some are IN and some OUT, which
lets the attacker calibrate a decision threshold on its own data.
"""

from __future__ import annotations

import time

import pandas as pd
from prefect import get_run_logger, task

from seqmia.attacks.lira import reference_logits_table, reference_training_ids
from seqmia.base.artifacts import save_state_dict, write_json, write_parquet
from seqmia.base.runtime import resolve_device
from seqmia.base.seeding import make_generator
from seqmia.base.stopping import raise_if_stopped, stop_requested
from seqmia.data.batches import stored_inputs
from seqmia.data.inputs import input_shape, num_classes
from seqmia.data.parts import ROLES
from seqmia.data.samples import attack_samples, population_samples
from seqmia.models.build import new_model
from seqmia.models.inference import predict_logits
from seqmia.params.dp import DpParams
from seqmia.params.reference import ReferenceParams
from seqmia.params.train import TrainParams
from seqmia.training.classifier import epoch_logger, train_classifier
from tasks import sections
from tasks.common import ARTEFACT_TASK, load_prepared, record_timing
from tasks.layout import Layout


@task(**ARTEFACT_TASK, task_run_name="reference-{index}")
def train_reference(
    index: int,
    train: TrainParams,
    dp: DpParams,
    reference: ReferenceParams,
    seed: int,
    device: str,
    layout: Layout,
) -> dict:
    """Train reference model ``index``; save it, its report and its logits on every attack
    sample (with whether it trained on that sample) and on RMIA's population samples."""
    logger, device = get_run_logger(), resolve_device(device)
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    ids, left_out = reference_training_ids(partition, index, reference.models, seed)
    generator = make_generator(seed, "reference", str(index))
    private = sections.private_plan(dp, train, len(ids))
    model = new_model(
        sections.architecture(train, dp), input_shape(dataset["x"]), num_classes(dataset), generator
    )
    started = time.perf_counter()
    model, report = train_classifier(
        model.to(device),
        stored_inputs(dataset, ids, device),
        stored_inputs(dataset, left_out, device),
        sections.recipe(train),
        generator,
        on_epoch=epoch_logger(logger, f"reference {index} train", train.epochs),
        should_stop=stop_requested,
        options=sections.fit_options(train, device, private),
    )
    record_timing(f"reference {index} train", time.perf_counter() - started)
    report = {"model": train.model, **report}
    attack = {}
    for role in ROLES:
        samples, inputs, _ = attack_samples(dataset, partition, role)
        attack[role] = (samples["sample_id"].to_numpy(), predict_logits(model, inputs).numpy())
    population, inputs, _ = population_samples(dataset, partition)
    population = (population["sample_id"].to_numpy(), predict_logits(model, inputs).numpy())
    raise_if_stopped()
    save_state_dict(layout.reference_model_file(index), model)
    write_json(layout.reference_report(index), {"index": index, **report})
    write_parquet(
        layout.reference_logits_file(index), reference_logits_table(attack, population, ids)
    )
    return {
        "index": index,
        "train_accuracy": report["train_accuracy"],
        "test_accuracy": report["test_accuracy"],
    }

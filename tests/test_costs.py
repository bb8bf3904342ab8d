"""Each attack's training cost: the work pieces it needs, counted from the run's reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqmia.attacks.quantile import holdout_rows
from seqmia.audit.costs import (
    Work,
    attack_costs,
    quantile_fit_size,
    training_work,
    work_of,
    work_table,
)


def _params(attacks: list[str]) -> dict:
    recipe = {"epochs": 7}
    return {
        "distill": {"epochs": 5, "shadow_extra_epochs": 2},
        "attack": {"epochs": 11},
        "quantile": {"holdout": 0.2, "epochs": 3},
        "baselines": {
            "attacks": attacks,
            "val_fraction": 0.25,
            "nn_posterior": {"epochs": 13},
            "trajectory_mia": recipe,
            "seqmia_ablations": {"epochs": 17},
        },
    }


def test_training_work_counts_each_model_from_what_ran() -> None:
    reports = {
        "target": {"train_samples": 999, "history": [0] * 99},  # the audited model: no cost
        "shadow": {"train_samples": 40, "history": [0] * 6},
        "reference_1": {"train_samples": 40, "history": [0] * 6},
        "reference_2": {"train_samples": 40, "history": [0] * 5},
    }
    members = np.array([1] * 8 + [0] * 8)  # 25% held out of each: 12 rows fit
    work = training_work(
        _params(["nn_posterior", "seqmia_single_metric"]),
        reports,
        {"train_sequences": 12, "ensemble": 2},
        members,
        population=50,
        metrics=["loss", "max"],
    )
    assert work["shadow_model"] == Work(1, 240)
    assert work["reference_models"] == Work(2, 240 + 200)
    assert work["distillation"] == Work(2, 50 * 5 + 50 * 7)  # the shadow student's extra epochs
    assert work["seqmia_attack"] == Work(2, 2 * 12 * 11, "attack")
    assert work["quantile_regressors"] == Work(2, 2 * 40 * 3)
    assert work["nn_posterior"] == Work(1, 12 * 13, "attack")
    assert work["seqmia_only_loss"] == work["seqmia_only_max"] == Work(1, 12 * 17, "attack")
    assert "trajectory_mia" not in work  # not chosen


@pytest.mark.parametrize("population", [2, 3, 10, 51, 5000])
@pytest.mark.parametrize("holdout", [0.01, 0.2, 0.9])
def test_quantile_fit_size_is_what_the_regressor_fits_on(population: int, holdout: float) -> None:
    fit, _ = holdout_rows(population, holdout, torch.Generator().manual_seed(0))
    assert quantile_fit_size(population, holdout) == len(fit)


def test_each_attack_counts_the_work_it_uses_once_and_shared_work_is_listed_once() -> None:
    work = {
        "shadow_model": Work(1, 100),
        "distillation": Work(2, 30),
        "seqmia_attack": Work(1, 4, "attack"),
        "trajectory_mia": Work(1, 5, "attack"),
        "reference_models": Work(8, 800),
        "quantile_regressors": Work(2, 60),
    }
    results = ["seqmia", "trajectory_mia", "lira_offline", "quantile_mia", "loss", "loss_cc"]
    costs = attack_costs(results, work)
    assert costs["seqmia"] == {
        "models": 4,
        "sample_epochs": 130,  # the classifiers': shadow model and students
        "attack_sample_epochs": 4,  # the attack model's, counted apart
        "work": ["shadow_model", "distillation", "seqmia_attack"],
    }
    assert costs["trajectory_mia"]["attack_sample_epochs"] == 5
    assert costs["lira_offline"] == {
        "models": 9,
        "sample_epochs": 900,
        "attack_sample_epochs": 0,
        "work": ["shadow_model", "reference_models"],
    }
    assert costs["quantile_mia"]["models"] == 3
    only_shadow = {
        "models": 1,
        "sample_epochs": 100,
        "attack_sample_epochs": 0,
        "work": ["shadow_model"],
    }
    assert costs["loss"] == costs["loss_cc"] == only_shadow
    table = work_table(results, work)
    assert table["shadow_model"] == {
        "models": 1,
        "sample_epochs": 100,
        "kind": "classifier",
        "used_by": results,
    }
    assert table["distillation"]["used_by"] == ["seqmia", "trajectory_mia"]
    assert "seqmia_attack" in table and list(table) == list(work)  # work order, each once


def test_a_kind_of_work_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown kind of work"):
        Work(1, 1, "gpu")


def test_work_of_names_the_result_own_model_for_shadow_trained_attacks() -> None:
    assert work_of("seqmia_only_sd") == ("shadow_model", "distillation", "seqmia_only_sd")
    assert work_of("nn_posterior") == ("shadow_model", "nn_posterior")
    with pytest.raises(KeyError, match="no attack of the registry"):
        work_of("made_up")

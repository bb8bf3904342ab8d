"""The budget-matched comparison's core: fewer snapshots, timings, rows, table and figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqmia.attacks.seqmia.frames import frame_to_arrays
from seqmia.audit.budget import (
    budget_markdown,
    budget_point,
    check_budget_grid,
    fewer_snapshots,
    latest_timings,
    plot_budget,
    summarise,
    work_seconds,
)
from seqmia.base.errors import UserError


def _frame(samples: int = 3, steps: int = 5) -> pd.DataFrame:
    """A long sequence frame whose loss is 10 * sample + step (step ``steps``: the original)."""
    rows = [
        {
            "sample_id": s,
            "part": "shadow_in",
            "member": s % 2,
            "label": 0,
            "snapshot": t,
            "loss": 10.0 * s + t,
        }
        for s in range(samples)
        for t in range(1, steps + 1)
    ]
    return pd.DataFrame(rows)


def test_fewer_snapshots_keeps_the_first_n_and_the_original_model() -> None:
    cut = fewer_snapshots(_frame(steps=5), 2)  # 4 snapshots + the original -> 2 + the original
    samples, values = frame_to_arrays(cut, ["loss"])
    assert values.shape == (3, 3, 1)
    np.testing.assert_array_equal(values[1, :, 0], [11.0, 12.0, 15.0])
    assert samples["sample_id"].tolist() == [0, 1, 2]
    same = fewer_snapshots(_frame(steps=5), 4)
    np.testing.assert_array_equal(frame_to_arrays(same, ["loss"])[1], frame_to_arrays(_frame())[1])
    for n in (0, 5):
        with pytest.raises(ValueError, match="snapshots asked"):
            fewer_snapshots(_frame(steps=5), n)


def test_grid_checks_name_what_to_change() -> None:
    check_budget_grid([1, 2, 4, 8], [5, 10, 20], "step", 0)
    with pytest.raises(UserError, match="--references"):
        check_budget_grid([0, 2], [5], "step", 0)
    with pytest.raises(UserError, match="--snapshots"):
        check_budget_grid([1], [5, 5], "step", 0)
    with pytest.raises(UserError, match="'train.schedule' is 'cosine'.*allowed: step"):
        check_budget_grid([1], [5], "cosine", 0)
    with pytest.raises(UserError, match="'distill.shadow_extra_epochs' is 2"):
        check_budget_grid([1], [5], "step", 2)


def test_latest_timings_take_the_last_record_of_the_experiment() -> None:
    lines = [
        {"what": "shadow train", "seconds": 5.0, "experiment": "a"},
        {"what": "shadow train", "seconds": 7.0, "experiment": "b"},
        {"what": "shadow train", "seconds": 6.0, "experiment": "a"},
    ]
    assert latest_timings(lines, "a") == {"shadow train": 6.0}
    assert latest_timings(lines, "c") == {}


def test_work_seconds_sum_the_pieces_and_prorate_the_distillation() -> None:
    timings = {
        "reference 1 train": 10.0,
        "reference 2 train": 12.0,
        "distill target": 30.0,
        "distill shadow": 50.0,
        "baseline nn_posterior": 3.0,
    }
    assert work_seconds("reference_models", timings, 2, 1.0) == 22.0
    assert work_seconds("reference_models", timings, 3, 1.0) is None  # model 3 untimed
    assert work_seconds("distillation", timings, 0, 0.25) == 20.0
    assert work_seconds("nn_posterior", timings, 0, 1.0) == 3.0
    assert work_seconds("shadow_model", timings, 0, 1.0) is None


def _report(auc: float, tpr: float, sample_epochs: int) -> dict:
    return {
        "auc": auc,
        "tpr_at_fpr": {"0.001": tpr / 10, "0.01": tpr},
        "tpr_at_zero_fpr": 0.0,
        "cost": {
            "models": 2,
            "sample_epochs": sample_epochs,
            "attack_sample_epochs": 7,
            "work": ["shadow_model"],
        },
    }


def test_rows_give_mean_and_sd_over_seeds_and_the_table_lists_cheapest_first(
    tmp_path: Path,
) -> None:
    points = [
        budget_point("seqmia", "n=5", 0, _report(0.8, 0.2, 300), 10.0),
        budget_point("seqmia", "n=5", 1, _report(0.9, 0.4, 300), None),
        budget_point("lira_offline", "k=1", 0, _report(0.7, 0.1, 200), 4.0),
        budget_point("lira_offline", "k=1", 1, _report(0.7, 0.1, 200), 6.0),
    ]
    rows = summarise(points)
    seqmia = rows[0]
    assert seqmia["seeds"] == [0, 1] and seqmia["auc"][0] == pytest.approx(0.85)
    assert seqmia["auc"][1] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert seqmia["tpr_at_fpr"]["0.01"][0] == pytest.approx(0.3)
    assert seqmia["seconds"] == 10.0 and seqmia["timed_seeds"] == 1
    assert rows[1]["seconds"] == 5.0 and rows[1]["auc"][1] == 0.0
    table = budget_markdown(rows).splitlines()
    assert "TPR@0.1% FPR" in table[0] and "TPR@1% FPR" in table[0]
    assert table[2].startswith("| lira_offline | k=1 | 2 | 200 | 7 | 5 |")
    assert "| 0.300 ± 0.141 |" in table[3]
    plot_budget(rows, tmp_path / "budget.png")
    assert (tmp_path / "budget.png").read_bytes()[:4] == b"\x89PNG"

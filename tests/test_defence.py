"""The privacy-utility comparison: rows from audited runs, the table, the figure, the runs."""

from __future__ import annotations

from flows.defence import runs_of
from seqmia.audit.defence import defence_row, defence_table, plot_defence


def metrics(test_acc: float, tpr: float, dp: dict | None) -> dict:
    attacks = {
        "seqmia": {"auc": 0.6, "tpr_at_fpr": {"0.01": tpr}},
        "lira_offline": {"auc": 0.55, "tpr_at_fpr": {"0.01": tpr + 0.01}},
    }
    found = {
        "attacks": attacks,
        "models": {"target": {"train_accuracy": 0.9, "test_accuracy": test_acc}},
        "privacy_bound": {"epsilon_lower": 3.0, "delta": 1e-5, "attacks_tested": 2},
    }
    return found if dp is None else {**found, "dp": dp}


def dp(spent: float, lower: float) -> dict:
    return {
        "epsilon_spent": spent,
        "target_epsilon": spent,
        "noise_multiplier": 1.1,
        "epsilon_lower": lower,
        "delta": 1e-5,
        "attacks_tested": 2,
        "consistent": lower <= spent,
    }


def test_rows_take_the_bound_at_the_guarantees_delta_and_the_strongest_attack(tmp_path):
    plain = defence_row("no DP", 0, metrics(0.6, 0.2, None))
    private = defence_row("ε=4", 0, metrics(0.4, 0.02, dp(4.0, 0.5)))
    assert plain["epsilon_spent"] is None and plain["epsilon_lower"] == 3.0
    assert plain["consistent"] is None and plain["strongest"] == "lira_offline"
    assert private["epsilon_spent"] == 4.0 and private["epsilon_lower"] == 0.5
    assert private["consistent"] and private["strongest_tpr"] == 0.03
    broken = defence_row("ε=1", 0, metrics(0.3, 0.02, dp(1.0, 2.0)))
    table = defence_table([plain, private, broken])
    assert table.count("\n") == 5  # header, rule, three runs
    assert "| no DP | 0 | – | – |" in table and "**NO: VIOLATION**" in table
    plot_defence([plain, private, broken], tmp_path / "d.png", title="t")
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_cover_every_seed_without_dp_and_at_each_epsilon():
    runs = runs_of([1.0, 16.0], [0, 2])
    assert list(runs) == [
        ("no DP", 0, "dp-none-s0"),
        ("no DP, DP recipe", 0, "dp-recipe-s0"),
        ("ε=1", 0, "dp-eps1-s0"),
        ("ε=16", 0, "dp-eps16-s0"),
        ("no DP", 2, "dp-none-s2"),
        ("no DP, DP recipe", 2, "dp-recipe-s2"),
        ("ε=1", 2, "dp-eps1-s2"),
        ("ε=16", 2, "dp-eps16-s2"),
    ]
    assert runs[("no DP", 2, "dp-none-s2")] == {"seed": 2, "dp.enabled": False}
    assert runs[("ε=16", 2, "dp-eps16-s2")] == {
        "seed": 2,
        "train.momentum": 0.0,
        "dp.enabled": True,
        "dp.epsilon": 16.0,
        "dp.noise_multiplier": 0.0,
    }
    other = runs_of([4.0], [0], {"train.lr": 0.05})
    assert other[("no DP, DP recipe", 0, "dp-recipe-s0")] == {
        "seed": 0,
        "train.lr": 0.05,
        "dp.enabled": False,
    }

"""The experiment flow's helpers: params overrides written in place, stages in order."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.experiment import metrics_table, write_overrides
from tests.conftest import REPO


def test_write_overrides_sets_dotted_keys_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    write_overrides(path, {"attack.epochs": 7, "sequences.metrics": ["loss", "max"], "seed": 3})
    text = path.read_text()
    params = yaml.safe_load(text)
    assert params["attack"]["epochs"] == 7 and params["seed"] == 3
    assert params["sequences"]["metrics"] == ["loss", "max"]
    assert "# One source of configuration." in text  # comments survive
    original = yaml.safe_load((REPO / "params.yaml").read_text())
    params["attack"]["epochs"], params["seed"] = original["attack"]["epochs"], original["seed"]
    params["sequences"]["metrics"] = original["sequences"]["metrics"]
    assert params == original  # nothing else moved
    before = (REPO / "params.yaml").read_text().splitlines()
    changed = [new for old, new in zip(before, text.splitlines(), strict=True) if old != new]
    assert len(changed) == 3  # one line per override, formatting and comments kept
    assert changed[-1].strip() == "epochs: 7"


def test_write_overrides_without_overrides_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("a: 1   # keep 'this' formatting\n")
    write_overrides(path, {})
    assert path.read_text() == "a: 1   # keep 'this' formatting\n"


def test_metrics_table_sorts_attacks_by_auc() -> None:
    metrics = {
        "attacks": {
            "loss": {"auc": 0.7, "tpr_at_fpr": {"0.01": 0.02}},
            "seqmia": {"auc": 0.9, "tpr_at_fpr": {"0.01": 0.3}},
        }
    }
    rows = metrics_table(metrics)
    assert [r["attack"] for r in rows] == ["seqmia", "loss"]
    assert rows[0]["tpr@0.01"] == 0.3

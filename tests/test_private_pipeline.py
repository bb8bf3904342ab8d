"""DP-SGD end to end on the tiny digits configuration: ``dvc repro`` with ``dp.enabled`` trains
the target, shadow and reference models with Opacus, records the ε spent, and the audit
checks its empirical lower bound against it."""

from __future__ import annotations

import json

import pytest
import torch

from tests.test_pipeline import env, make_repo, repro, tiny_params  # noqa: F401 - env: fixture

pytestmark = pytest.mark.slow

EPSILON = 8.0


@pytest.fixture(scope="module")
def private_run(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]):  # noqa: F811
    params = tiny_params()
    params["dp"].update(enabled=True, epsilon=EPSILON, max_grad_norm=1.0, delta=1e-4)
    params["reference"]["models"] = 1
    params["distill"]["epochs"] = 3
    repo = make_repo(tmp_path_factory.mktemp("private") / "repo", params)
    return repo, repro(repo, env)


def test_dp_models_spend_the_asked_epsilon_and_the_audit_checks_it(private_run) -> None:
    repo, _ = private_run
    target = json.loads((repo / "data" / "models" / "target.json").read_text())
    reference = json.loads((repo / "data" / "reference" / "model_1.json").read_text())
    for report in (target, reference):
        dp = report["dp"]
        assert dp["epsilon_spent"] == pytest.approx(EPSILON, rel=0.05)
        assert dp["target_epsilon"] == EPSILON and dp["delta"] == 1e-4
        assert dp["noise_multiplier"] > 0 and dp["accountant"] == "rdp"
        assert "GroupNorm" in dp["adaptation"]
        assert [e["epsilon"] for e in report["history"]][-1] == dp["epsilon_spent"]
    # Adapted the standard way: group norm, so no batch-norm running statistics are saved.
    weights = torch.load(repo / "data" / "models" / "target.pt", weights_only=True)
    assert not any("running_mean" in k for k in weights)
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    dp = metrics["dp"]
    assert dp["epsilon_spent"] == target["dp"]["epsilon_spent"] and dp["delta"] == 1e-4
    assert dp["consistent"] is (dp["epsilon_lower"] <= dp["epsilon_spent"])
    assert dp["consistent"], "the audit found more leakage than DP-SGD allows"
    headline = json.loads((repo / "eval" / "headline.json").read_text())
    assert headline["epsilon_spent"] == dp["epsilon_spent"]
    page = (repo / "eval" / "report.html").read_text()
    assert "Trained with DP-SGD" in page and "The audit agrees" in page

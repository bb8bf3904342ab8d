"""Where a stage's tasks run: ``SEQMIA_TASK_RUNNER`` picks the runner, and with Dask the cluster
is the one Dask's own ``scheduler-address`` setting names (``DASK_SCHEDULER_ADDRESS``)."""

from __future__ import annotations

import pytest

from flows._stage import RUNNER_ENV, chosen_runner
from seqmia.base.errors import UserError


def test_threads_keep_the_flows_own_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNNER_ENV, raising=False)
    assert chosen_runner(2) is None
    monkeypatch.setenv(RUNNER_ENV, "threads")
    assert chosen_runner(2) is None


def test_an_unknown_runner_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNNER_ENV, "ray")
    with pytest.raises(UserError, match="'threads' or 'dask'"):
        chosen_runner(2)


def test_dask_uses_the_cluster_that_dasks_setting_names(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("prefect_dask")
    import dask.config

    monkeypatch.setenv(RUNNER_ENV, "dask")
    with dask.config.set({"scheduler-address": "tcp://scheduler.example:8786"}):
        runner = chosen_runner(2)
    assert runner.address == "tcp://scheduler.example:8786"


def test_dask_without_an_address_starts_a_local_cluster_of_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("prefect_dask")
    import dask.config

    monkeypatch.setenv(RUNNER_ENV, "dask")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # dask_runner sets it for its workers: restored
    with dask.config.set({"scheduler-address": None}):
        runner = chosen_runner(3)
    assert runner.address is None
    assert runner.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True}

"""Stage 3's queries: metric sequences built as each model's logits arrive, and logit tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seqmia.attacks.seqmia.frames import final_logits_frame, frame_to_arrays, population_frame
from seqmia.attacks.seqmia.metrics import compute_metrics
from seqmia.attacks.seqmia.sequences import metric_sequences

NAMES = ["loss", "max", "m_entropy"]


@pytest.fixture
def samples() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": [9, 2, 5, 4],
            "part": ["target_in"] * 2 + ["target_out"] * 2,
            "member": [1, 1, 0, 0],
            "label": [0, 2, 1, 2],
        }
    )


def series(t: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, generator=g) * (i + 1) for i in range(t)]


def test_sequences_hold_each_models_metrics_in_order(samples) -> None:
    logits = series(3)
    labels = torch.tensor(samples["label"].to_numpy())
    frame, last = metric_sequences(samples, labels, iter(logits), NAMES)
    table, values = frame_to_arrays(frame, NAMES)  # rows sorted by sample id: 2, 4, 5, 9
    order = np.argsort(samples["sample_id"].to_numpy())
    assert table["sample_id"].tolist() == [2, 4, 5, 9]
    for t, z in enumerate(logits):
        expected = compute_metrics(z, labels, NAMES).numpy()[order]
        np.testing.assert_array_equal(values[:, t, :], expected)
    assert torch.equal(last, logits[-1])


def test_a_generator_is_consumed_one_model_at_a_time(samples) -> None:
    queried: list[int] = []

    def models():
        for i, z in enumerate(series(4)):
            queried.append(i)
            yield z

    labels = torch.tensor(samples["label"].to_numpy())
    frame, _ = metric_sequences(samples, labels, models(), NAMES)
    assert queried == [0, 1, 2, 3] and len(frame) == 4 * 4


def test_an_empty_series_is_refused(samples) -> None:
    with pytest.raises(ValueError, match="no models"):
        metric_sequences(samples, torch.zeros(4, dtype=torch.int64), iter([]), NAMES)


def test_logit_tables_keep_rows_and_add_one_column_per_class(samples) -> None:
    logits = torch.tensor([[1.5, -2.0, 0.25]] * 4, dtype=torch.float64)
    frame = final_logits_frame(samples, logits)
    assert list(frame.columns) == [*samples.columns, "logit_0", "logit_1", "logit_2"]
    assert frame["logit_1"].dtype == np.float32 and frame["logit_1"].tolist() == [-2.0] * 4
    assert "logit_0" not in samples.columns  # the input table is not modified
    population = population_frame(samples[["sample_id", "label"]], logits.numpy()[:, :2])
    assert list(population.columns) == ["sample_id", "label", "logit_0", "logit_1"]
    assert population["logit_0"].tolist() == [1.5] * 4


def test_model_logits_load_the_saved_model_and_query_it_in_batches(tmp_path) -> None:
    from seqmia.attacks.seqmia.sequences import model_logits
    from seqmia.base.artifacts import save_state_dict
    from seqmia.data.inputs import normalisation_stats, to_model_input
    from seqmia.models.build import new_model
    from seqmia.models.registry import architecture_of
    from seqmia.params.whole import load_params
    from tests.conftest import REPO

    train = architecture_of(load_params(REPO / "params.yaml").train, "small_cnn")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    mean, std = normalisation_stats(x)
    dataset = {
        "x": x,
        "y": np.zeros(7, np.int64),
        "classes": np.array(["a", "b"]),
        "mean": mean,
        "std": std,
    }
    model = new_model(train, (3, 8, 8), 2, torch.Generator().manual_seed(1)).eval()
    save_state_dict(tmp_path / "m.pt", model)
    inputs = to_model_input(x, mean, std)
    got = model_logits(tmp_path / "m.pt", train, dataset, inputs, np.arange(7), 3, "cpu")
    with torch.no_grad():
        expected = model(inputs)
    assert got.shape == (7, 2)
    torch.testing.assert_close(got, expected)


def test_a_roles_model_series_is_its_snapshots_in_order_then_the_original(tmp_path) -> None:
    from tasks.layout import Layout

    layout = Layout(tmp_path)
    series = layout.model_series("shadow", 3)
    assert series == [
        *(layout.snapshot_file("shadow", e) for e in (1, 2, 3)),
        layout.model_file("shadow"),
    ]
    assert layout.model_series("target", 0) == [layout.model_file("target")]

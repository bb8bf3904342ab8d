"""Where each stage's artefacts live, relative to the project root (dvc.yaml names the same)."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Layout:
    """Artefact paths under ``root`` (the folder holding dvc.yaml)."""

    root: Path = Path(".")

    @property
    def prepared_dir(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def dataset_file(self) -> Path:
        """Prepared arrays: ``x`` (N, ...) and ``y`` (N,), plus normalisation ``mean``/``std``."""
        return self.prepared_dir / "dataset.npz"

    @property
    def dataset_info(self) -> Path:
        """Provenance and shape of the prepared dataset (JSON)."""
        return self.prepared_dir / "info.json"

    @property
    def partition_file(self) -> Path:
        """Parquet: sample_id, label, role."""
        return self.root / "data" / "partition.parquet"

    @property
    def models_dir(self) -> Path:
        return self.root / "data" / "models"

    def model_file(self, role: str) -> Path:
        return self.models_dir / f"{role}.pt"

    def model_report(self, role: str) -> Path:
        return self.models_dir / f"{role}.json"

    @property
    def reference_dir(self) -> Path:
        return self.root / "data" / "reference"

    def reference_model_file(self, index: int) -> Path:
        """Weights of reference model ``index`` (1-based)."""
        return self.reference_dir / f"model_{index}.pt"

    def reference_report(self, index: int) -> Path:
        """JSON: accuracies, training-set size and time of reference model ``index``."""
        return self.reference_dir / f"model_{index}.json"

    def reference_logits_file(self, index: int) -> Path:
        """Parquet: sample_id, role, in_training, logit_*: reference model ``index`` on every
        attack sample of both roles."""
        return self.reference_dir / f"logits_{index}.parquet"

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "data" / "snapshots"

    def snapshot_file(self, role: str, epoch: int) -> Path:
        return self.snapshots_dir / role / f"epoch_{epoch:03d}.pt"

    def model_series(self, role: str, epochs: int) -> list[Path]:
        """Snapshots s1 … sn (n = ``epochs``) of ``role`` in chronological order, then the
        original model s(n+1): the models a role's metric sequences are queried from."""
        return [*(self.snapshot_file(role, e) for e in range(1, epochs + 1)), self.model_file(role)]

    @property
    def sequences_dir(self) -> Path:
        return self.root / "data" / "sequences"

    def sequences_file(self, role: str) -> Path:
        """Parquet, long format: one row per (sample, snapshot)."""
        return self.sequences_dir / f"{role}.parquet"

    @property
    def final_logits_dir(self) -> Path:
        return self.root / "data" / "final_logits"

    def final_logits_file(self, role: str) -> Path:
        """Parquet: the original model's logits for the role's attack samples."""
        return self.final_logits_dir / f"{role}.parquet"

    def population_logits_file(self, role: str) -> Path:
        """Parquet: sample_id, label, logit_*: the role's original model on RMIA's population
        samples (the distillation part)."""
        return self.final_logits_dir / f"{role}_population.parquet"

    @property
    def attack_dir(self) -> Path:
        return self.root / "data" / "attack"

    @property
    def attack_model_file(self) -> Path:
        return self.attack_dir / "seqmia.pt"

    def attack_member_file(self, k: int) -> Path:
        """Weights of ensemble member ``k`` (1-based); member 1 is ``attack_model_file``."""
        return self.attack_model_file if k == 1 else self.attack_dir / f"seqmia_{k}.pt"

    @property
    def attack_summary_file(self) -> Path:
        return self.attack_dir / "summary.json"

    @property
    def attack_history_file(self) -> Path:
        return self.root / "eval" / "attack_history.csv"

    @property
    def baselines_dir(self) -> Path:
        return self.root / "data" / "baselines"

    @property
    def baseline_scores_file(self) -> Path:
        """Parquet: sample_id, part, member, label, one score column per trained baseline."""
        return self.baselines_dir / "scores.parquet"

    @property
    def baseline_summary_file(self) -> Path:
        return self.baselines_dir / "summary.json"

    @property
    def quantile_dir(self) -> Path:
        """The quantile stage's outputs: each role's regressor, its scores and its report."""
        return self.root / "data" / "quantile"

    def quantile_scores_file(self, role: str) -> Path:
        """(sample_id, hinge, mu, log_sigma, quantile_mia) of the role's attack samples."""
        return self.quantile_dir / f"{role}.parquet"

    def quantile_model_file(self, role: str) -> Path:
        return self.quantile_dir / f"{role}.pt"

    def quantile_report(self, role: str) -> Path:
        return self.quantile_dir / f"{role}.json"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def metrics_file(self) -> Path:
        return self.eval_dir / "metrics.json"

    @property
    def roc_dir(self) -> Path:
        return self.eval_dir / "roc"

    @property
    def roc_png(self) -> Path:
        return self.eval_dir / "roc.png"

    @property
    def scores_file(self) -> Path:
        return self.eval_dir / "scores.parquet"

    @property
    def report_file(self) -> Path:
        """Self-contained HTML report: comparison table with intervals, ROC figure, params."""
        return self.eval_dir / "report.html"

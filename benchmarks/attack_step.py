"""Where one training step of a baseline's attention-LSTM spends its time, on one thread.

The baselines stage trains nine small attack models; seven are recurrent (the LSTM ablation and
one attention-LSTM per metric) and take most of its time. Training several models at once
(stacked into one batched model) can only remove what a step spends outside the arithmetic of
its kernels: per-operator dispatch, Python, the optimiser's bookkeeping. This script measures
that split with torch's profiler for the default shapes (batch 100, 21 time steps, one metric,
hidden size 50, Adam), and times the same step under bfloat16 autocast, the other way to make
the kernels themselves cheaper (which changes the arithmetic). It also times the six recurrent
attention models of a default baselines stage trained one by one against the same six stacked
into one batched model (weights (M, ...), one ``bmm`` per time step for all of them): stacking
gives up oneDNN's fused kernels, and this measures what that costs.

Last, it bounds the stage from below: each model of the configuration's baselines stage trains a
few real epochs (``seqmia.attacks.fit.train_attack``, the default run's row counts and sequence
length, random inputs) under torch's profiler, and the time inside the kernels that do the
arithmetic (matrix products and the fused recurrent kernels) is what remains of an epoch when
everything else (Python, dispatch, the optimiser, the held-out AUC) costs nothing. Summed over
every model's epochs and divided among the workers, that is the least time any implementation
with the same kernels (and so the same float32 arithmetic) could spend on the stage's training.

    python benchmarks/attack_step.py [--steps 300] [--params params.yaml]

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from seqmia.attacks.fit import train_attack  # noqa: E402
from seqmia.attacks.networks import (  # noqa: E402
    SequenceAttack,
    build_attack,
    init_attack_weights,
)
from seqmia.attacks.registry import TrainedSpec, trained_specs  # noqa: E402
from seqmia.attacks.trained import RoleInputs, baseline_features  # noqa: E402
from seqmia.params.whole import load_params  # noqa: E402
from seqmia.training.recipe import Recipe, as_recipe  # noqa: E402

# oneDNN's fused recurrent kernels (forward and backward), as torch's profiler names them.
RECURRENT_KERNELS = ("aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward")
# Every kernel that does a model's arithmetic: the recurrent ones and the matrix products of the
# attention, the linear layers and their gradients.
ARITHMETIC_KERNELS = (*RECURRENT_KERNELS, "aten::addmm", "aten::mm", "aten::bmm")


def make_step(k: int, bf16: bool):
    """A training step of a fresh attention-LSTM on fixed random inputs (B=100, T=21, k)."""
    generator = torch.Generator().manual_seed(0)
    model = SequenceAttack(k, 50, 1, "lstm", True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    x = torch.randn(100, 21, k, generator=generator)
    y = torch.randint(0, 2, (100,), generator=generator)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


class StackedAttentionLSTM(torch.nn.Module):
    """``models`` attention-LSTMs with separate weights, run as one batched model.

    x: (M, B, T, k) -> logits (M, B, 2). The LSTM is written out per time step (gates i, f, g, o
    as torch.nn.LSTM orders them) with one ``bmm`` over the M models, since oneDNN's fused
    recurrent kernel has no batch-of-models dimension."""

    def __init__(self, models: int, k: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()

        def weight(*shape: int) -> torch.nn.Parameter:
            bound = hidden**-0.5  # torch.nn.LSTM's uniform initialisation range
            return torch.nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * bound)

        self.w_in, self.w_hidden = weight(models, k, 4 * hidden), weight(models, hidden, 4 * hidden)
        self.bias = weight(models, 1, 4 * hidden)
        self.w_head, self.b_head = weight(models, 2 * hidden, 2), weight(models, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, b, t, _ = x.shape
        hidden = self.w_hidden.shape[1]
        inputs = torch.matmul(x, self.w_in.unsqueeze(1)) + self.bias.unsqueeze(1)  # (M, B, T, 4H)
        h = c = x.new_zeros(m, b, hidden)
        outputs = []
        for step in range(t):
            gates = inputs[:, :, step] + torch.bmm(h, self.w_hidden)
            i, f, g, o = gates.chunk(4, dim=2)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        o_all = torch.stack(outputs, dim=2)  # (M, B, T, H)
        alpha = torch.softmax((o_all * h.unsqueeze(2)).sum(-1), dim=2)  # (M, B, T)
        context = (alpha.unsqueeze(-1) * o_all).sum(dim=2)  # (M, B, H)
        return torch.bmm(torch.cat([h, context], dim=2), self.w_head) + self.b_head


def make_many_steps(models: int, stacked: bool):
    """One training step of ``models`` attention-LSTMs (k 1) on their own inputs: one by one,
    or stacked into one batched model with one optimiser."""
    generator = torch.Generator().manual_seed(0)
    xs = torch.randn(models, 100, 21, 1, generator=generator)
    y = torch.randint(0, 2, (100,), generator=generator)
    if stacked:
        model = StackedAttentionLSTM(models, 1, 50, generator)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)

        def step() -> None:
            loss = F.cross_entropy(model(xs).reshape(-1, 2), y.repeat(models)) * models
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step
    singles = [SequenceAttack(1, 50, 1, "lstm", True) for _ in range(models)]
    optimizers = [torch.optim.Adam(s.parameters(), lr=0.01, weight_decay=1e-4) for s in singles]

    def step() -> None:
        for model, optimizer, x in zip(singles, optimizers, xs, strict=True):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def ms_per_step(step, steps: int) -> float:
    for _ in range(20):  # warm-up: oneDNN primitives are created on first use
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - started) / steps


def recurrent_share(step, steps: int) -> float:
    """Fraction of the profiled CPU time spent inside the recurrent kernels themselves."""
    for _ in range(20):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    inside = sum(e.self_cpu_time_total for e in events if e.key in RECURRENT_KERNELS)
    return inside / total


def random_role(rows: int, snapshots: int, metrics: list[str], classes: int = 10) -> RoleInputs:
    """A role's inputs with ``rows`` samples of random sequences and final logits."""
    generator = np.random.default_rng(0)
    samples = pd.DataFrame({"sample_id": np.arange(rows), "member": np.arange(rows) % 2})
    return RoleInputs(
        samples,
        generator.normal(size=(rows, snapshots, len(metrics))),
        metrics,
        generator.normal(size=(rows, classes)),
    )


def epoch_split(
    spec: TrainedSpec, recipe: Recipe, role: RoleInputs, train: int, topk: int, hidden: int
) -> tuple[float, float]:
    """(seconds of one training epoch of ``spec``, of them inside ``ARITHMETIC_KERNELS``), from
    real ``train_attack`` epochs on ``role``'s features: its first ``train`` rows train, the
    others are held out."""
    generator = torch.Generator().manual_seed(0)
    x = torch.from_numpy(baseline_features(spec, role, topk)).float()  # (N, ...)
    y = torch.tensor(role.samples["member"].to_numpy())  # (N,) 0/1

    def run(epochs: int) -> float:
        model = init_attack_weights(
            build_attack(
                spec.model.architecture, tuple(x.shape[1:]), hidden, 1, spec.model.mlp_widths
            ),
            generator,
        )
        started = time.perf_counter()
        recipe_of_run = as_recipe(recipe, epochs=epochs)
        train_attack(
            model,
            x[:train],
            y[:train],
            x[train:],
            y[train:],
            recipe_of_run,
            generator,
            selection="best_val_auc",
        )
        return time.perf_counter() - started

    run(2)  # warm-up: oneDNN primitives are created on first use
    epochs = 4
    per_epoch = run(epochs) / epochs
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run(epochs)
    inside = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ARITHMETIC_KERNELS)
    return per_epoch, inside / 1e6 / epochs


def stage_floor(params_file: str, rows: tuple[int, int], snapshots: int, workers: int) -> None:
    """Print, for each model of the baselines stage, its epoch time and the part of it inside
    the arithmetic kernels, and the stage's training time now and at that floor."""
    params = load_params(params_file)
    b, metrics = params.baselines, list(params.sequences.metrics)
    role = random_role(sum(rows), snapshots, metrics)
    now = floor = 0.0
    print(
        f"\nBaselines stage of {params_file}: {rows[0]} training and {rows[1]} held-out rows, "
        f"{snapshots} snapshots, one thread per model, {workers} workers.\n"
    )
    print("| model | epochs | epoch ms | of it in arithmetic kernels, ms | share |")
    print("|---|---:|---:|---:|---:|")
    for spec in trained_specs(b.attacks, metrics):
        recipe = as_recipe(getattr(b, spec.model.recipe))
        epoch, inside = epoch_split(spec, recipe, role, rows[0], b.topk, b.hidden_size)
        now += recipe.epochs * epoch / workers
        floor += recipe.epochs * inside / workers
        print(
            f"| {spec.name} | {recipe.epochs} | {1000 * epoch:.1f} | {1000 * inside:.1f} | "
            f"{100 * inside / epoch:.0f}% |"
        )
    print(f"\n| stage's training, all models on {workers} workers | seconds |\n|---|---:|")
    print(f"| as it trains now (epochs x epoch time / workers) | {now:.1f} |")
    print(f"| floor: arithmetic kernels only | {floor:.1f} ({100 * floor / now:.0f}% of now) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--params", default="params.yaml", help="configuration of the floor")
    parser.add_argument(
        "--rows",
        type=int,
        nargs=2,
        default=(4000, 1000),
        metavar=("TRAIN", "HELD_OUT"),
        help="shadow rows",
    )
    parser.add_argument("--snapshots", type=int, default=21, help="the default run's T")
    parser.add_argument("--workers", type=int, default=2, help="one-thread workers (cores)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fp32 = ms_per_step(make_step(1, bf16=False), args.steps)
    bf16 = ms_per_step(make_step(1, bf16=True), args.steps)
    share = recurrent_share(make_step(1, bf16=False), max(50, args.steps // 6))
    one_by_one = ms_per_step(make_many_steps(6, stacked=False), max(30, args.steps // 6))
    stacked = ms_per_step(make_many_steps(6, stacked=True), max(30, args.steps // 6))
    print(f"One thread, torch {torch.__version__}; attention-LSTM, batch 100, T 21, k 1, H 50.\n")
    print("| measure | value |\n|---|---:|")
    print(f"| float32 step, ms | {fp32:.2f} |")
    print(f"| of the profiled time, inside oneDNN's LSTM kernels | {100 * share:.0f}% |")
    print(
        f"| most a stacked model could save (time outside those kernels) | "
        f"{100 * (1 - share):.0f}% |"
    )
    print(f"| bfloat16 autocast step, ms | {bf16:.2f} ({fp32 / bf16:.2f}x faster) |")
    print(f"| six models one by one, ms per step of all six | {one_by_one:.2f} |")
    print(
        f"| the six stacked into one batched model, ms | {stacked:.2f} "
        f"({one_by_one / stacked:.2f}x as fast) |"
    )
    stage_floor(args.params, tuple(args.rows), args.snapshots, args.workers)


if __name__ == "__main__":
    main()

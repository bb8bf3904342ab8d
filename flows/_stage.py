"""What every stage's ``python -m flows.<stage>`` does before and around its flow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from seqmia.config import Params, load_params
from seqmia.errors import UserError
from seqmia.layout import Layout
from seqmia.runtime import threads_per_worker


def setup(params_file: str, concurrent_workers: int = 1) -> tuple[Params, Layout]:
    """Validate params.yaml and give each concurrent CPU worker its share of the cores."""
    params = load_params(params_file)
    torch.set_num_threads(threads_per_worker(concurrent_workers))
    return params, Layout(Path(params_file).resolve().parent)


def run(flow: Callable[..., object], description: str) -> None:
    """Command line of a stage: validate params before any work, then run ``flow``.

    Errors the user can fix (a bad params key, a missing dataset) print one clear line and exit 2.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    args = parser.parse_args()
    try:
        load_params(args.params)  # fail fast, before Prefect starts anything
        flow(params_file=args.params)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

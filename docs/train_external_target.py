"""Train a small image classifier in plain PyTorch, outside the pipeline, and save what an audit
of it needs: the weights (a state dict and a torch.export program) and its member lists.

Not part of the pipeline: it stands for any model someone already has. Example (CIFAR-10, the
offline copy; docs/audit-your-model.md shows the audit that follows):

    python docs/train_external_target.py --data ../shared/datasets/cifar10 --out target \
        --members 250 --nonmembers 250 --epochs 30

It reads an ImageFolder tree (``<data>/{train,test}/<class>/<image>``) with torchvision, draws
``--members`` training images and ``--nonmembers`` held-out images per class from all of it,
trains the registry's ``small_cnn`` on RGB images normalised with per-channel statistics of its
members (optionally resized to ``--size``), and writes into ``--out``:

- ``model.pt``: the state dict; ``model.pt2``: the same model exported with torch.export;
- ``members.txt`` / ``nonmembers.txt``: image paths relative to ``--data``, one per line;
- ``preprocessing.json``: the mean, std, size and channels to pass as ``target.*``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import default_loader
from torchvision.transforms.functional import pil_to_tensor

from seqmia.models.architectures import build_model


def load_images(paths: list[Path], size: int | None) -> torch.Tensor:
    """RGB images (n, 3, H, W) in [0, 1], resized (bilinear, antialiased) when ``size``."""
    images = torch.stack([pil_to_tensor(default_loader(str(p))) for p in paths]).float() / 255.0
    if size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder root")
    parser.add_argument("--out", type=Path, default=Path("target"))
    parser.add_argument("--members", type=int, default=250, help="training images per class")
    parser.add_argument("--nonmembers", type=int, default=250, help="held-out images per class")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--size", type=int, default=0, help="resize to size x size (0: keep)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    samples: list[tuple[Path, int]] = []  # every image of every split, with its class
    for split in ("train", "test"):
        if (args.data / split).is_dir():
            folder = ImageFolder(str(args.data / split))
            samples += [(Path(p), label) for p, label in folder.samples]
    labels = np.array([label for _, label in samples])
    members, nonmembers = [], []
    for label in np.unique(labels):
        ids = rng.permutation(np.flatnonzero(labels == label))
        members += ids[: args.members].tolist()
        nonmembers += ids[args.members : args.members + args.nonmembers].tolist()

    x = load_images([samples[i][0] for i in members], args.size)
    y = torch.from_numpy(labels[members])
    # Rounded as they are written for the audit, so training and audit normalise identically.
    mean = torch.round(x.mean(dim=(0, 2, 3)), decimals=6)
    std = torch.round(x.std(dim=(0, 2, 3)), decimals=6)
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    model = build_model("small_cnn", tuple(x.shape[1:]), int(labels.max()) + 1, torch.Generator())
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(y))
        for start in range(0, len(y), 100):
            batch = order[start : start + 100]
            optimiser.zero_grad()
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
        print(f"epoch {epoch}/{args.epochs}  last batch loss {loss.item():.4f}", flush=True)
    model.eval()

    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "model.pt")
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(args.out / "model.pt2"))
    for name, ids in (("members", members), ("nonmembers", nonmembers)):
        lines = [str(samples[i][0].relative_to(args.data)) for i in ids]
        (args.out / f"{name}.txt").write_text("\n".join(lines) + "\n")
    preprocessing = {
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "resize": [args.size, args.size] if args.size else [],
        "channels": 3,
    }
    (args.out / "preprocessing.json").write_text(json.dumps(preprocessing) + "\n")
    print(f"wrote {args.out}: {len(members)} members, {len(nonmembers)} non-members")


if __name__ == "__main__":
    main()

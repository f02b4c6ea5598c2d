"""Train a shapes model from a seed and write its weights and held-out accuracy.

python -m atlas_shapes.train                # the U-Net: rewrites weights/shapes_unet.*
python -m atlas_shapes.train --model vit    # the ViT: rewrites weights/shapes_vit.*
python -m atlas_shapes.train --model judge  # the judge: its own seed and generator style
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import CLASSES, DEMO, JUDGE, Style, make_batch
from .model import ShapesFCN, ShapesUNet, ShapesViT

WEIGHTS_DIR = Path(__file__).parent / "weights"
MEAN, STD = 0.5, 0.25
MODELS = {"unet": ShapesUNet, "vit": ShapesViT, "judge": ShapesFCN}
DEFAULTS = {  # steps, batch, learning rate (a ViT wants a lower rate and more steps)
    "unet": (1500, 32, 0.01),
    "vit": (16000, 32, 0.002),
    "judge": (4000, 32, 0.01),
}
SEEDS = {"unet": 0, "vit": 0, "judge": 1}  # the judge is trained independently
STYLES = {"unet": DEMO, "vit": DEMO, "judge": JUDGE}  # ... on other sizes, colours and noise


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] images to what the network takes."""
    return (images - MEAN) / STD


def evaluate(model: torch.nn.Module, seed: int, n: int = 512, style: Style = DEMO) -> dict:
    """Return pixel accuracy and per-class recall on n freshly generated images."""
    rng = np.random.default_rng(seed)
    correct = np.zeros(len(CLASSES))
    total = np.zeros(len(CLASSES))
    model.eval()
    with torch.no_grad():
        for _ in range(n // 64):
            images, labels = make_batch(rng, 64, style=style)
            pred = model(normalize(torch.from_numpy(images))).argmax(1).numpy()
            for c in range(len(CLASSES)):
                sel = labels == c
                total[c] += sel.sum()
                correct[c] += (pred[sel] == c).sum()
    return {
        "pixel_accuracy": round(float(correct.sum() / total.sum()), 4),
        "class_recall": {
            name: round(float(correct[c] / max(total[c], 1)), 4) for c, name in enumerate(CLASSES)
        },
        "images": n,
    }


def train(
    steps: int, batch: int, seed: int, lr: float, name: str = "unet", style: Style = DEMO
) -> tuple[torch.nn.Module, float]:
    """Train from seed on freshly generated batches; return the model and seconds taken."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MODELS[name]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    for step in range(steps):
        images, labels = make_batch(rng, batch, style=style)
        model.train()
        logits = model(normalize(torch.from_numpy(images)))
        loss = F.cross_entropy(logits, torch.from_numpy(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(
                f"step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - start:6.1f}s",
                flush=True,
            )
    return model.eval(), time.perf_counter() - start


def main() -> None:
    """Parse arguments, train, evaluate on a held-out seed and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="unet")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int, help="default: 0, the judge 1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, batch, lr = DEFAULTS[args.model]
    args.steps, args.batch, args.lr = args.steps or steps, args.batch or batch, args.lr or lr
    args.seed = SEEDS[args.model] if args.seed is None else args.seed
    style = STYLES[args.model]
    model, seconds = train(args.steps, args.batch, args.seed, args.lr, args.model, style)
    report = evaluate(model, seed=args.seed + 10_000)
    if style != DEMO:
        report["own_style"] = evaluate(model, seed=args.seed + 10_000, style=style)
    print(json.dumps(report, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / f"shapes_{args.model}.pt")
    report.update(
        model=args.model,
        seed=args.seed,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        threads=args.threads,
        train_seconds=round(seconds, 1),
        torch=torch.__version__,
        machine=f"{platform.machine()} {platform.processor()}",
    )
    (args.out / f"shapes_{args.model}.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

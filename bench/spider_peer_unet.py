"""Peer check for issue 6: an independent U-Net on the same SPIDER split as the shipped weights.

Usage:  .venv/bin/python bench/spider_peer_unet.py [--scales 0.5,1.0] [--minutes 10,25] [--threads 2]
                                                    [--weights default] [--data ../shared/data/spider]
                                                    [--out bench/results/spider_peer_unet.md]

The shipped light network reaches 0.879 level-specific disc Dice on the five held-out SPIDER patients
(target 0.92). Is that the network or the patients? This script answers it with a peer measured in the
same run: the quick baseline the issue describes (a ~2 M-parameter U-Net written with torch alone,
cross-entropy + soft Dice, bf16 autocast with channels_last on CPU), trained from scratch on the 13 slices
of each of the 25 SPIDER training patients (SPIDER's own three classes: vertebra, disc, canal; no levels)
and scored on the mid-sagittal slice of the five held-out patients (``VALIDATION_SUBJECTS``), on the
original 640 x 512 grid. The shipped weights are scored on the same slices, level-agnostic (the union of
the five disc classes against SPIDER's disc mask, the CSF class against the canal), so both numbers
measure the same thing. Discs are scored over the five lumbar discs (the five lowest, as the training
loaders count them); whatever either network predicts on a thoracic disc is not counted (the node calls
those background on purpose). SPIDER's vertebra masks include the posterior elements while the shipped network
segments vertebral bodies, so vertebrae are reported for the peer only.

The peer's checkpoint is not chosen on the held-out slices: its last evaluation is the reported figure;
the best evaluation along the way is listed beside it as the optimistic bound.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_common import machine  # noqa: E402
from inference.postprocess import postprocess  # noqa: E402
from inference.training.datasets import VALIDATION_SUBJECTS, spider_codes  # noqa: E402
from inference.training.evaluation import predict_probabilities  # noqa: E402
from inference.training.labels import CSF, DISCS  # noqa: E402
from inference.weights_io import load_weights  # noqa: E402

SPIDER_VALUES = {1: 76, 2: 29, 3: 150}  # peer class -> SPIDER mask grey value (vertebra, disc, canal)
PEER_CLASSES = ("vertebra", "disc", "canal")


@dataclass(frozen=True)
class Slice:
    subject: str
    image: np.ndarray  # uint8 (H, W)
    labels: np.ndarray  # uint8 (H, W): 0 background, 1 vertebra, 2 disc, 3 canal
    not_scored: np.ndarray  # bool (H, W): disc pixels that are not a lumbar disc (thoracic discs, fragments)


def load_slices(root: Path) -> tuple[list[Slice], list[Slice]]:
    """(training slices: all slices of the training patients, held-out mid-sagittal slices)."""
    rows: dict[str, list[dict[str, str]]] = {}
    with open(root / "t2space_png" / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["subject"], []).append(row)
    held_out = VALIDATION_SUBJECTS["spider"]

    def read(r: dict[str, str]) -> Slice:
        img = cv2.imread(str(root / "t2space_png" / r["image_file"]), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(root / "t2space_png" / r["mask_file"]), cv2.IMREAD_GRAYSCALE)
        if img is None or mask is None:
            raise SystemExit(f"cannot read SPIDER slice {r['image_file']}")
        labels = np.zeros(mask.shape, np.uint8)
        for cls, value in SPIDER_VALUES.items():
            labels[mask == value] = cls
        codes, _ = spider_codes(mask)  # the loaders' bottom-up levels: the five lowest discs are lumbar
        return Slice(r["subject"], img, labels, (mask == SPIDER_VALUES[2]) & ~np.isin(codes, DISCS))

    train, val = [], []
    for subject in sorted(rows, key=int):
        ordered = sorted(rows[subject], key=lambda r: int(r["slice"]))
        if subject in held_out:
            val.append(read(ordered[len(ordered) // 2]))  # the mid slice, as inference.training.load_spider
        else:
            train.extend(read(r) for r in ordered)
    return train, val


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PeerUNet(nn.Module):
    """Plain U-Net: two 3x3 conv-BN-ReLU per level, max-pool down, bilinear up, 1.96 M parameters."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128, 256), classes: int = 4):
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(nn.Sequential(_conv_bn_relu(cin, w), _conv_bn_relu(w, w)))
            cin = w
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.Sequential(_conv_bn_relu(cin + w, w), _conv_bn_relu(w, w)))
            cin = w
        self.out = nn.Conv2d(cin, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.out(x)


class PeerInput:
    """CLAHE and the spec's normalisation (as the node), resized to the peer's working grid."""

    def __init__(self, shape: tuple[int, int], scale: float):
        self.h, self.w = (int(round(s * scale / 32)) * 32 for s in shape)
        self.clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))

    def image(self, img: np.ndarray) -> np.ndarray:
        x = (self.clahe.apply(img).astype(np.float32) / 255.0 - 0.2703814) / 0.24898738
        return cv2.resize(x, (self.w, self.h), interpolation=cv2.INTER_AREA)

    def labels(self, lab: np.ndarray) -> np.ndarray:
        return cv2.resize(lab, (self.w, self.h), interpolation=cv2.INTER_NEAREST)


def augment(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotation +-10 degrees, scale 0.85-1.15, shift +-20 px, gamma 0.74-1.35 (no flips)."""
    h, w = img.shape
    centre = (w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20))
    m = cv2.getRotationMatrix2D(centre, rng.uniform(-10, 10), rng.uniform(0.85, 1.15))
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    lab = cv2.warpAffine(lab, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
    return (255.0 * (img / 255.0) ** gamma).astype(np.uint8), lab


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    total = float(pred.sum() + ref.sum())
    return 2.0 * float((pred & ref).sum()) / total if total else 1.0


def lumbar_disc_dice(pred: np.ndarray, s: Slice) -> float:
    """Disc Dice over the five lumbar discs; predictions on thoracic discs are not counted."""
    return dice(pred & ~s.not_scored, (s.labels == 2) & ~s.not_scored)


@torch.no_grad()
def score_peer(net: PeerUNet, prep: PeerInput, val: list[Slice]) -> np.ndarray:
    """(subjects, 3) Dice of vertebra, disc, canal on the original grid (probabilities resized bilinear)."""
    net.eval()
    out = []
    for s in val:
        x = torch.from_numpy(prep.image(s.image))[None, None].contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", torch.bfloat16):
            p = torch.softmax(net(x).float(), 1)[0].numpy()
        h, w = s.image.shape
        labels = np.stack([cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR) for q in p]).argmax(0)
        out.append([dice(labels == 1, s.labels == 1), lumbar_disc_dice(labels == 2, s),
                    dice(labels == 3, s.labels == 3)])
    net.train()
    return np.array(out)


@dataclass(frozen=True)
class PeerRun:
    scale: float
    grid: tuple[int, int]
    minutes: float
    steps: int
    last: np.ndarray  # (subjects, 3)
    best_disc: float
    best_step: int


def train_peer(train: list[Slice], val: list[Slice], scale: float, minutes: float, seed: int,
               batch: int = 8, lr: float = 2e-3, eval_every: int = 100) -> PeerRun:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    prep = PeerInput(train[0].image.shape, scale)
    net = PeerUNet().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    t0, step, best, best_step = time.monotonic(), 0, -1.0, 0
    budget = minutes * 60.0
    while time.monotonic() - t0 < budget:
        pairs = [augment(train[i].image, train[i].labels, rng) for i in rng.integers(len(train), size=batch)]
        x = torch.from_numpy(np.stack([prep.image(a) for a, _ in pairs]))[:, None]
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(np.stack([prep.labels(b) for _, b in pairs]).astype(np.int64))
        for g in opt.param_groups:  # cosine over the time budget
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min((time.monotonic() - t0) / budget, 1.0)))
        with torch.autocast("cpu", torch.bfloat16):
            logits = net(x).float()
        prob = torch.softmax(logits, 1)
        onehot = F.one_hot(y, 4).permute(0, 3, 1, 2).float()
        soft_dice = (2 * (prob * onehot).sum((0, 2, 3)) + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
        loss = F.cross_entropy(logits, y) + (1 - soft_dice[1:].mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0:
            d = score_peer(net, prep, val)
            if d[:, 1].mean() > best:
                best, best_step = float(d[:, 1].mean()), step
            print(f"scale {scale} step {step} {time.monotonic() - t0:.0f} s loss {loss.item():.3f} "
                  f"disc {d[:, 1].mean():.3f} canal {d[:, 2].mean():.3f}", flush=True)
    last = score_peer(net, prep, val)
    if last[:, 1].mean() > best:
        best, best_step = float(last[:, 1].mean()), step
    return PeerRun(scale, (prep.h, prep.w), minutes, step, last, best, best_step)


def score_shipped(weights: str, val: list[Slice]) -> dict[str, np.ndarray]:
    """Level-agnostic (disc, canal) Dice per subject of the shipped weights: argmax and the node's default."""
    loaded = load_weights(weights)
    out: dict[str, list[list[float]]] = {"argmax": [], "sacrum": []}
    for s in val:
        probs = predict_probabilities(loaded.model, s.image, loaded.input_size, "cpu")
        for mode, labels in (("argmax", probs.argmax(0)),
                             ("sacrum", postprocess(probs, level_assignment="sacrum").label_map)):
            out[mode].append([lumbar_disc_dice(np.isin(labels, DISCS), s), dice(labels == CSF, s.labels == 3)])
    return {k: np.array(v) for k, v in out.items()}


def markdown(runs: list[PeerRun], shipped: dict[str, np.ndarray], val: list[Slice], n_train: int,
             threads: int, seconds: float) -> str:
    subjects = [s.subject for s in val]
    head = "| model | " + " | ".join(f"disc {s}" for s in subjects) + " | **disc mean** | canal mean | vertebra mean |"
    lines = [
        "# Peer check: an independent U-Net on the same SPIDER split (issue 6)",
        "",
        f"Machine: {machine()}; torch {torch.__version__}, {threads} threads, nice 19. Total {seconds / 60:.0f} min.",
        "Generated by `bench/spider_peer_unet.py` (see its docstring for the protocol).",
        "",
        f"Training: the 13 slices of each of the 25 SPIDER training patients ({n_train} slices), SPIDER's own",
        "classes (vertebra, disc, canal; no levels). Held out: the mid-sagittal slice of patients "
        + ", ".join(subjects) + ".",
        "Dice on the original 640 x 512 grid; discs level-agnostic (the five lumbar discs as one structure;",
        "predictions on thoracic discs not counted).",
        "",
        head,
        "|---|" + "---|" * (len(subjects) + 3),
    ]
    for r in runs:
        d = r.last
        lines.append(
            f"| peer U-Net 1.96 M, {r.grid[0]} x {r.grid[1]} grid, {r.minutes:.0f} min ({r.steps} steps), last | "
            + " | ".join(f"{v:.3f}" for v in d[:, 1])
            + f" | **{d[:, 1].mean():.3f}** | {d[:, 2].mean():.3f} | {d[:, 0].mean():.3f} |"
        )
        lines.append(f"| (same run, best evaluation: step {r.best_step}) | " + " | " * (len(subjects) - 1)
                     + f" | {r.best_disc:.3f} | | |")
    for mode, label in (("argmax", "network argmax"), ("sacrum", "node default post-processing")):
        d = shipped[mode]
        lines.append(f"| shipped light weights, {label} | " + " | ".join(f"{v:.3f}" for v in d[:, 0])
                     + f" | **{d[:, 0].mean():.3f}** | {d[:, 1].mean():.3f} | n/a |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "spider")
    ap.add_argument("--weights", default="default")
    ap.add_argument("--scales", default="0.5,1.0", help="peer working grid as a fraction of 640 x 512")
    ap.add_argument("--minutes", default="10,25", help="training minutes per scale")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "spider_peer_unet.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    scales = [float(s) for s in args.scales.split(",")]
    minutes = [float(m) for m in args.minutes.split(",")]
    if len(minutes) != len(scales):
        ap.error("give one --minutes value per scale")
    t0 = time.monotonic()
    train, val = load_slices(args.data)
    shipped = score_shipped(args.weights, val)
    runs = [train_peer(train, val, s, m, args.seed) for s, m in zip(scales, minutes)]
    text = markdown(runs, shipped, val, len(train), args.threads, time.monotonic() - t0)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pictures of results: the confusion matrix (OpenCV, no plotting library) and the loop's
per-round charts (matplotlib, imported only when drawn; DVC's own HTML plots need the
internet for their chart library, so the project writes PNGs too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segloop.imageio import write_png


def confusion_image(confusion: np.ndarray, cell: int = 16) -> np.ndarray:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction) as an RGB
    heat map, ``cell`` pixels per entry, with class indices along the top and left."""
    counts = confusion.astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = share.shape[0]
    heat = cv2.applyColorMap((share * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    heat = cv2.resize(heat, (n * cell, n * cell), interpolation=cv2.INTER_NEAREST)
    margin = 2 * cell
    canvas = np.full((n * cell + margin, n * cell + margin, 3), 255, np.uint8)
    canvas[margin:, margin:] = heat
    for i in range(n):
        for origin in ((margin + i * cell + 2, margin - 6), (2, margin + i * cell + cell - 4)):
            cv2.putText(
                canvas, str(i), origin, cv2.FONT_HERSHEY_PLAIN, 0.6, (0, 0, 0), 1, cv2.LINE_AA
            )
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)


def write_confusion_png(path: Path, confusion: np.ndarray) -> None:
    write_png(path, confusion_image(confusion))


def write_round_charts(rounds: list[dict[str, Any]], classes: list[str], out: Path) -> list[Path]:
    """``miou_by_round.png`` (overall and per condition) and ``per_class_iou.png`` (a
    rounds x classes heat map) from the rows of ``reports/miou_by_round.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(names, [100 * r["miou"] for r in rounds], marker="o", linewidth=2, label="all")
    conditions = sorted({k for r in rounds for k in r.get("by_condition", {})})
    for condition in conditions:
        values = [100 * r.get("by_condition", {}).get(condition, float("nan")) for r in rounds]
        ax.plot(names, values, marker=".", linestyle="--", label=condition)
    ax.set_xlabel("round")
    ax.set_ylabel("validation mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    first = out / "miou_by_round.png"
    fig.savefig(first, dpi=100)
    plt.close(fig)

    table = np.array([[100 * (r["per_class_iou"].get(c) or 0.0) for c in classes] for r in rounds])
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * len(rounds)))
    image = ax.imshow(table, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(rounds)), names)
    fig.colorbar(image, ax=ax, label="IoU (%)")
    fig.tight_layout()
    second = out / "per_class_iou.png"
    fig.savefig(second, dpi=100)
    plt.close(fig)
    return [first, second]

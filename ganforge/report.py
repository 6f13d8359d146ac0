"""``ganforge report``: one picture of a run (loss curves, metric curves, sample grids from its
start, middle and end) and an HTML page that embeds it."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from .durable import atomic_write, atomic_write_bytes
from .errors import GanforgeError
from .evalfile import read_evaluation
from .imagefiles import open_image
from .runs import RunDir

TRAIN_KEYS = ("d_loss", "g_loss")
LOGIT_KEYS = ("d_real", "d_fake")


def write_report(run_dir: Path | str, out: Path | None = None) -> tuple[Path, Path]:
    """Write ``report.png`` and ``report.html`` (into the run directory unless ``out`` names the PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GanforgeError("ganforge report draws with matplotlib: pip install 'ganforge[report]'") from None
    run = RunDir(run_dir)
    config = run.read_config()
    records = run.read_metrics()
    train = [r for r in records if all(isinstance(r.get(k), (int, float)) for k in (*TRAIN_KEYS, *LOGIT_KEYS))]
    evals = [r for r in records if all(isinstance(r.get(k), (int, float)) for k in ("fid", "precision", "recall"))]
    if not train:
        raise GanforgeError(f"{run.metrics_path}: no logged steps yet; train the run first")
    grids = sorted(p for p in run.samples.glob("step_*.png") if re.fullmatch(r"step_[0-9]+\.png", p.name))
    picks = [grids[0], grids[len(grids) // 2], grids[-1]] if len(grids) >= 3 else grids

    fig = plt.figure(figsize=(15, 9.5), layout="constrained")
    grid = fig.add_gridspec(2, 3)
    steps = [r["step"] for r in train]
    ax = fig.add_subplot(grid[0, 0])
    for key in TRAIN_KEYS:
        ax.plot(steps, [r[key] for r in train], label=key)
    ax.set(title=f"losses ({config['resolved']['loss']})", xlabel="step")
    ax.legend()
    ax = fig.add_subplot(grid[0, 1])
    for key in LOGIT_KEYS:
        ax.plot(steps, [r[key] for r in train], label=f"mean D logit, {key[2:]}")
    ax.set(title="discriminator outputs", xlabel="step")
    ax.legend()
    ax = fig.add_subplot(grid[0, 2])
    final = _final_evaluation(run.path)
    if evals or final:
        _draw_evaluations(ax, evals, final)
    else:
        ax.text(0.5, 0.5, "no evaluations\n(train with --set eval_every=N,\nor run `ganforge eval`)", ha="center", va="center")
        ax.set_axis_off()
    for column, path in enumerate(picks):
        ax = fig.add_subplot(grid[1, column])
        ax.imshow(open_image(path, "RGB"))
        ax.set(title=f"samples at step {int(path.stem.split('_')[1])}")
        ax.set_axis_off()
    fig.suptitle(f"{config['variant']} on {config['train']['data']['name']}: {run.path}")
    png = out or run.path / "report.png"
    try:
        atomic_write(png, lambda file: fig.savefig(file, format="png", dpi=80), "the report's picture")
    finally:
        plt.close(fig)

    page = png.with_suffix(".html")
    encoded = base64.b64encode(png.read_bytes()).decode()
    last, heading = (final, "ganforge eval (eval.json)") if final else (evals[-1] if evals else {}, "last evaluation in training")
    figures = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in last.items()
                      if not isinstance(v, (list, dict)))
    atomic_write_bytes(page, (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>ganforge report: {html.escape(str(run.path))}</title>"
        f"<h1>{html.escape(config['variant'])} — {html.escape(str(run.path))}</h1>"
        f"<img alt='losses, metrics and samples' src='data:image/png;base64,{encoded}'>"
        + (f"<h2>{heading}</h2><table>{figures}</table>" if figures else "")
    ).encode(), "the report's page")
    return png, page


def _final_evaluation(run_path: Path) -> dict[str, Any] | None:
    """The figures ``ganforge eval`` wrote, where they hold a FID; None otherwise."""
    figures = read_evaluation(run_path)
    if figures is None or not isinstance(figures.get("fid"), (int, float)) or not isinstance(figures.get("step"), int):
        return None
    return figures


def _draw_evaluations(ax: Any, evals: list[dict[str, Any]], final: dict[str, Any] | None) -> None:
    """FID (left axis) and precision/recall (right) over training's evaluations, and the figure of
    ``ganforge eval`` with its spread over sample sets, each labelled with its evaluator and sample count."""
    other = ax.twinx()
    if evals:
        eval_steps = [r["step"] for r in evals]
        ax.plot(eval_steps, [r["fid"] for r in evals], "o-",
                label=f"FID in training ({evals[-1].get('evaluator', '?')}, n={evals[-1].get('n', '?')})")
        for key in ("precision", "recall"):
            other.plot(eval_steps, [r[key] for r in evals], "--", label=key)
    if final:
        protocol = final.get("protocol") or f"n={final.get('n', '?')}"
        ax.errorbar([final["step"]], [final["fid"]], yerr=[final.get("fid_sd", 0.0)], fmt="*", markersize=14, capsize=4,
                    color="black", label=f"ganforge eval ({final.get('evaluator', '?')}, {protocol})")
    ax.set(title="FID", xlabel="step")
    other.set_ylim(0, 1.05)
    lines, more = ax.get_legend_handles_labels(), other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)

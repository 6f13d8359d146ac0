"""``ganforge report``: one picture of a run (loss curves, metric curves, sample grids from its
start, middle and end) and an HTML page that embeds it."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .durable import atomic_write, atomic_write_bytes
from .errors import GanforgeError
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
    if evals:
        eval_steps = [r["step"] for r in evals]
        ax.plot(eval_steps, [r["fid"] for r in evals], "o-", label="FID")
        ax.set(title=f"FID ({evals[-1].get('evaluator', '?')}, n={evals[-1].get('n', '?')})", xlabel="step")
        other = ax.twinx()
        for key in ("precision", "recall"):
            other.plot(eval_steps, [r[key] for r in evals], "--", label=key)
        other.set_ylim(0, 1.05)
        lines = ax.get_legend_handles_labels()
        more = other.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    else:
        ax.text(0.5, 0.5, "no evaluations\n(train with --set eval_every=N)", ha="center", va="center")
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
    last = evals[-1] if evals else {}
    figures = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in last.items())
    atomic_write_bytes(page, (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>ganforge report: {html.escape(str(run.path))}</title>"
        f"<h1>{html.escape(config['variant'])} — {html.escape(str(run.path))}</h1>"
        f"<img alt='losses, metrics and samples' src='data:image/png;base64,{encoded}'>"
        + (f"<h2>last evaluation</h2><table>{figures}</table>" if figures else "")
    ).encode(), "the report's page")
    return png, page

"""Several models' evaluation reports side by side: one Markdown table, one JSON, one PNG plot.

>>> reports = {"model-a": evaluate("a.jsonl", "DIR", bootstrap=1000),
...            "model-b": evaluate("b.jsonl", "DIR", bootstrap=1000)}    # doctest: +SKIP
>>> print(side_by_side(reports)); plot_comparison(reports, "scores.png")  # doctest: +SKIP

The table has one line per task, category and metric and one column per model (score and,
where bootstrapped, its 95 % interval); the plot one panel per task and metric of
``evaluate.MAIN_METRICS`` with bars per category (captioning: per metric), one colour per model
and the intervals as error bars. Plotting needs ``matplotlib`` (``bigearthnet_txt[eval]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from bigearthnet_txt.evaluate import (
    MAIN_METRICS,
    METRIC_NAMES,
    EvaluationReport,
    format_interval,
)
from bigearthnet_txt.schema import TYPE_CAPTION


def _lines(reports: Mapping[str, EvaluationReport]) -> list[tuple[str, str, str]]:
    """(task, category, metric) in the order of the first report that has each."""
    seen: dict[tuple[str, str, str], None] = {}
    for report in reports.values():
        for task, cats in report.groups.items():
            for category, group in cats.items():
                for metric in group.scores:
                    seen.setdefault((task, category, metric), None)
    return list(seen)


def side_by_side(reports: Mapping[str, EvaluationReport]) -> str:
    """Markdown: models as columns, one line per task, category and metric."""
    if not reports:
        raise ValueError("no reports to compare")
    names = list(reports)
    first = next(iter(reports.values()))
    with_ci = any(r.bootstrap for r in reports.values())
    lines = [
        f"Evaluation on split(s) {', '.join(first.splits)}, {first.rows:,} rows"
        + (" (score [95% CI])" if with_ci else "")
        + ":",
        "",
        "| task | category | metric | " + " | ".join(names) + " |",
        "|---|---|---|" + "---:|" * len(names),
    ]
    for task, category, metric in _lines(reports):
        cells = []
        for name in names:
            group = reports[name].groups.get(task, {}).get(category)
            if group is None or metric not in group.scores:
                cells.append("–")
                continue
            cell = f"{group.scores[metric]:.2f}"
            if with_ci and metric in group.intervals:
                cell += f" {format_interval(group.intervals[metric])}"
            cells.append(cell)
        shown = f"**{category}**" if category == "overall" else category
        lines.append(
            f"| {task} | {shown} | {METRIC_NAMES.get(metric, metric)} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "| model | predictions | missing | unparseable | extra |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in reports.items():
        counts = (r.predictions, r.n_missing, r.n_unparseable, r.n_extra)
        lines.append(f"| {name} | " + " | ".join(f"{c:,}" for c in counts) + " |")
    return "\n".join(lines) + "\n"


def comparison_dict(reports: Mapping[str, EvaluationReport]) -> dict:
    """JSON-ready: ``{"models": {name: report.to_dict()}}``."""
    return {"models": {name: r.to_dict() for name, r in reports.items()}}


def write_comparison(
    reports: Mapping[str, EvaluationReport],
    out_json: Path | str | None = None,
    out_md: Path | str | None = None,
    out_png: Path | str | None = None,
) -> None:
    """Write the side-by-side JSON, Markdown and/or PNG plot."""
    for path in (out_json, out_md, out_png):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if out_json is not None:
        Path(out_json).write_text(json.dumps(comparison_dict(reports), indent=1) + "\n")
    if out_md is not None:
        Path(out_md).write_text(side_by_side(reports))
    if out_png is not None:
        plot_comparison(reports, out_png)


def _panels(reports: Mapping[str, EvaluationReport]) -> list[tuple[str, str, list]]:
    """(title, y label, [(x label, task, category, metric)]) per panel."""
    tasks = list(dict.fromkeys(t for r in reports.values() for t in r.groups))
    lines = _lines(reports)
    panels = []
    for task in tasks:
        if task == TYPE_CAPTION:
            bars = [(METRIC_NAMES[m], task, c, m) for t, c, m in lines if t == task]
            panels.append((task, "score", bars))
            continue
        for metric in MAIN_METRICS[task]:
            bars = [(c, task, c, m) for t, c, m in lines if t == task and m == metric]
            panels.append((f"{task}: {METRIC_NAMES[metric]}", "%", bars))
    return panels


def plot_comparison(reports: Mapping[str, EvaluationReport], path: Path | str) -> Path:
    """A PNG: one panel per task and main metric, grouped bars (one per model) per category,
    95 % intervals as error bars where bootstrapped. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = _panels(reports)
    names = list(reports)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.6 * len(panels)), squeeze=False, constrained_layout=True
    )
    width = 0.8 / len(names)
    for ax, (title, unit, bars) in zip(axes[:, 0], panels, strict=True):
        x = np.arange(len(bars))
        for k, name in enumerate(names):
            values, low, high = [], [], []
            for _, task, category, metric in bars:
                group = reports[name].groups.get(task, {}).get(category)
                value = group.scores.get(metric, np.nan) if group else np.nan
                lo, hi = group.intervals.get(metric, (value, value)) if group else (value, value)
                values.append(value)
                low.append(max(value - lo, 0.0) if np.isfinite(lo) else 0.0)
                high.append(max(hi - value, 0.0) if np.isfinite(hi) else 0.0)
            ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=name,
                   yerr=[low, high], capsize=2)  # fmt: skip
        ax.set_xticks(x, [b[0] for b in bars], rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncols=min(len(names), 4))
    first = next(iter(reports.values()))
    ci = " (bars: 95% bootstrap CI over patches)" if first.bootstrap else ""
    fig.suptitle(f"split(s) {', '.join(first.splits)}, {first.rows:,} rows{ci}", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

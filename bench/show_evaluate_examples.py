"""Write the README's examples: ``bench/results/show_example.png``, ``evaluate_example.md``
and the side-by-side comparison ``evaluate_comparison.md`` / ``evaluate_comparison.png``.

Converts the embedded real sample (six BigEarthNet v2.0 patches with stand-in texts in the
release schema) into a temporary folder, draws the bench patch, and scores deterministically
perturbed predictions on ``test`` + ``bench`` (the official loader's test set):

* binary: every 5th answer flipped, one written as ``" Yes."`` (accepted), one as ``"maybe"``;
* mcq: every 3rd answer shifted to the next letter, one ``"e"`` (unparseable);
* referring: boxes shifted right by 0.05 (0.25 for every 4th row), one malformed;
* captioning: every other word dropped from the caption;
* two rows left without prediction and one ID that is no row.

The comparison scores three "models" on every split of the sample (all six patches; the same
perturbations) with 95 % bootstrap intervals (1000 patch resamples, seed 0):

* ``exact``: the predictions above, in the release formats;
* ``chatty``: the same answers written as a chat model does (``"Yes, there is."``,
  ``"The answer is (b)."``, ``"B. <option text>"``, ``<box>(x1,y1),(x2,y2)</box>`` on the 0–1000
  grid, read with ``box_scale="1000"``, captions prefixed with ``"The image shows "``);
* ``chatty --strict``: the same file read with the exact formats only.

Run: ``python bench/show_evaluate_examples.py [--out bench/results]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bigearthnet_txt.annotations import answer_letter, parse_box, render_box
from bigearthnet_txt.box_scales import format_scaled
from bigearthnet_txt.conversion.commands import demo
from bigearthnet_txt.evaluate import evaluate
from bigearthnet_txt.evaluation_compare import plot_comparison, side_by_side
from bigearthnet_txt.show import show
from bigearthnet_txt.tables import read_tables

SHOW_PATCH = "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85"
SPLITS = ("test", "bench")
COMPARISON_SPLITS = ("train", "validation", "test", "bench")  # all six sample patches


def convert_sample(out: Path) -> Path:
    """The embedded sample converted (annotation fixtures + real imagery), as
    ``bigearthnet-txt demo`` does."""
    data = out / "data_set"
    if demo.convert_sample(data):
        raise SystemExit("converting the embedded sample failed")
    return data


def perturb(row: dict, n: int) -> str | None:
    """A deterministic, partly wrong prediction for the ``n``-th row of its type."""
    output, kind = row["output"], row["type"]
    if kind == "binary":
        if n == 1:
            return " Yes." if output == "yes" else " No."
        if n == 2:
            return "maybe"
        return ("no" if output == "yes" else "yes") if n % 5 == 0 else output
    if kind == "mcq":
        if n == 1:
            return "e"
        return "abcd"[("abcd".index(output) + 1) % 4] if n % 3 == 0 else output
    if kind == "bounding box":
        if n == 1:
            return "[0.1 0.2]"
        x1, y1, x2, y2 = parse_box(output)
        dx = min(0.25 if n % 4 == 0 else 0.05, 1.0 - x2)
        return render_box((round(x1 + dx, 2), y1, round(x2 + dx, 2), y2))
    return " ".join(output.split()[::2])


def predictions(data: Path, path: Path, splits=SPLITS) -> Path:
    rows = read_tables(data, splits=splits, columns=["ID", "type", "output"]).to_pylist()
    seen: dict[str, int] = {}
    lines = []
    for row in sorted(rows, key=lambda r: r["ID"]):
        seen[row["type"]] = n = seen.get(row["type"], 0) + 1
        if n == 3 and row["type"] in ("binary", "bounding box"):
            continue  # left without prediction
        lines.append(json.dumps({"ID": row["ID"], "prediction": perturb(row, n)}))
    lines.append(json.dumps({"ID": 10**9, "prediction": "yes"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def chatty(text: str | None, row: dict, n: int) -> str | None:
    """``text`` (an exact-format prediction) as a chat model would write it."""
    if text is None:
        return None
    kind = row["type"]
    if kind == "binary":
        word = text.strip().rstrip(".").lower()
        return {"yes": "Yes, there is.", "no": "No, there is not."}.get(word, text)
    if kind == "mcq":
        if text not in ("a", "b", "c", "d"):
            return text
        index = "abcd".index(text)
        if n % 2:
            return f"The answer is ({answer_letter(index)})."
        return f"{answer_letter(index).upper()}. {row['options'][index]}"
    if kind == "bounding box":
        try:
            x1, y1, x2, y2 = (format_scaled(v, "1000") for v in parse_box(text))
        except ValueError:
            return text
        return f"<box>({x1},{y1}),({x2},{y2})</box>"
    return "The image shows " + text


def chatty_predictions(data: Path, exact: Path, path: Path, splits=SPLITS) -> Path:
    rows = read_tables(data, splits=splits, columns=["ID", "type", "options"]).to_pylist()
    by_id = {r["ID"]: r for r in rows}
    seen: dict[str, int] = {}
    lines = []
    for line in exact.read_text().splitlines():
        record = json.loads(line)
        row = by_id.get(record["ID"])
        if row is not None:
            seen[row["type"]] = n = seen.get(row["type"], 0) + 1
            record["prediction"] = chatty(record["prediction"], row, n)
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def provenance() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    command = "python bench/show_evaluate_examples.py " + " ".join(sys.argv[1:])
    return (
        f"Made by `{command.strip()}` at commit `{commit}` on "
        f"{datetime.date.today().isoformat()}, on the embedded sample (six real patches, "
        "schema-exact stand-in texts).\n\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = convert_sample(Path(tmp))
        show(SHOW_PATCH, data, args.out / "show_example.png")
        preds = predictions(data, Path(tmp) / "predictions.jsonl")
        report = evaluate(preds, data, splits=SPLITS)
        (args.out / "evaluate_example.md").write_text(provenance() + report.to_markdown())
        every = predictions(data, Path(tmp) / "every_split.jsonl", COMPARISON_SPLITS)
        talk = chatty_predictions(data, every, Path(tmp) / "chatty.jsonl", COMPARISON_SPLITS)
        options = {"splits": COMPARISON_SPLITS, "bootstrap": 1000, "seed": 0}
        reports = {
            "exact": evaluate(every, data, **options),
            "chatty": evaluate(talk, data, box_scale="1000", **options),
            "chatty --strict": evaluate(talk, data, box_scale="1000", strict=True, **options),
        }
        table = side_by_side(reports)
        (args.out / "evaluate_comparison.md").write_text(provenance() + table)
        plot_comparison(reports, args.out / "evaluate_comparison.png")
    print(report.to_markdown(), end="")
    print(table, end="")
    print(f"wrote {args.out / 'show_example.png'}, {args.out / 'evaluate_example.md'} and "
          f"{args.out / 'evaluate_comparison.md'} / .png")  # fmt: skip


if __name__ == "__main__":
    main()

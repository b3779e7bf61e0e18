"""Write the README's examples: ``bench/results/show_example.png`` and ``evaluate_example.md``.

Converts the embedded real sample (six BigEarthNet v2.0 patches with stand-in texts in the
release schema) into a temporary folder, draws the bench patch, and scores deterministically
perturbed predictions on ``test`` + ``bench`` (the official loader's test set):

* binary: every 5th answer flipped, one written as ``" Yes."`` (accepted), one as ``"maybe"``;
* mcq: every 3rd answer shifted to the next letter, one ``"e"`` (unparseable);
* referring: boxes shifted right by 0.05 (0.25 for every 4th row), one malformed;
* captioning: every other word dropped from the caption;
* two rows left without prediction and one ID that is no row.

Run: ``python bench/show_evaluate_examples.py [--out bench/results]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bigearthnet_txt.annotations import parse_box, render_box
from bigearthnet_txt.conversion.commands import demo
from bigearthnet_txt.evaluate import evaluate, write_report
from bigearthnet_txt.show import show
from bigearthnet_txt.tables import read_tables

SHOW_PATCH = "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85"
SPLITS = ("test", "bench")


def convert_sample(out: Path) -> Path:
    """The embedded sample converted (annotation fixtures + real imagery), as ``bigearthnet-txt demo`` does."""
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


def predictions(data: Path, path: Path) -> Path:
    rows = read_tables(data, splits=SPLITS, columns=["ID", "type", "output"]).to_pylist()
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
        write_report(report, out_md=args.out / "evaluate_example.md")
    print(report.to_markdown(), end="")
    print(f"wrote {args.out / 'show_example.png'} and {args.out / 'evaluate_example.md'}")


if __name__ == "__main__":
    main()

"""Score predictions against the converted BigEarthNet.txt tables, task by task.

>>> report = evaluate("preds.jsonl", "DIR", splits=["bench"])  # doctest: +SKIP
>>> print(report.to_markdown()); report.to_dict()               # doctest: +SKIP

Predictions are keyed by the row ``ID``: a JSON Lines file of ``{"ID": …, "prediction": …}``
objects or a Parquet file with columns ``ID`` and ``prediction`` (one row per ID; a repeated ID
is an error). Every row of the evaluated splits is scored:

* **captioning** — corpus BLEU-4 and chrF (sacrebleu defaults: ``13a`` tokeniser, one reference
  per caption), with BLEU's n-gram precisions and brevity penalty;
* **binary** / **mcq** — accuracy overall and per category. Answers are parsed with the
  project's parsers (``parse_binary``: ``yes``/``no``; ``answer_index``: a letter ``a``–``d``)
  after :func:`normalise_answer` (outer whitespace, letter case and one trailing period are
  ignored unless ``strict``);
* **bounding box** — mean IoU and Acc@0.5 (share of rows with IoU ≥ 0.5, up to a 1e-9 float
  tolerance), separately for the
  ``point`` and ``reference`` categories and over both. Predictions are parsed with
  ``parse_box`` (``[x1 y1, x2 y2]``, normalised, outer whitespace ignored unless ``strict``).

A prediction that does not parse scores as wrong (IoU 0) and is counted as ``unparseable``; a row
without prediction scores as wrong too (an empty caption) and is counted as ``missing``; IDs that
are not rows of the evaluated splits are counted as ``extra``. The report lists up to
``EXAMPLES`` IDs of each.

Split semantics: the official loader's ``setup('test')`` reads ``test`` and ``bench`` together;
here each given split is scored as given, so ``splits=["bench"]`` is the verified benchmark alone
and ``splits=["test", "bench"]`` reproduces the loader's test set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.annotations import answer_index, parse_binary, parse_box
from bigearthnet_txt.schema import (
    CATEGORIES_BY_TYPE,
    CATEGORY_POINT,
    CATEGORY_REFERENCE,
    TYPE_BINARY,
    TYPE_BOX,
    TYPE_CAPTION,
    TYPE_MCQ,
)
from bigearthnet_txt.tables import read_tables

EXAMPLES = 20  # IDs listed per missing / extra / unparseable group in the report
IOU_THRESHOLD = 0.5
IOU_TOLERANCE = 1e-9  # float rounding: boxes on the 0.01 grid with IoU exactly 0.5 count as hits
REFERENCE_COLUMNS = ("ID", "type", "category", "output", "answer_index", "answer_bool")


# --- predictions -----------------------------------------------------------------------------


def read_predictions(path: Path | str) -> pa.Table:
    """``ID`` (int64) and ``prediction`` (string, null where the file has null) of a prediction
    file: ``.parquet`` or JSON Lines (any other suffix). Raises ``ValueError`` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file not found: {path}")
    if path.suffix == ".parquet":
        return _validate(pq.read_table(path), str(path))
    return _validate(_read_jsonl(path), str(path))


def _validate(table: pa.Table, source: str = "predictions") -> pa.Table:
    """``table``'s ``ID`` (int64) and ``prediction`` (string) columns; raises ``ValueError`` on a
    missing column, uncastable values, a null ID or a repeated ID."""
    missing = [c for c in ("ID", "prediction") if c not in table.column_names]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; need ID and prediction")
    try:
        table = table.select(["ID", "prediction"]).cast(
            pa.schema([("ID", pa.int64()), ("prediction", pa.string())])
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ValueError(f"{source}: ID must be integers and prediction strings ({err})") from None
    if table["ID"].null_count:
        raise ValueError(f"{source}: null ID")
    counts = pc.value_counts(table["ID"])
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        raise ValueError(
            f"{source}: ID {repeated[0].as_py()} has more than one prediction "
            f"({len(repeated)} repeated IDs)"
        )
    return table


def _read_jsonl(path: Path) -> pa.Table:
    ids: list[int] = []
    predictions: list[str | None] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                row_id, prediction = record["ID"], record["prediction"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f"{path}:{number}: expected a JSON object with keys "
                    f"'ID' and 'prediction', got {line.strip()[:200]!r}"
                ) from None
            if isinstance(row_id, bool) or not isinstance(row_id, int):
                raise ValueError(f"{path}:{number}: ID must be an integer, got {row_id!r}")
            if prediction is not None and not isinstance(prediction, str):
                raise ValueError(
                    f"{path}:{number}: prediction must be a string, got {prediction!r}"
                )
            ids.append(row_id)
            predictions.append(prediction)
    return pa.table(
        {"ID": pa.array(ids, pa.int64()), "prediction": pa.array(predictions, pa.string())}
    )


def normalise_answer(text: str) -> str:
    """Lenient form of a binary/MCQ answer: outer whitespace, letter case and one trailing
    period ignored (``" Yes."`` → ``"yes"``, ``"B"`` → ``"b"``)."""
    text = text.strip().lower()
    return text[:-1].rstrip() if text.endswith(".") else text


# --- metrics ---------------------------------------------------------------------------------


def box_iou(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``[N, 4]`` boxes ``(x1, y1, x2, y2)``. Boxes that touch share no area
    (IoU 0); two boxes of zero area have IoU 1 when equal, else 0."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 4)
    width = np.clip(
        np.minimum(pred[:, 2], target[:, 2]) - np.maximum(pred[:, 0], target[:, 0]), 0, None
    )
    height = np.clip(
        np.minimum(pred[:, 3], target[:, 3]) - np.maximum(pred[:, 1], target[:, 1]), 0, None
    )
    intersection = width * height
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area(pred) + area(target) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / union, 0.0)
    return np.where(union > 0, iou, np.all(pred == target, axis=1).astype(np.float64))


def caption_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU-4 and chrF (sacrebleu defaults, one reference each), on a 0–100 scale."""
    import sacrebleu

    if not references:
        return {}
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {
        "bleu4": b.score,
        "bleu_precisions": list(b.precisions),
        "brevity_penalty": b.bp,
        "chrf": c.score,
        "signatures": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }


# --- the report ------------------------------------------------------------------------------


@dataclass
class Group:
    """The rows of one task (and category): how many, how many parsed / missing, the scores."""

    rows: int = 0
    missing: int = 0
    unparseable: int = 0
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "missing": self.missing,
            "unparseable": self.unparseable,
            **self.scores,
        }


@dataclass
class EvaluationReport:
    """Scores per task and category plus the bookkeeping of missing, extra and unparseable IDs."""

    splits: list[str]
    rows: int
    predictions: int
    groups: dict[str, dict[str, Group]]  # type -> category (or "overall") -> Group
    missing_ids: list[int]
    extra_ids: list[int]
    unparseable_ids: list[int]
    n_missing: int
    n_extra: int
    n_unparseable: int
    caption_details: dict = field(default_factory=dict)
    strict: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form (see :meth:`to_markdown` for the scores it holds)."""
        return {
            "splits": self.splits,
            "rows": self.rows,
            "predictions": self.predictions,
            "strict": self.strict,
            "missing": {"count": self.n_missing, "examples": self.missing_ids},
            "extra": {"count": self.n_extra, "examples": self.extra_ids},
            "unparseable": {"count": self.n_unparseable, "examples": self.unparseable_ids},
            "tasks": {
                t: {c: g.to_dict() for c, g in cats.items()} for t, cats in self.groups.items()
            },
            "captioning_details": self.caption_details,
        }

    def to_markdown(self) -> str:
        """A Markdown table: one line per task, category and metric; then the bookkeeping."""
        lines = [
            f"Evaluation on split(s) {', '.join(self.splits)}: {self.rows:,} rows, "
            f"{self.predictions:,} predictions.",
            "",
            "| task | category | metric | score | rows | unparseable | missing |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for task, cats in self.groups.items():
            for category, g in cats.items():
                for metric, value in g.scores.items():
                    shown = f"**{category}**" if category == "overall" else category
                    lines.append(
                        f"| {task} | {shown} | {_METRIC_NAMES.get(metric, metric)} | "
                        f"{value:.2f} | {g.rows:,} | {g.unparseable:,} | {g.missing:,} |"
                    )
        lines += [
            "",
            f"Missing predictions: {self.n_missing:,}{_examples(self.missing_ids, self.n_missing)}. "
            f"Extra IDs (not in the split): {self.n_extra:,}{_examples(self.extra_ids, self.n_extra)}. "
            f"Unparseable: {self.n_unparseable:,}{_examples(self.unparseable_ids, self.n_unparseable)}.",
            "",
            "Accuracy, IoU and Acc@0.5 in %; BLEU-4 and chrF on sacrebleu's 0–100 scale. "
            "Unparseable and missing predictions count as wrong."
            + (
                ""
                if self.strict
                else " Answers compared after trimming whitespace, "
                "lower-casing and dropping one trailing period."
            ),
        ]
        return "\n".join(lines) + "\n"


_METRIC_NAMES = {
    "accuracy": "accuracy",
    "bleu4": "BLEU-4",
    "chrf": "chrF",
    "mean_iou": "mean IoU",
    "acc_at_0.5": "Acc@0.5",
}


def _examples(ids: list[int], count: int) -> str:
    if not ids:
        return ""
    more = ", …" if count > len(ids) else ""
    return " (IDs " + ", ".join(str(i) for i in ids) + more + ")"


# --- scoring ---------------------------------------------------------------------------------


def _parse_unique(texts: pa.Array, parser: Callable[[str], object]) -> tuple[list, np.ndarray]:
    """Parse each distinct text once: (values per row, None where unparseable; bool mask ok)."""
    unique = pc.unique(texts).to_pylist()
    parsed: dict[str, object] = {}
    for text in unique:
        try:
            parsed[text] = parser(text) if text is not None else None
        except ValueError:
            parsed[text] = None
    values = [parsed[t] for t in texts.to_pylist()]
    return values, np.array([v is not None for v in values], dtype=bool)


def _normalised(texts: pa.Array, strict: bool, answers: bool) -> pa.Array:
    if strict:
        return texts
    if answers:
        return pa.array(
            [normalise_answer(t) if t is not None else None for t in texts.to_pylist()], pa.string()
        )
    return pc.utf8_trim_whitespace(texts)


def _group(rows: np.ndarray, present: np.ndarray, ok: np.ndarray, scores: dict) -> Group:
    return Group(
        rows=int(rows.sum()),
        missing=int((rows & ~present).sum()),
        unparseable=int((rows & present & ~ok).sum()),
        scores=scores,
    )


def _score_choice(
    refs: pa.Table,
    preds: pa.Array,
    present: np.ndarray,
    strict: bool,
    parser: Callable[[str], object],
    truth: np.ndarray,
    task: str,
):
    values, ok = _parse_unique(_normalised(preds, strict, answers=True), parser)
    predicted = np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    correct = ok & (predicted == truth)
    categories = refs["category"].to_numpy(zero_copy_only=False)
    out = {}
    for category in CATEGORIES_BY_TYPE[task]:
        rows = categories == category
        if rows.any():
            out[category] = _group(rows, present, ok, {"accuracy": 100 * correct[rows].mean()})
    everything = np.ones(len(truth), dtype=bool)
    out["overall"] = _group(everything, present, ok, {"accuracy": 100 * correct.mean()})
    return out, ok


def _score_boxes(refs: pa.Table, preds: pa.Array, present: np.ndarray, strict: bool):
    values, ok = _parse_unique(_normalised(preds, strict, answers=False), parse_box)
    predicted = np.array([v if v is not None else (0.0, 0.0, 0.0, 0.0) for v in values], np.float64)
    target = np.array([parse_box(t) for t in refs["output"].to_pylist()], np.float64)
    iou = np.where(ok, box_iou(predicted.reshape(-1, 4), target.reshape(-1, 4)), 0.0)
    categories = refs["category"].to_numpy(zero_copy_only=False)
    out = {}
    for name, rows in (
        (CATEGORY_POINT, categories == CATEGORY_POINT),
        (CATEGORY_REFERENCE, categories == CATEGORY_REFERENCE),
        ("overall", np.ones(len(iou), dtype=bool)),
    ):
        if rows.any():
            out[name] = _group(
                rows,
                present,
                ok,
                {
                    "mean_iou": 100 * iou[rows].mean(),
                    "acc_at_0.5": 100 * (iou[rows] >= IOU_THRESHOLD - IOU_TOLERANCE).mean(),
                },
            )
    return out, ok


def evaluate(
    predictions: Path | str | pa.Table,
    data_dir: Path | str,
    splits: Sequence[str] = ("bench",),
    strict: bool = False,
) -> EvaluationReport:
    """Score ``predictions`` (a file, or a table with ``ID`` and ``prediction``, checked like a
    file) against every row of ``splits`` in the converted tables under ``data_dir``."""
    splits = list(splits)
    if isinstance(predictions, pa.Table):
        preds = _validate(predictions)
    else:
        preds = read_predictions(predictions)
    refs = read_tables(data_dir, splits=splits, columns=REFERENCE_COLUMNS)
    if refs.num_rows == 0:
        raise ValueError(f"{data_dir}: no rows in split(s) {', '.join(splits)}")
    position = pc.index_in(refs["ID"], value_set=preds["ID"])
    present_all = position.is_valid().to_numpy(zero_copy_only=False)
    aligned = pc.take(preds["prediction"], position)
    types = refs["type"].to_numpy(zero_copy_only=False)
    extra = pc.filter(preds["ID"], pc.invert(pc.is_in(preds["ID"], value_set=refs["ID"])))

    groups: dict[str, dict[str, Group]] = {}
    details: dict = {}
    unparseable = np.zeros(refs.num_rows, dtype=bool)
    for task in (TYPE_CAPTION, TYPE_BINARY, TYPE_MCQ, TYPE_BOX):
        mask = types == task
        if not mask.any():
            continue
        sub = refs.filter(pa.array(mask))
        sub_preds = pc.filter(aligned, pa.array(mask))
        present = present_all[mask]
        if task == TYPE_CAPTION:
            null = ~sub_preds.is_valid().to_numpy(zero_copy_only=False)
            hypotheses = [t if t is not None else "" for t in sub_preds.to_pylist()]
            scores = caption_scores(hypotheses, sub["output"].to_pylist())
            details = {k: v for k, v in scores.items() if k not in ("bleu4", "chrf")}
            ok = ~(null & present)
            everything = np.ones(len(hypotheses), dtype=bool)
            groups[task] = {
                "overall": _group(
                    everything, present, ok, {"bleu4": scores["bleu4"], "chrf": scores["chrf"]}
                )
            }
        elif task == TYPE_BINARY:
            truth = sub["answer_bool"].to_numpy(zero_copy_only=False).astype(np.int64)
            groups[task], ok = _score_choice(
                sub, sub_preds, present, strict, parse_binary, truth, task
            )
        elif task == TYPE_MCQ:
            truth = sub["answer_index"].to_numpy(zero_copy_only=False).astype(np.int64)
            groups[task], ok = _score_choice(
                sub, sub_preds, present, strict, answer_index, truth, task
            )
        else:
            groups[task], ok = _score_boxes(sub, sub_preds, present, strict)
        unparseable[np.flatnonzero(mask)[present & ~ok]] = True

    ids = refs["ID"].to_numpy()
    missing_ids = ids[~present_all]
    unparseable_ids = ids[unparseable]
    return EvaluationReport(
        splits=splits,
        rows=refs.num_rows,
        predictions=preds.num_rows,
        groups=groups,
        missing_ids=sorted(missing_ids.tolist())[:EXAMPLES],
        extra_ids=sorted(extra.to_pylist())[:EXAMPLES],
        unparseable_ids=sorted(unparseable_ids.tolist())[:EXAMPLES],
        n_missing=int(missing_ids.size),
        n_extra=len(extra),
        n_unparseable=int(unparseable_ids.size),
        caption_details=details,
        strict=strict,
    )


def write_report(
    report: EvaluationReport, out_json: Path | str | None = None, out_md: Path | str | None = None
) -> None:
    """Write the report's JSON and/or Markdown form."""
    if out_json is not None:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    if out_md is not None:
        Path(out_md).parent.mkdir(parents=True, exist_ok=True)
        Path(out_md).write_text(report.to_markdown())

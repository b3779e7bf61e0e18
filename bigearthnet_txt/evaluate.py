"""Score predictions against the converted BigEarthNet.txt tables, task by task.

>>> report = evaluate("preds.jsonl", "DIR", splits=["bench"], bootstrap=1000)  # doctest: +SKIP
>>> print(report.to_markdown()); report.to_dict()                               # doctest: +SKIP

Predictions are keyed by the row ``ID``: a JSON Lines file of ``{"ID": …, "prediction": …}``
objects or a Parquet file with columns ``ID`` and ``prediction`` (one row per ID; a repeated ID
is an error). Every row of the evaluated splits and tasks (``tasks``, default all) is scored:

* **captioning** — corpus BLEU-4 and chrF from sacrebleu (defaults: ``13a`` tokeniser, one
  reference per caption), with BLEU's n-gram precisions and brevity penalty; plus the
  COCO-caption BLEU-4 and CIDEr of ``pycocoevalcap`` (× 100, over lower-cased tokens without
  punctuation, :func:`coco_tokens`), named ``coco_bleu4`` / ``coco_cider`` so that the two BLEUs
  are never mixed (the COCO one is computed on different tokens with different smoothing);
* **binary** / **mcq** — accuracy overall and per category;
* **bounding box** — mean IoU and Acc@0.5 (share of rows with IoU ≥ 0.5, up to a 1e-9 float
  tolerance), separately for the ``point`` and ``reference`` categories and over both.

Answers are read from free-form text by :mod:`bigearthnet_txt.answer_extraction` (its docstring
lists the rules); ``strict=True`` accepts only the release's exact formats. Boxes are read on the
``box_scale`` grid (``unit`` as released, ``1000``, ``pixels``; see ``box_scales``).

A prediction that does not parse scores as wrong (IoU 0) and is counted as ``unparseable`` (the
report lists examples with the reason); a row without prediction scores as wrong too (an empty
caption) and is counted as ``missing``; IDs that are not rows of the evaluated splits and tasks
are counted as ``extra``. The report lists up to ``EXAMPLES`` IDs of each.

Breakdowns: by country, season, climate zone (the row's columns) and land-cover class (the
labels of the row's patch in ``DIR/patches.parquet``; a row counts once for every class of its
patch). ``bootstrap=N`` adds 95 % percentile intervals from ``N`` resamples of the patches
(seeded; every row of a drawn patch comes along), for every mean metric, sacrebleu BLEU-4 (from
per-caption sufficient statistics) and CIDEr; chrF and COCO BLEU-4 get none.

Split semantics: the official loader's ``setup('test')`` reads ``test`` and ``bench`` together;
here each given split is scored as given, so ``splits=["bench"]`` is the verified benchmark alone
and ``splits=["test", "bench"]`` reproduces the loader's test set.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.annotations import parse_box
from bigearthnet_txt.answer_extraction import (
    Extraction,
    extract_binary,
    extract_box,
    extract_choice,
)
from bigearthnet_txt.box_scales import check_scale
from bigearthnet_txt.schema import (
    CATEGORIES_BY_TYPE,
    PATCH_TABLE,
    TABLE_TASKS,
    TYPE_BINARY,
    TYPE_BOX,
    TYPE_CAPTION,
    TYPE_MCQ,
    TYPES,
)
from bigearthnet_txt.tables import read_tables

logger = logging.getLogger(__name__)

EXAMPLES = 20  # IDs listed per missing / extra / unparseable group in the report
IOU_THRESHOLD = 0.5
IOU_TOLERANCE = 1e-9  # float rounding: boxes on the 0.01 grid with IoU exactly 0.5 count as hits
REFERENCE_COLUMNS = (
    "ID",
    "patch_id",
    "type",
    "category",
    "output",
    "options",
    "answer_index",
    "answer_bool",
    "country",
    "season",
    "climate_zone",
)


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
    union = _area(pred) + _area(target) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / union, 0.0)
    return np.where(union > 0, iou, np.all(pred == target, axis=1).astype(np.float64))


# --- caption metrics -------------------------------------------------------------------------


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


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


def chrf_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF (defaults, one reference each), 0–100."""
    from sacrebleu.metrics import CHRF

    return CHRF().corpus_score(list(hypotheses), [list(references)]).score


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """float64 ``[N, 10]`` sacrebleu sufficient statistics per caption: hypothesis length,
    reference length, matching 1–4-grams, hypothesis 1–4-grams. Summed over rows they give
    that subset's corpus BLEU (:func:`bleu_from_statistics`)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    out = np.zeros((len(hypotheses), 10), dtype=np.float64)
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        s = bleu.sentence_score(hyp, [ref])
        out[i] = (s.sys_len, s.ref_len, *s.counts, *s.totals)
    return out


def bleu_from_statistics(stats: np.ndarray) -> float:
    """sacrebleu corpus BLEU-4 (``exp`` smoothing, its default) from summed ``[10]`` statistics."""
    from sacrebleu.metrics import BLEU

    stats = np.asarray(stats, dtype=np.float64)
    return BLEU.compute_bleu(
        correct=[int(v) for v in stats[2:6]],
        total=[int(v) for v in stats[6:10]],
        sys_len=int(stats[0]),
        ref_len=int(stats[1]),
        smooth_method="exp",
    ).score


def coco_tokens(text: str) -> str:
    """COCO-caption style tokens: lower-cased, split by sacrebleu's ``13a`` tokeniser, without the
    punctuation tokens the COCO ``PTBTokenizer`` drops (that tokeniser needs Java)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return " ".join(w for w in Tokenizer13a()(text.lower()).split() if w not in PUNCTUATIONS)


@functools.cache
def _coco_scorers():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        logger.warning("pycocoevalcap is not installed: no COCO BLEU-4 / CIDEr (pip install "
                       "bigearthnet_txt[eval])")  # fmt: skip
        return None
    return Bleu, Cider


def coco_bleu4(
    hypotheses: Sequence[str], references: Sequence[str], tokenized: bool = False
) -> float | None:
    """COCO-caption corpus BLEU-4 (``pycocoevalcap``'s scorer over :func:`coco_tokens`, × 100);
    ``None`` without ``pycocoevalcap``. ``tokenized``: the texts are already ``coco_tokens``."""
    scorers = _coco_scorers()
    if scorers is None or not references:
        return None
    gts = {i: [r if tokenized else coco_tokens(r)] for i, r in enumerate(references)}
    res = {i: [h if tokenized else coco_tokens(h)] for i, h in enumerate(hypotheses)}
    bleu, _ = scorers[0](4).compute_score(gts, res, verbose=0)
    return 100 * float(bleu[3])


def coco_cider(
    hypotheses: Sequence[str], references: Sequence[str], tokenized: bool = False
) -> np.ndarray | None:
    """Per-caption CIDEr (``pycocoevalcap``'s ``Cider`` over :func:`coco_tokens`, × 100;
    document frequencies from all the given references); their mean is the corpus CIDEr.
    ``None`` without ``pycocoevalcap``."""
    scorers = _coco_scorers()
    if scorers is None or not references:
        return None
    gts = {i: [r if tokenized else coco_tokens(r)] for i, r in enumerate(references)}
    res = {i: [h if tokenized else coco_tokens(h)] for i, h in enumerate(hypotheses)}
    _, cider = scorers[1]().compute_score(gts, res)
    return 100 * np.asarray(cider, dtype=np.float64)


# --- the report ------------------------------------------------------------------------------


@dataclass
class Group:
    """The rows of one task (and category or breakdown value): how many, how many parsed /
    missing, the scores and their 95 % bootstrap intervals (``metric -> (low, high)``)."""

    rows: int = 0
    missing: int = 0
    unparseable: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "rows": self.rows,
            "missing": self.missing,
            "unparseable": self.unparseable,
            **self.scores,
        }
        if self.intervals:
            out["ci95"] = {k: list(v) for k, v in self.intervals.items()}
        return out


BREAKDOWNS: tuple[str, ...] = ("country", "season", "climate_zone", "land_cover")
BREAKDOWN_NAMES = {
    "country": "country",
    "season": "season",
    "climate_zone": "climate zone",
    "land_cover": "land-cover class",
}
# The metric each breakdown table and plot shows per task.
MAIN_METRICS: dict[str, tuple[str, ...]] = {
    TYPE_CAPTION: ("bleu4", "coco_cider"),
    TYPE_BINARY: ("accuracy",),
    TYPE_MCQ: ("accuracy",),
    TYPE_BOX: ("mean_iou", "acc_at_0.5"),
}


@dataclass
class EvaluationReport:
    """Scores per task and category plus the bookkeeping of missing, extra and unparseable IDs;
    ``breakdowns`` (dimension → value → task → Group) and bootstrap intervals where asked."""

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
    breakdowns: dict[str, dict[str, dict[str, Group]]] = field(default_factory=dict)
    unparseable_examples: list[dict] = field(default_factory=list)
    unparseable_reasons: dict[str, int] = field(default_factory=dict)
    box_scale: str = "unit"
    bootstrap: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (see :meth:`to_markdown` for the scores it holds)."""
        return {
            "splits": self.splits,
            "rows": self.rows,
            "predictions": self.predictions,
            "strict": self.strict,
            "box_scale": self.box_scale,
            "bootstrap": self.bootstrap,
            "missing": {"count": self.n_missing, "examples": self.missing_ids},
            "extra": {"count": self.n_extra, "examples": self.extra_ids},
            "unparseable": {
                "count": self.n_unparseable,
                "examples": self.unparseable_ids,
                "reasons": self.unparseable_reasons,
                "listed": self.unparseable_examples,
            },
            "tasks": {
                t: {c: g.to_dict() for c, g in cats.items()} for t, cats in self.groups.items()
            },
            "breakdowns": {
                dim: {
                    value: {t: g.to_dict() for t, g in tasks.items()}
                    for value, tasks in values.items()
                }
                for dim, values in self.breakdowns.items()
            },
            "captioning_details": self.caption_details,
        }

    def to_markdown(self) -> str:
        """Markdown: one line per task, category and metric (with the 95 % interval when
        bootstrapped); one table per breakdown; then the bookkeeping and unparseable examples."""
        ci = bool(self.bootstrap)
        lines = [
            f"Evaluation on split(s) {', '.join(self.splits)}: {self.rows:,} rows, "
            f"{self.predictions:,} predictions.",
            "",
            "| task | category | metric | score |"
            + (" 95% CI |" if ci else "")
            + " rows | unparseable | missing |",
            "|---|---|---|---:|" + ("---|" if ci else "") + "---:|---:|---:|",
        ]
        for task, cats in self.groups.items():
            for category, g in cats.items():
                for metric, value in g.scores.items():
                    shown = f"**{category}**" if category == "overall" else category
                    interval = f" {format_interval(g.intervals.get(metric))} |" if ci else ""
                    lines.append(
                        f"| {task} | {shown} | {METRIC_NAMES.get(metric, metric)} | "
                        f"{value:.2f} |{interval} {g.rows:,} | {g.unparseable:,} | {g.missing:,} |"
                    )
        for dim, values in self.breakdowns.items():
            lines += ["", f"By {BREAKDOWN_NAMES.get(dim, dim)}"
                      + (" (a row counts for every class of its patch)" if dim == "land_cover"
                         else "") + ":", ""]  # fmt: skip
            columns = [(t, m) for t in self.groups for m in MAIN_METRICS[t]]
            lines.append(
                f"| {BREAKDOWN_NAMES.get(dim, dim)} | "
                + " | ".join(f"{t} {METRIC_NAMES[m]}" for t, m in columns)
                + " |"
            )
            lines.append("|---|" + "---:|" * len(columns))
            for value, tasks in values.items():
                cells = []
                for t, m in columns:
                    g = tasks.get(t)
                    if g is None or m not in g.scores:
                        cells.append("–")
                        continue
                    interval = f" {format_interval(g.intervals.get(m))}" if ci else ""
                    cells.append(f"{g.scores[m]:.1f}{interval} ({g.rows:,})")
                lines.append(f"| {value} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Missing predictions: {self.n_missing:,}"
            f"{_examples(self.missing_ids, self.n_missing)}. "
            f"Extra IDs (not in the split): {self.n_extra:,}"
            f"{_examples(self.extra_ids, self.n_extra)}. "
            f"Unparseable: {self.n_unparseable:,}"
            f"{_examples(self.unparseable_ids, self.n_unparseable)}.",
        ]
        if self.unparseable_examples:
            lines += ["", "| ID | prediction | why unparseable |", "|---:|---|---|"]
            for ex in self.unparseable_examples:
                shown = json.dumps(ex["prediction"])[:80].replace("|", "\\|")
                lines.append(f"| {ex['ID']} | `{shown}` | {ex['reason']} |")
        lines += [
            "",
            "Accuracy, IoU and Acc@0.5 in %; BLEU-4 (sacrebleu) and chrF on sacrebleu's 0–100 "
            "scale; BLEU-4 (COCO) and CIDEr (COCO) are pycocoevalcap's scores × 100. "
            "Unparseable and missing predictions count as wrong. "
            + (
                "Answers parsed exactly as written (--strict)."
                if self.strict
                else "Answers read from free-form text (bigearthnet_txt.answer_extraction)."
            )
            + (f" Boxes read on the {self.box_scale!r} scale." if self.box_scale != "unit" else "")
            + (
                f" 95% CI: percentile bootstrap over patches, {self.bootstrap['resamples']} "
                f"resamples, seed {self.bootstrap['seed']}."
                if ci
                else ""
            ),
        ]
        return "\n".join(lines) + "\n"


METRIC_NAMES = {
    "accuracy": "accuracy",
    "bleu4": "BLEU-4 (sacrebleu)",
    "chrf": "chrF",
    "coco_bleu4": "BLEU-4 (COCO)",
    "coco_cider": "CIDEr (COCO)",
    "mean_iou": "mean IoU",
    "acc_at_0.5": "Acc@0.5",
}
_METRIC_NAMES = METRIC_NAMES


def format_interval(interval: Sequence[float] | None) -> str:
    """``[low, high]`` with one decimal, ``–`` where there is none."""
    if interval is None or any(v != v for v in interval):
        return "–"
    return f"[{interval[0]:.1f}, {interval[1]:.1f}]"


def _examples(ids: list[int], count: int) -> str:
    if not ids:
        return ""
    more = ", …" if count > len(ids) else ""
    return " (IDs " + ", ".join(str(i) for i in ids) + more + ")"


# --- scoring ---------------------------------------------------------------------------------


class PatchBootstrap:
    """Percentile bootstrap over patches: each of ``resamples`` draws takes as many patches as
    there are, with replacement (``seed``-ed), and keeps every row of each drawn patch. The same
    draws serve every group, so intervals of different groups come from one set of resamples."""

    CHUNK = 256

    def __init__(self, patch_codes: np.ndarray, n_patches: int, resamples: int, seed: int = 0):
        self.codes, self.n_patches = patch_codes, n_patches
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n_patches, size=(resamples, n_patches))
        offsets = np.arange(resamples)[:, None] * n_patches
        self.weights = (
            np.bincount((draws + offsets).ravel(), minlength=resamples * n_patches)
            .reshape(resamples, n_patches)
            .astype(np.uint16)
        )

    def _weighted(self, per_patch: np.ndarray) -> np.ndarray:
        """``weights @ per_patch`` in chunks of resamples (float64)."""
        parts = [
            self.weights[i : i + self.CHUNK].astype(np.float64) @ per_patch
            for i in range(0, len(self.weights), self.CHUNK)
        ]
        return np.concatenate(parts)

    def mean_interval(self, rows: np.ndarray, values: np.ndarray) -> tuple[float, float]:
        """95 % interval of ``mean(values[rows])`` (``rows`` global indices, values per row)."""
        codes = self.codes[rows]
        sums = np.bincount(codes, weights=values, minlength=self.n_patches)
        counts = np.bincount(codes, minlength=self.n_patches).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = self._weighted(sums) / self._weighted(counts)
        return _percentiles(draws)

    def bleu_interval(self, rows: np.ndarray, stats: np.ndarray) -> tuple[float, float]:
        """95 % interval of the corpus BLEU of ``rows`` from their ``[n, 10]`` statistics."""
        codes = self.codes[rows]
        per_patch = np.zeros((self.n_patches, stats.shape[1]))
        np.add.at(per_patch, codes, stats)
        drawn = self._weighted(per_patch)
        draws = np.array([bleu_from_statistics(s) if s[0] > 0 else np.nan for s in drawn])
        return _percentiles(draws)


def _percentiles(draws: np.ndarray) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return (float("nan"), float("nan"))
    low, high = np.percentile(draws, [2.5, 97.5])
    return (float(low), float(high))


@dataclass
class _TaskRows:
    """One task's rows (global indices), what was parsed, and its per-row metric values."""

    task: str
    index: np.ndarray
    present: np.ndarray
    ok: np.ndarray
    means: dict[str, np.ndarray]  # metric -> per-row values in %
    hypotheses: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    bleu_stats: np.ndarray | None = None
    coco_hypotheses: list[str] = field(default_factory=list)  # coco_tokens of each
    coco_references: list[str] = field(default_factory=list)

    def group(self, local: np.ndarray, bootstrap: PatchBootstrap | None) -> Group:
        """The Group of the task rows ``local`` (bool mask over this task's rows)."""
        scores: dict[str, float] = {}
        intervals: dict[str, tuple[float, float]] = {}
        rows = self.index[local]
        if self.task == TYPE_CAPTION:

            def pick(texts: list[str]) -> list[str]:
                return [t for t, keep in zip(texts, local, strict=True) if keep]

            scores["bleu4"] = bleu_from_statistics(self.bleu_stats[local].sum(axis=0))
            scores["chrf"] = chrf_score(pick(self.hypotheses), pick(self.references))
            coco = coco_bleu4(pick(self.coco_hypotheses), pick(self.coco_references), True)
            if coco is not None:
                scores["coco_bleu4"] = coco
            if bootstrap is not None:
                intervals["bleu4"] = bootstrap.bleu_interval(rows, self.bleu_stats[local])
        for metric, values in self.means.items():
            scores[metric] = float(values[local].mean())
            if bootstrap is not None:
                intervals[metric] = bootstrap.mean_interval(rows, values[local])
        return Group(
            rows=int(local.sum()),
            missing=int((local & ~self.present).sum()),
            unparseable=int((local & self.present & ~self.ok).sum()),
            scores=scores,
            intervals=intervals,
        )


def _extract_unique(texts: list, extract: Callable[[str | None], Extraction]) -> list[Extraction]:
    """``extract`` applied once per distinct text, result per row."""
    cache: dict = {}
    return [cache[t] if t in cache else cache.setdefault(t, extract(t)) for t in texts]


def _score_task(
    task: str,
    sub: pa.Table,
    texts: list[str | None],
    present: np.ndarray,
    index: np.ndarray,
    strict: bool,
    box_scale: str,
) -> tuple[_TaskRows, list[Extraction]]:
    if task == TYPE_CAPTION:
        hypotheses = [t if t is not None else "" for t in texts]
        references = sub["output"].to_pylist()
        extracted = [Extraction(t) if t is not None else Extraction(None, "null") for t in texts]
        ok = np.array([e.ok or not p for e, p in zip(extracted, present, strict=True)])
        rows = _TaskRows(task, index, present, ok, {}, hypotheses, references)
        rows.bleu_stats = bleu_statistics(hypotheses, references)
        rows.coco_hypotheses = [coco_tokens(h) for h in hypotheses]
        rows.coco_references = [coco_tokens(r) for r in references]
        cider = coco_cider(rows.coco_hypotheses, rows.coco_references, tokenized=True)
        if cider is not None:
            rows.means["coco_cider"] = cider
        return rows, extracted
    if task == TYPE_BINARY:
        extracted = _extract_unique(texts, lambda t: extract_binary(t, strict))
        truth = sub["answer_bool"].to_numpy(zero_copy_only=False).astype(bool)
        correct = np.array([e.ok and e.value == t for e, t in zip(extracted, truth, strict=True)])
        means = {"accuracy": 100.0 * correct}
    elif task == TYPE_MCQ:
        options = sub["options"].to_pylist()
        extracted = [extract_choice(t, o, strict) for t, o in zip(texts, options, strict=True)]
        truth = sub["answer_index"].to_numpy(zero_copy_only=False).astype(np.int64)
        correct = np.array([e.ok and e.value == t for e, t in zip(extracted, truth, strict=True)])
        means = {"accuracy": 100.0 * correct}
    else:
        extracted = _extract_unique(texts, lambda t: extract_box(t, box_scale, strict))
        predicted = np.array([e.value if e.ok else (0.0,) * 4 for e in extracted], np.float64)
        target = np.array([parse_box(t) for t in sub["output"].to_pylist()], np.float64)
        ok = np.array([e.ok for e in extracted], dtype=bool)
        iou = np.where(ok, box_iou(predicted.reshape(-1, 4), target.reshape(-1, 4)), 0.0)
        means = {
            "mean_iou": 100.0 * iou,
            "acc_at_0.5": 100.0 * (iou >= IOU_THRESHOLD - IOU_TOLERANCE),
        }
    ok = np.array([e.ok for e in extracted], dtype=bool)
    return _TaskRows(task, index, present, ok, means), extracted


def resolve_tasks(tasks: Sequence[str] | None) -> tuple[str, ...]:
    """Row ``type`` values for task names: a type (``binary``, ``mcq``, ``captioning``,
    ``bounding box``) or a table name (``captions``, ``referring``); ``None``: all four."""
    if not tasks:
        return (TYPE_CAPTION, TYPE_BINARY, TYPE_MCQ, TYPE_BOX)
    out = []
    for name in tasks:
        if name in TABLE_TASKS:
            out.extend(TABLE_TASKS[name])
        elif name in TYPES:
            out.append(name)
        else:
            raise ValueError(
                f"unknown task {name!r}: use one of {', '.join(TYPES)} "
                f"(or {', '.join(TABLE_TASKS)})"
            )
    order = (TYPE_CAPTION, TYPE_BINARY, TYPE_MCQ, TYPE_BOX)
    return tuple(t for t in order if t in out)


def _patch_labels(data_dir: Path | str) -> dict[str, list[str]] | None:
    """``patch_id -> land-cover labels`` from ``DIR/patches.parquet`` (``None`` without it)."""
    path = Path(data_dir) / PATCH_TABLE
    if not path.is_file():
        return None
    table = pq.read_table(path, columns=["patch_id", "labels"])
    return dict(zip(table["patch_id"].to_pylist(), table["labels"].to_pylist(), strict=True))


def _breakdown_rows(refs: pa.Table, dim: str, labels: dict | None) -> dict[str, np.ndarray] | None:
    """``value -> bool mask over refs`` for one breakdown dimension (sorted by value)."""
    if dim == "land_cover":
        if labels is None:
            return None
        per_row = [labels.get(p) or [] for p in refs["patch_id"].to_pylist()]
        values = sorted({v for row in per_row for v in row})
        return {v: np.array([v in row for row in per_row], dtype=bool) for v in values}
    column = refs[dim].to_numpy(zero_copy_only=False)
    values = sorted({v for v in column if v is not None})
    return {v: column == v for v in values}


def evaluate(
    predictions: Path | str | pa.Table,
    data_dir: Path | str,
    splits: Sequence[str] = ("bench",),
    strict: bool = False,
    tasks: Sequence[str] | None = None,
    box_scale: str = "unit",
    bootstrap: int = 0,
    seed: int = 0,
    breakdowns: Sequence[str] = BREAKDOWNS,
) -> EvaluationReport:
    """Score ``predictions`` (a file, or a table with ``ID`` and ``prediction``, checked like a
    file) against every row of ``splits`` and ``tasks`` (default all) under ``data_dir``.

    ``strict`` reads answers in the release's exact formats only (else the rules of
    :mod:`bigearthnet_txt.answer_extraction`); ``box_scale`` the grid predicted boxes are on
    (``unit``, ``1000``, ``pixels``); ``bootstrap`` > 0 adds 95 % intervals from that many
    patch resamples (``seed``); ``breakdowns`` the dimensions of :data:`BREAKDOWNS` to report.
    CIDEr of a category or breakdown group is the mean of its captions' CIDEr, with document
    frequencies from all evaluated captions.
    """
    splits = list(splits)
    check_scale(box_scale)
    types = resolve_tasks(tasks)
    unknown = [b for b in breakdowns if b not in BREAKDOWNS]
    if unknown:
        raise ValueError(f"unknown breakdown(s) {unknown}; use {', '.join(BREAKDOWNS)}")
    if isinstance(predictions, pa.Table):
        preds = _validate(predictions)
    else:
        preds = read_predictions(predictions)
    refs = read_tables(data_dir, splits=splits, columns=REFERENCE_COLUMNS)
    if refs.num_rows == 0:
        raise ValueError(f"{data_dir}: no rows in split(s) {', '.join(splits)}")
    refs = refs.filter(pc.is_in(refs["type"], value_set=pa.array(types, pa.string())))
    if refs.num_rows == 0:
        raise ValueError(f"{data_dir}: no rows of task(s) {', '.join(types)}")
    position = pc.index_in(refs["ID"], value_set=preds["ID"])
    present_all = position.is_valid().to_numpy(zero_copy_only=False)
    aligned = pc.take(preds["prediction"], position).to_pylist()
    row_types = refs["type"].to_numpy(zero_copy_only=False)
    extra = pc.filter(preds["ID"], pc.invert(pc.is_in(preds["ID"], value_set=refs["ID"])))
    patch_ids = refs["patch_id"].to_numpy(zero_copy_only=False)
    patches, codes = np.unique(patch_ids.astype(str), return_inverse=True)
    resampler = PatchBootstrap(codes, len(patches), bootstrap, seed) if bootstrap > 0 else None

    scored: dict[str, _TaskRows] = {}
    groups: dict[str, dict[str, Group]] = {}
    details: dict = {}
    reasons = [""] * refs.num_rows
    for task in types:
        mask = row_types == task
        if not mask.any():
            continue
        index = np.flatnonzero(mask)
        sub = refs.filter(pa.array(mask))
        rows, extracted = _score_task(
            task, sub, [aligned[i] for i in index], present_all[mask], index, strict, box_scale
        )
        scored[task] = rows
        for i, e, p in zip(index, extracted, present_all[mask], strict=True):
            if p and not e.ok:
                reasons[i] = e.reason
        everything = np.ones(len(index), dtype=bool)
        if task == TYPE_CAPTION:
            details = {
                k: v
                for k, v in caption_scores(rows.hypotheses, rows.references).items()
                if k not in ("bleu4", "chrf")
            }
            groups[task] = {"overall": rows.group(everything, resampler)}
            continue
        categories = sub["category"].to_numpy(zero_copy_only=False)
        groups[task] = {
            c: rows.group(categories == c, resampler)
            for c in CATEGORIES_BY_TYPE[task]
            if (categories == c).any()
        }
        groups[task]["overall"] = rows.group(everything, resampler)

    labels = _patch_labels(data_dir) if "land_cover" in breakdowns else None
    breakdown_groups: dict[str, dict[str, dict[str, Group]]] = {}
    for dim in breakdowns:
        masks = _breakdown_rows(refs, dim, labels)
        if masks is None:
            logger.info("%s: no %s, so no land-cover breakdown", data_dir, PATCH_TABLE)
            continue
        breakdown_groups[dim] = {
            value: {
                task: rows.group(mask[rows.index], resampler)
                for task, rows in scored.items()
                if mask[rows.index].any()
            }
            for value, mask in masks.items()
        }

    ids = refs["ID"].to_numpy()
    unparseable = np.array([bool(r) for r in reasons], dtype=bool)
    missing_ids = ids[~present_all]
    unparseable_ids = ids[unparseable]
    order = np.argsort(unparseable_ids, kind="stable")
    listed = [
        {"ID": int(ids[i]), "prediction": aligned[i], "reason": reasons[i]}
        for i in np.flatnonzero(unparseable)[order][:EXAMPLES]
    ]
    reason_counts: dict[str, int] = {}
    for r in reasons:
        if r:
            reason_counts[r] = reason_counts.get(r, 0) + 1
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
        breakdowns=breakdown_groups,
        unparseable_examples=listed,
        unparseable_reasons=dict(sorted(reason_counts.items(), key=lambda kv: -kv[1])),
        box_scale=box_scale,
        bootstrap={"resamples": bootstrap, "seed": seed, "unit": "patch", "confidence": 0.95}
        if bootstrap > 0
        else {},
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

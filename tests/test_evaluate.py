"""Evaluation: parsing predictions, metric values on hand-computable cases, bookkeeping, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sacrebleu

from bigearthnet_txt.conversion.annotations import convert_annotations
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.evaluate import (
    REFERENCE_COLUMNS,
    box_iou,
    evaluate,
    normalise_answer,
    read_predictions,
)
from bigearthnet_txt.schema import TABLE_SCHEMA
from bigearthnet_txt.tables import read_tables


# ID, type, category, output — a tiny bench split whose scores are easy to compute by hand.
ROWS = [
    (1, "binary", "presence", "yes"),
    (2, "binary", "presence", "no"),
    (3, "binary", "area", "yes"),
    (4, "binary", "area", "no"),
    (11, "mcq", "count", "a"),
    (12, "mcq", "count", "b"),
    (13, "mcq", "season", "c"),
    (14, "mcq", "season", "d"),
    (21, "bounding box", "point", "[0.0 0.0, 0.5 0.5]"),
    (22, "bounding box", "point", "[0.0 0.0, 1.0 1.0]"),
    (31, "bounding box", "reference", "[0.0 0.0, 0.5 1.0]"),
    (32, "bounding box", "reference", "[0.2 0.2, 0.4 0.4]"),
    (41, "captioning", "None", "arable land and pastures in a temperate summer scene in Ireland"),
    (42, "captioning", "None", "coniferous forest next to inland waters in Finland during winter"),
]
TASK_FOLDER = {
    "binary": "binary",
    "mcq": "mcq",
    "bounding box": "referring",
    "captioning": "captions",
}
OPTIONS = ["Broad-leaved forest", "Pastures", "Coniferous forest", "Mixed forest"]
PERFECT = {row_id: output for row_id, _, _, output in ROWS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A converted-layout folder holding only the ``ROWS`` above as the bench split."""
    root = tmp_path_factory.mktemp("tiny")
    schema = pa.schema([TABLE_SCHEMA.field(c) for c in REFERENCE_COLUMNS])  # what evaluate reads
    for type_, folder in TASK_FOLDER.items():
        rows = [r for r in ROWS if r[1] == type_]
        table = pa.table(
            {
                "ID": [r[0] for r in rows],
                "patch_id": [f"P{r[0] % 10}" for r in rows],
                "type": [r[1] for r in rows],
                "category": [r[2] for r in rows],
                "output": [r[3] for r in rows],
                "options": [OPTIONS if type_ == "mcq" else None for r in rows],
                "answer_index": [("abcd".index(r[3]) if type_ == "mcq" else None) for r in rows],
                "answer_bool": [(r[3] == "yes" if type_ == "binary" else None) for r in rows],
                "country": ["Ireland" if r[0] % 2 else "Finland" for r in rows],
                "season": ["Summer"] * len(rows),
                "climate_zone": ["Cfb"] * len(rows),
            },
            schema=schema,
        )
        (root / "data" / folder).mkdir(parents=True)
        pq.write_table(table, root / "data" / folder / "bench-00000.parquet")
    return root


def predictions(mapping: dict[int, str | None]) -> pa.Table:
    return pa.table(
        {
            "ID": pa.array(list(mapping), pa.int64()),
            "prediction": pa.array(list(mapping.values()), pa.string()),
        }
    )


def score(report, task: str, category: str, metric: str) -> float:
    return report.groups[task][category].scores[metric]


# --- predictions files -----------------------------------------------------------------------


def test_jsonl_and_parquet_read_alike(tmp_path):
    table = predictions({5: "yes", 7: None, 9: "[0.1 0.2, 0.3 0.4]"})
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in table.to_pylist()) + "\n\n")
    pq.write_table(table, tmp_path / "p.parquet")
    assert read_predictions(jsonl).equals(table)
    assert read_predictions(tmp_path / "p.parquet").equals(table)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"ID": 1, "prediction": "yes"}\n{"ID": 1, "prediction": "no"}\n',
            "ID 1 has more than one",
        ),
        ('{"ID": 1, "prediction": "yes"}\nnot json\n', ":2: expected a JSON object"),
        ('{"ID": "1", "prediction": "yes"}\n', "ID must be an integer"),
        ('{"ID": 1, "prediction": 3}\n', "prediction must be a string"),
        ('{"id": 1, "prediction": "yes"}\n', "expected a JSON object with keys"),
    ],
)
def test_bad_prediction_files_are_refused(tmp_path, text, message):
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_predictions(path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"ID": [1, 1], "prediction": ["yes", "no"]}), "ID 1 has more than one"),
        (pa.table({"ID": pa.array([1, None], pa.int64()), "prediction": ["yes", "no"]}), "null ID"),
        (pa.table({"ID": ["one"], "prediction": ["yes"]}), "ID must be integers"),
        (pa.table({"ID": [1]}), "missing column"),
    ],
)
def test_bad_prediction_tables_are_refused_like_files(tiny, table, message):
    with pytest.raises(ValueError, match=message):
        evaluate(table, tiny)


def test_prediction_table_columns_are_cast(tiny):
    table = pa.table(
        {
            "extra": [0] * len(PERFECT),
            "ID": pa.array(list(PERFECT), pa.int32()),
            "prediction": list(PERFECT.values()),
        }
    )
    assert evaluate(table, tiny).to_dict() == evaluate(predictions(PERFECT), tiny).to_dict()


def test_normalise_answer():
    assert normalise_answer(" Yes.\n") == "yes"
    assert normalise_answer("B") == "b"
    assert normalise_answer("no..") == "no."


# --- IoU -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        ((0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5), 1.0),  # identical
        ((0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 1.0, 1.0), 0.0),  # no overlap
        ((0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), 0.0),  # touching along an edge
        ((0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), 0.0),  # touching at a corner
        ((0.25, 0.25, 0.75, 0.75), (0.0, 0.0, 1.0, 1.0), 0.25),  # contained
        ((0.0, 0.0, 1.0, 1.0), (0.25, 0.25, 0.75, 0.75), 0.25),  # containing
        ((0.0, 0.0, 0.5, 1.0), (0.25, 0.0, 0.75, 1.0), 1 / 3),  # half overlap: 0.25 / 0.75
        ((0.3, 0.3, 0.3, 0.6), (0.3, 0.3, 0.3, 0.6), 1.0),  # equal zero-area boxes
        ((0.3, 0.3, 0.3, 0.6), (0.0, 0.0, 1.0, 1.0), 0.0),  # zero-area inside a box
    ],
)
def test_box_iou_edge_cases(pred, target, expected):
    assert box_iou(np.array([pred]), np.array([target]))[0] == pytest.approx(expected)


# --- scores on the tiny split ----------------------------------------------------------------


def test_perfect(tiny):
    report = evaluate(predictions(PERFECT), tiny, ["bench"])
    for task, cats in report.groups.items():
        for group in cats.values():
            for metric, value in group.scores.items():
                # CIDEr is pycocoevalcap's score x 100: an identical caption scores 10 x 100
                expected = 1000.0 if metric == "coco_cider" else 100.0
                assert value == pytest.approx(expected), (task, metric)
    assert (report.n_missing, report.n_extra, report.n_unparseable) == (0, 0, 0)
    assert report.rows == len(ROWS)


def test_all_wrong(tiny):
    wrong = {
        1: "no",
        2: "yes",
        3: "no",
        4: "yes",
        11: "b",
        12: "c",
        13: "d",
        14: "a",
        21: "[0.6 0.6, 1.0 1.0]",
        22: "[0.0 0.0, 0.0 0.0]",
        31: "[0.5 0.0, 1.0 1.0]",
        32: "[0.5 0.5, 0.6 0.6]",
        41: "snow",
        42: "ocean",
    }
    report = evaluate(predictions(wrong), tiny, ["bench"])
    assert score(report, "binary", "overall", "accuracy") == 0
    assert score(report, "mcq", "overall", "accuracy") == 0
    assert score(report, "bounding box", "overall", "mean_iou") == 0
    assert score(report, "bounding box", "overall", "acc_at_0.5") == 0
    assert score(report, "captioning", "overall", "bleu4") == 0
    assert report.n_unparseable == 0


def test_partly_right(tiny):
    preds = dict(PERFECT)
    preds.update(
        {
            2: "yes",  # binary presence: 1/2, area 2/2 -> overall 3/4
            12: "a",
            13: "a",  # mcq count 1/2, season 1/2 -> overall 2/4
            21: "[0.0 0.0, 0.25 0.5]",  # IoU 0.5 (counts for Acc@0.5)
            22: "[0.0 0.0, 0.5 0.5]",  # IoU 0.25
            32: "[0.2 0.2, 0.3 0.4]",  # IoU 0.5
            31: "[0.0 0.0, 1.0 1.0]",  # IoU 0.5
        }
    )
    report = evaluate(predictions(preds), tiny, ["bench"])
    assert score(report, "binary", "presence", "accuracy") == 50
    assert score(report, "binary", "area", "accuracy") == 100
    assert score(report, "binary", "overall", "accuracy") == 75
    assert score(report, "mcq", "count", "accuracy") == 50
    assert score(report, "mcq", "season", "accuracy") == 50
    assert score(report, "mcq", "overall", "accuracy") == 50
    assert score(report, "bounding box", "point", "mean_iou") == pytest.approx(37.5)
    assert score(report, "bounding box", "point", "acc_at_0.5") == 50
    assert score(report, "bounding box", "reference", "mean_iou") == pytest.approx(50)
    assert score(report, "bounding box", "reference", "acc_at_0.5") == 100
    assert score(report, "bounding box", "overall", "mean_iou") == pytest.approx(43.75)
    assert score(report, "bounding box", "overall", "acc_at_0.5") == 75


def test_caption_scores_are_sacrebleu_corpus_scores(tiny):
    hyp = {41: "arable land and pastures in a summer scene in Ireland", 42: "forest and water"}
    report = evaluate(predictions({**PERFECT, **hyp}), tiny, ["bench"])
    refs = [[PERFECT[41], PERFECT[42]]]
    expected_bleu = sacrebleu.corpus_bleu([hyp[41], hyp[42]], refs).score
    expected_chrf = sacrebleu.corpus_chrf([hyp[41], hyp[42]], refs).score
    assert score(report, "captioning", "overall", "bleu4") == pytest.approx(expected_bleu)
    assert score(report, "captioning", "overall", "chrf") == pytest.approx(expected_chrf)
    assert 0 < expected_bleu < 100
    assert report.caption_details["signatures"]["bleu"].startswith("nrefs:1")


def test_malformed_predictions_count_as_wrong_and_are_reported(tiny):
    preds = dict(PERFECT)
    preds.update(
        {
            1: "maybe",
            11: "e",
            12: "a) or c)",
            21: "[0.0 0.0, 0.5]",
            31: "[0.5 0.5, 0.2 0.2]",
            41: None,
        }
    )
    report = evaluate(predictions(preds), tiny, ["bench"])
    assert report.n_unparseable == 6
    assert report.unparseable_ids == [1, 11, 12, 21, 31, 41]
    assert score(report, "binary", "overall", "accuracy") == 75
    assert report.groups["binary"]["presence"].unparseable == 1
    assert score(report, "mcq", "count", "accuracy") == 0
    assert report.groups["mcq"]["overall"].unparseable == 2
    assert score(report, "bounding box", "point", "mean_iou") == pytest.approx(50)
    assert score(report, "bounding box", "reference", "acc_at_0.5") == 50
    assert report.groups["captioning"]["overall"].unparseable == 1
    assert "Unparseable: 6 (IDs 1, 11, 12, 21, 31, 41)" in report.to_markdown()


def test_lenient_and_strict_parsing(tiny):
    preds = {**PERFECT, 1: " Yes.", 2: "NO", 11: "A.", 21: " [0.0 0.0, 0.5 0.5]\n"}
    lenient = evaluate(predictions(preds), tiny, ["bench"])
    assert lenient.n_unparseable == 0
    assert score(lenient, "binary", "overall", "accuracy") == 100
    assert score(lenient, "mcq", "overall", "accuracy") == 100
    strict = evaluate(predictions(preds), tiny, ["bench"], strict=True)
    assert strict.unparseable_ids == [1, 2, 11, 21]
    assert score(strict, "binary", "overall", "accuracy") == 50


def test_missing_and_extra_ids_are_reported(tiny):
    preds = {k: v for k, v in PERFECT.items() if k not in (3, 22, 42)}
    preds.update({1000: "yes", 999: "a"})
    report = evaluate(predictions(preds), tiny, ["bench"])
    assert (report.n_missing, report.missing_ids) == (3, [3, 22, 42])
    assert (report.n_extra, report.extra_ids) == (2, [999, 1000])
    assert score(report, "binary", "area", "accuracy") == 50
    assert report.groups["binary"]["area"].missing == 1
    assert score(report, "bounding box", "point", "mean_iou") == pytest.approx(50)
    assert score(report, "captioning", "overall", "bleu4") < 100
    data = report.to_dict()
    assert data["missing"] == {"count": 3, "examples": [3, 22, 42]}
    assert data["extra"] == {"count": 2, "examples": [999, 1000]}
    markdown = report.to_markdown()
    assert "Missing predictions: 3 (IDs 3, 22, 42)" in markdown
    assert "Extra IDs (not in the split): 2 (IDs 999, 1000)" in markdown


def test_unknown_split_and_empty_split(tiny):
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(predictions(PERFECT), tiny, ["dev"])
    with pytest.raises(ValueError, match="no rows in split"):
        evaluate(predictions(PERFECT), tiny, ["train"])


# --- the converted sample and the command line -----------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory, sample_release_file) -> Path:
    out = tmp_path_factory.mktemp("converted")
    convert_annotations(sample_release_file, out, progress=False)
    return out


def test_cli_on_the_converted_sample(converted, tmp_path):
    rows = read_tables(converted, splits=["test", "bench"], columns=["ID", "output"]).to_pylist()
    path = tmp_path / "preds.jsonl"
    path.write_text(
        "".join(json.dumps({"ID": r["ID"], "prediction": r["output"]}) + "\n" for r in rows)
    )
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    code = main(
        [
            "evaluate",
            "--predictions",
            str(path),
            "--data",
            str(converted),
            "--split",
            "test",
            "--split",
            "bench",
            "--out-json",
            str(out_json),
            "--out-md",
            str(out_md),
        ]
    )
    assert code == 0
    data = json.loads(out_json.read_text())
    assert data["splits"] == ["test", "bench"] and data["rows"] == len(rows)
    assert data["tasks"]["mcq"]["overall"]["accuracy"] == 100
    assert data["tasks"]["bounding box"]["reference"]["mean_iou"] == pytest.approx(100)
    assert "| binary | **overall** | accuracy | 100.00 |" in out_md.read_text()
    bench_only = main(["evaluate", "--predictions", str(path), "--data", str(converted)])
    assert bench_only == 0


def test_cli_reports_bad_input(converted, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text("[1, 2]\n")
    assert main(["evaluate", "--predictions", str(path), "--data", str(converted)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err


# --- free-form answers, tasks, breakdowns, intervals, several models ---------------------------


def test_free_form_answers_are_read_and_listed_with_reasons(tiny):
    preds = {
        **PERFECT,
        1: "Yes, there is.",
        2: "No.",
        3: "no, yes",
        11: "The answer is a",
        12: "B. Pastures",
        13: "Coniferous forest",
        14: "b) or d)",
        21: "[0.0, 0.0, 0.5, 0.5]",
        22: "<box>(0,0),(1,1)</box>",
        31: "[0.5 0.0, 0.0 1.0]",
    }
    report = evaluate(predictions(preds), tiny, ["bench"])
    assert score(report, "binary", "presence", "accuracy") == 100
    assert score(report, "binary", "area", "accuracy") == 50
    assert score(report, "mcq", "overall", "accuracy") == 75
    assert score(report, "bounding box", "point", "mean_iou") == pytest.approx(100)
    assert report.unparseable_ids == [3, 14, 31]
    reasons = {ex["ID"]: ex["reason"] for ex in report.unparseable_examples}
    assert reasons[3] == "yes and no side by side"
    assert "several option letters" in reasons[14] and "out of order" in reasons[31]
    assert '| 14 | `"b) or d)"` | several option letters (b, d) |' in report.to_markdown()
    strict = evaluate(predictions(preds), tiny, ["bench"], strict=True)
    assert strict.unparseable_ids == [1, 2, 3, 11, 12, 13, 14, 21, 22, 31]


def test_tasks_are_scored_alone(tiny):
    only = {k: v for k, v in PERFECT.items() if k < 10}
    report = evaluate(predictions(only), tiny, ["bench"], tasks=["binary"])
    assert list(report.groups) == ["binary"] and report.rows == 4
    assert report.n_missing == 0 and score(report, "binary", "overall", "accuracy") == 100
    assert report.n_extra == 0
    both = evaluate(predictions(PERFECT), tiny, ["bench"], tasks=["referring", "mcq"])
    assert list(both.groups) == ["mcq", "bounding box"] and both.n_extra == 6
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(predictions(PERFECT), tiny, ["bench"], tasks=["vqa2"])


def test_breakdown_by_country(tiny):
    report = evaluate(predictions({**PERFECT, 1: "no", 3: "no"}), tiny, ["bench"])
    countries = report.breakdowns["country"]
    assert set(countries) == {"Finland", "Ireland"}
    # odd IDs are Irish: binary rows 1 and 3 (both wrong now), even IDs 2 and 4 Finnish
    assert countries["Ireland"]["binary"].scores["accuracy"] == 0
    assert countries["Finland"]["binary"].scores["accuracy"] == 100
    assert countries["Ireland"]["binary"].rows == 2
    assert report.breakdowns["season"]["Summer"]["binary"].scores["accuracy"] == 50
    assert "land_cover" not in report.breakdowns  # no patches.parquet in this folder
    assert "By country" in report.to_markdown()


def _replicated(root: Path, copies: int) -> Path:
    """The tiny split ``copies`` times over, each copy on its own patches."""
    for folder in TASK_FOLDER.values():
        table = pq.read_table(tiny_path(root) / "data" / folder / "bench-00000.parquet")
        parts = []
        for k in range(copies):
            ids = pc.add(table["ID"], 1000 * k)
            patches = pc.binary_join_element_wise(table["patch_id"], f"-{k}", "")
            parts.append(table.set_column(0, "ID", ids).set_column(1, "patch_id", patches))
        out = root / f"x{copies}" / "data" / folder
        out.mkdir(parents=True)
        pq.write_table(pa.concat_tables(parts), out / "bench-00000.parquet")
    return root / f"x{copies}"


def tiny_path(root: Path) -> Path:
    return root / "source"


@pytest.fixture(scope="module")
def replicated(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("replicated")
    shutil.copytree(tiny, tiny_path(root))
    return {n: _replicated(root, n) for n in (2, 20)}


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_rows(replicated):
    wrong = {2: "yes", 12: "a", 22: "[0.0 0.0, 0.5 0.5]", 41: "forest"}
    widths = {}
    for copies, root in replicated.items():
        preds = {k + 1000 * c: wrong.get(k, v) for c in range(copies) for k, v in PERFECT.items()}
        report = evaluate(predictions(preds), root, ["bench"], bootstrap=400, seed=1)
        again = evaluate(predictions(preds), root, ["bench"], bootstrap=400, seed=1)
        assert report.to_dict() == again.to_dict()  # seeded
        for task, cats in report.groups.items():
            for group in cats.values():
                for metric, (low, high) in group.intervals.items():
                    assert low - 1e-9 <= group.scores[metric] <= high + 1e-9, (task, metric)
        binary = report.groups["binary"]["overall"]
        assert binary.scores["accuracy"] == 75
        widths[copies] = {
            (t, m): g.intervals[m][1] - g.intervals[m][0]
            for t, cats in report.groups.items()
            for g in [cats["overall"]]
            for m in g.intervals
        }
        assert report.bootstrap == {
            "resamples": 400,
            "seed": 1,
            "unit": "patch",
            "confidence": 0.95,
        }
        assert "95% CI" in report.to_markdown()
    for key, wide in widths[2].items():
        assert widths[20][key] < wide, key


def test_boxes_on_other_scales(tiny):
    thousand = {**PERFECT, 21: "[0 0, 500 500]", 22: "<box>(0,0),(1000,1000)</box>"}
    thousand.update({31: "[0 0, 500 1000]", 32: "[200 200, 400 400]"})
    report = evaluate(predictions(thousand), tiny, ["bench"], box_scale="1000")
    assert score(report, "bounding box", "overall", "mean_iou") == pytest.approx(100)
    unit = evaluate(predictions(thousand), tiny, ["bench"])
    assert unit.groups["bounding box"]["overall"].unparseable == 4  # out of range on 0-1
    pixels = {**PERFECT, 21: "[0 0, 60 60]", 22: "[0 0, 120 120]"}
    pixels.update({31: "[0 0, 60 120]", 32: "[24 24, 48 48]"})
    report = evaluate(predictions(pixels), tiny, ["bench"], box_scale="pixels")
    assert score(report, "bounding box", "overall", "mean_iou") == pytest.approx(100)


def test_coco_caption_metrics_are_named_apart_from_sacrebleu(tiny):
    # COCO scoring lower-cases and drops punctuation; sacrebleu's 13a BLEU keeps both
    shouted = {41: PERFECT[41].capitalize() + ".", 42: PERFECT[42].upper()}
    report = evaluate(predictions({**PERFECT, **shouted}), tiny, ["bench"])
    group = report.groups["captioning"]["overall"]
    assert group.scores["coco_bleu4"] == pytest.approx(100)
    assert group.scores["coco_cider"] == pytest.approx(1000)
    assert group.scores["bleu4"] < 100
    markdown = report.to_markdown()
    assert "BLEU-4 (sacrebleu)" in markdown and "BLEU-4 (COCO)" in markdown
    assert "CIDEr (COCO)" in markdown


def test_land_cover_breakdown_counts_a_row_for_every_class(converted_sample):
    rows = read_tables(
        converted_sample, splits=["test", "bench"], columns=["ID", "patch_id", "output"]
    )
    preds = predictions({r["ID"]: r["output"] for r in rows.to_pylist()})
    report = evaluate(preds, converted_sample, ["test", "bench"])
    patches = pq.read_table(converted_sample / "patches.parquet", columns=["patch_id", "labels"])
    labels = dict(zip(patches["patch_id"].to_pylist(), patches["labels"].to_pylist(), strict=True))
    per_row = [labels[p] for p in rows["patch_id"].to_pylist()]
    classes = report.breakdowns["land_cover"]
    assert set(classes) == {c for row in per_row for c in row}
    counted = sum(g.rows for tasks in classes.values() for g in tasks.values())
    assert counted == sum(len(row) for row in per_row) > rows.num_rows
    for value, tasks in classes.items():
        assert tasks["binary"].scores["accuracy"] == 100, value


def test_two_prediction_files_give_one_side_by_side_table_and_a_plot(tiny, tmp_path):
    first, second = tmp_path / "model-a.jsonl", tmp_path / "b.jsonl"
    worse = {**PERFECT, 1: "no", 11: "d", 21: "[0.5 0.5, 1.0 1.0]"}
    for path, mapping in ((first, PERFECT), (second, worse)):
        path.write_text(
            "".join(json.dumps({"ID": k, "prediction": v}) + "\n" for k, v in mapping.items())
        )
    out_md, out_json, out_png = tmp_path / "s.md", tmp_path / "s.json", tmp_path / "s.png"
    code = main(
        ["evaluate", "--predictions", str(first), "--predictions", str(second), "--name", "A",
         "--name", "B", "--data", str(tiny), "--bootstrap", "50", "--out-md", str(out_md),
         "--out-json", str(out_json), "--out-png", str(out_png)]
    )  # fmt: skip
    assert code == 0
    table = out_md.read_text()
    assert "| task | category | metric | A | B |" in table
    line = next(x for x in table.splitlines() if x.startswith("| binary | **overall** | accuracy"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3].startswith("100.00") and cells[4].startswith("75.00")
    assert set(json.loads(out_json.read_text())["models"]) == {"A", "B"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = main(["evaluate", "--predictions", str(first), "--data", str(tiny), "--task", "mcq"])
    assert single == 0
    assert main(["evaluate", "--predictions", str(first), "--predictions", str(first),
                 "--data", str(tiny)]) == 2  # fmt: skip

"""Hub publishing: the data set card, ``bigearthnet-txt push`` and streaming from a local Hub
stand-in.

The converted folder is the embedded real sample (imagery + annotation tables). Nothing here
contacts the real Hub: ``tests/hub_server.py`` serves the HTTP API on 127.0.0.1, and the streaming
client runs in a subprocess whose ``HF_ENDPOINT`` points at it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zarr
from hub_server import HubStandIn
from sample_support import convert_sample

from bigearthnet_txt.configs import config_files
from bigearthnet_txt.conversion import cli, hub
from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations
from bigearthnet_txt.conversion.card import write_card
from bigearthnet_txt.schema import (
    CONFIGS,
    DEFAULT_CONFIG,
    IMAGERY_ARRAYS,
    IMAGERY_STORE,
    PATCH_TABLE,
    SPLITS,
    TABLE_SCHEMA,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def converted(tmp_path_factory, sample_release_file) -> Path:
    """The real sample converted: imagery (shards of 2 patches) and annotation tables (40
    rows/file)."""
    out = convert_sample(
        tmp_path_factory.mktemp("converted"), sample_release_file, shard_size=2,
        settings=AnnotationSettings(rows_per_shard=40),
    )  # fmt: skip
    write_card(out)
    return out


@pytest.fixture()
def stand_in(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with HubStandIn() as server:
        yield server


def front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def markdown_table(card: str, header_start: str) -> list[list[str]]:
    """Rows (cells stripped) of the first Markdown table whose header line starts with
    ``header_start``."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


# --- the card -----------------------------------------------------------------------------------


def test_card_configs_cover_every_config_and_split(converted):
    meta = front_matter((converted / "README.md").read_text())
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == list(CONFIGS)
    assert [name for name, c in configs.items() if c.get("default")] == [DEFAULT_CONFIG]
    for name, config in configs.items():
        listed = {f["split"]: f["path"] for f in config["data_files"]}
        for split in SPLITS:
            files = config_files(converted, name, split)
            if not files:
                assert split not in listed, (name, split)
                continue
            matched = sorted(p for pattern in listed[split] for p in converted.glob(pattern))
            assert matched == sorted(files), (name, split)
    # vqa and all reuse the task folders: every file belongs to exactly one task config
    task_files = [
        p
        for name in ("captions", "binary", "mcq", "referring")
        for s in SPLITS
        for p in config_files(converted, name, s)
    ]
    assert (
        len(task_files)
        == len(set(task_files))
        == len(list((converted / "data").rglob("*.parquet")))
    )


def test_card_metadata_features_and_licence(converted):
    import datasets

    meta = front_matter((converted / "README.md").read_text())
    assert meta["license"] == "cdla-permissive-1.0"
    assert meta["task_categories"] and "remote-sensing" in meta["tags"]
    expected = datasets.Features.from_arrow_schema(TABLE_SCHEMA)
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert set(infos) == set(CONFIGS)
    for info in infos.values():
        assert datasets.Features._from_yaml_list(info["features"]) == expected


def test_card_statistics_equal_the_data(converted):
    card = (converted / "README.md").read_text()
    rows = {
        r[0].strip("`"): [int(v.replace(",", "")) for v in r[1:]]
        for r in markdown_table(card, "| config | train")
    }
    assert set(rows) == set(CONFIGS)
    for name, config in CONFIGS.items():
        table = pa.concat_tables(
            pq.read_table(p, columns=["split"])
            for t in config.tables
            for p in (converted / "data" / t).glob("*.parquet")
        )
        per_split = [table["split"].to_pylist().count(s) for s in SPLITS]
        assert rows[name] == [*per_split, table.num_rows], name
    patches = pq.read_table(converted / PATCH_TABLE).to_pylist()
    stats = {
        r[0]: [int(v.replace(",", "")) for v in r[1:]] for r in markdown_table(card, "|  | train")
    }
    assert stats["patches"] == [
        *(sum(p["split"] == s for p in patches) for s in SPLITS),
        len(patches),
    ]
    assert stats["with S1"] == [
        *(sum(p["split"] == s and p["has_s1"] for p in patches) for s in SPLITS),
        sum(p["has_s1"] for p in patches),
    ]


def test_card_band_table_citations_and_attribution(converted):
    card = (converted / "README.md").read_text()
    bands = markdown_table(card, "| array | band")
    by_band = {r[1]: r for r in bands}
    for array in IMAGERY_ARRAYS.values():
        for band in array.bands:
            row = by_band[band]
            assert (
                row[0] == f"`{array.name}`"
                and row[4] == array.dtype
                and row[3] == f"{array.resolution_m} m"
            )
    store_stats = zarr.open_group(converted / IMAGERY_STORE, mode="r").attrs["bigearthnet_txt"][
        "stats"
    ]
    assert float(by_band["VV"][7]) == pytest.approx(store_stats["VV"]["mean"], abs=0.01)
    for text in (
        "arXiv",
        "2603.29630",
        "BigEarthNet.txt: A Large-Scale Multi-Sensor Image-Text Dataset",
        "2407.03653",
        "reBEN: Refined BigEarthNet Dataset for Remote Sensing Image Analysis",
        "Clasen",
        "IGARSS",
        "CDLA-Permissive-1.0",
        "TU Berlin",
        "Copernicus Sentinel",
        "CORINE Land Cover 2018",
        "load_dataset(",
    ):
        assert text in card, text


# --- limits -------------------------------------------------------------------------------------


def test_limits_fail_clearly_before_anything_is_sent(converted, stand_in, monkeypatch, capsys):
    paths = hub.publishable_files(converted)
    with pytest.raises(hub.HubLimitError, match=r"fewer than 10 per repository.*imagery.zarr"):
        hub.check_limits(converted, paths, max_files=10)
    monkeypatch.setattr(hub, "MAX_FOLDER_ENTRIES", 3)
    code = cli.main(
        [
            "push",
            str(converted),
            "--repo-id",
            "ns/limits",
            "--endpoint",
            stand_in.url,
            "--token",
            "t",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "folder 'imagery.zarr/s2_10m/c' holds 4 entries (the Hub allows fewer than 3 per folder)"
        in err
    )
    assert "--shard-size" in err
    assert stand_in.state.repos == {} and stand_in.committed_paths == []


def test_viewer_parquet_check(converted, tmp_path):
    paths = hub.publishable_files(converted)
    hub.check_viewer_parquet(converted, paths)  # the real tables pass
    with pytest.raises(hub.HubLimitError, match="row group of"):
        hub.check_viewer_parquet(converted, paths, max_row_group_bytes=100)
    (tmp_path / "data" / "binary").mkdir(parents=True)
    pq.write_table(
        pa.table({"m": pa.array([{"a": 1}], pa.map_(pa.string(), pa.int64()))}),
        tmp_path / "data/binary/train-00000.parquet",
    )
    with pytest.raises(hub.HubLimitError, match="column types the viewer cannot show"):
        hub.check_viewer_parquet(tmp_path, ["data/binary/train-00000.parquet"])


def test_publishable_files_leave_local_state_out(converted):
    paths = hub.publishable_files(converted)
    assert "README.md" in paths and PATCH_TABLE in paths and "annotations.json" in paths
    assert all(p.split("/")[0] in hub.PUBLISHED for p in paths)
    assert not [
        p for p in paths if any(part.startswith(".") for part in p.split("/")) or p.endswith(".tmp")
    ]


# --- push and streaming -------------------------------------------------------------------------

CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, zarr
    from datasets import load_dataset

    repo, configs, splits, out = (
        sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4]
    )
    rows, arrays = {}, {}
    for config in configs:
        for split in splits:
            try:
                ds = load_dataset(repo, config, split=split, streaming=True)
                rows[f"{config}/{split}"] = [
                    {k: r[k] for k in ("ID", "split", "patch_index", "box", "options")} for r in ds
                ]
            except ValueError as err:
                rows[f"{config}/{split}"] = str(err)
    imagery = zarr.open_group(f"hf://datasets/{repo}/imagery.zarr", mode="r")
    index = sorted({r["patch_index"] for v in rows.values() if isinstance(v, list) for r in v})
    np.savez(
        out + ".npz",
        index=np.array(index),
        **{
            name: imagery[name].get_orthogonal_selection((index,))
            for name in imagery.array_keys()
        },
    )
    json.dump(rows, open(out + ".json", "w"))
    """
)


def stream_from_stand_in(
    server: HubStandIn, repo_id: str, tmp_path: Path, configs, splits
) -> tuple[dict, dict]:
    """Rows per ``config/split`` (or the error text) and the imagery arrays, read through
    ``datasets`` and ``zarr`` in a subprocess pointed at the stand-in."""
    env = dict(
        os.environ,
        HF_ENDPOINT=server.url,
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_TOKEN="dummy",
        HF_HOME=str(tmp_path / "client-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    out = tmp_path / "streamed"
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, repo_id, ",".join(configs), ",".join(splits), str(out)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(str(out) + ".npz") as arrays:
        return json.loads((out.with_suffix(".json")).read_text()), dict(arrays)


def test_push_then_stream_every_config_and_split(converted, stand_in, tmp_path, capsys):
    code = cli.main(
        [
            "push",
            str(converted),
            "--repo-id",
            "ns/bigearthnet_txt",
            "--endpoint",
            stand_in.url,
            "--token",
            "dummy",
            "--batch-files",
            "8",
        ]
    )
    assert code == 0, capsys.readouterr().err
    remote = stand_in.files("ns/bigearthnet_txt")
    assert sorted(remote) == sorted(hub.publishable_files(converted))
    assert all(remote[p] == (converted / p).read_bytes() for p in remote)
    assert '"ns/bigearthnet_txt", "vqa"' in remote["README.md"].decode()
    assert stand_in.state.repos[("dataset", "ns/bigearthnet_txt")].private is False

    rows, arrays = stream_from_stand_in(
        stand_in, "ns/bigearthnet_txt", tmp_path, list(CONFIGS), SPLITS
    )
    for config in CONFIGS:
        for split in SPLITS:
            expected = pa.concat_tables(
                [pq.read_table(p) for p in config_files(converted, config, split)]
                or [TABLE_SCHEMA.empty_table()]
            )
            got = rows[f"{config}/{split}"]
            if expected.num_rows == 0:
                assert "Bad split" in got, (config, split)  # a split without rows is not listed
                continue
            assert [r["ID"] for r in got] == expected["ID"].to_pylist(), (config, split)
            assert {r["split"] for r in got} == {split}
            assert [r["patch_index"] for r in got] == expected["patch_index"].to_pylist()
            assert [r["box"] for r in got] == [
                None if b is None else pytest.approx(b) for b in expected["box"].to_pylist()
            ]
            assert [r["options"] for r in got] == expected["options"].to_pylist()

    local = zarr.open_group(converted / IMAGERY_STORE, mode="r")
    index = arrays.pop("index")
    assert len(index) > 0 and set(arrays) == set(local.array_keys())
    for name, values in arrays.items():
        want = local[name].get_orthogonal_selection((index,))
        assert values.dtype == want.dtype == np.dtype(IMAGERY_ARRAYS[name].dtype)
        np.testing.assert_array_equal(values, want)
    assert stand_in.state.range_requests > 0  # imagery is read by byte ranges, not whole files


def test_interrupted_push_resumes_with_the_remaining_files(converted, stand_in, capsys):
    total = sorted(hub.publishable_files(converted))
    stand_in.fail_commits_after(10)
    args = [
        "push",
        str(converted),
        "--repo-id",
        "ns/resume",
        "--endpoint",
        stand_in.url,
        "--token",
        "t",
        "--batch-files",
        "4",
        "--private",
    ]
    assert cli.main(args) == 1
    assert "Rerun the same command to resume" in capsys.readouterr().err
    first = stand_in.committed_paths
    assert 10 <= len(first) < len(total)
    assert "README.md" not in first  # the card goes last, once the data are there

    stand_in.fail_commits_after(None)
    result = hub.push(
        converted,
        "ns/resume",
        token="t",
        endpoint=stand_in.url,
        batch_files=4,
        private=True,
        log=lambda m: None,
    )
    assert sorted(result.skipped) == sorted(first)
    assert sorted(result.uploaded) == sorted(set(total) - set(first))
    assert sorted(stand_in.committed_paths[len(first) :]) == sorted(
        result.uploaded
    )  # nothing sent twice
    remote = stand_in.files("ns/resume")
    assert sorted(remote) == total and all(remote[p] == (converted / p).read_bytes() for p in total)
    assert stand_in.state.repos[("dataset", "ns/resume")].private is True

    again = hub.push(converted, "ns/resume", token="t", endpoint=stand_in.url, log=lambda m: None)
    assert again.uploaded == [] and sorted(again.skipped) == total


def test_push_after_reconversion_deletes_what_the_folder_no_longer_has(
    converted, stand_in, tmp_path, sample_release_file
):
    import shutil

    from huggingface_hub import HfApi

    copy = tmp_path / "copy"
    shutil.copytree(converted, copy)
    patches = pq.read_table(copy / PATCH_TABLE, columns=["patch_id", "patch_index"])
    index = dict(
        zip(patches["patch_id"].to_pylist(), patches["patch_index"].to_pylist(), strict=True)
    )

    def reconvert(rows_per_shard: int) -> None:
        convert_annotations(
            sample_release_file,
            copy,
            AnnotationSettings(rows_per_shard=rows_per_shard),
            patch_index=index,
            overwrite=True,
            progress=False,
        )

    reconvert(5)
    repo = "ns/reconverted"
    hub.push(copy, repo, token="t", endpoint=stand_in.url, log=lambda m: None)
    api = HfApi(endpoint=stand_in.url, token="t")
    old_chunk = f"{IMAGERY_STORE}/s2_10m/c/99/0/0/0"  # a chunk of an earlier, larger store
    for path in (old_chunk, "notes.txt"):
        api.upload_file(
            path_or_fileobj=b"old", path_in_repo=path, repo_id=repo, repo_type="dataset"
        )
    old_tables = sorted(p for p in stand_in.files(repo) if p.startswith("data/"))

    reconvert(100_000)
    local = sorted(hub.publishable_files(copy))
    new_tables = [p for p in local if p.startswith("data/")]
    assert len(new_tables) < len(old_tables)  # fewer shards: the old ones beyond them are stale

    write_card(copy, repo)
    with open(copy / "README.md", "a") as card:
        card.write("\nReconverted.\n")  # so the card goes up again, last
    commits = stand_in.state.repos[("dataset", repo)].commits
    first_new = len(commits)
    result = hub.push(
        copy, repo, token="t", endpoint=stand_in.url, write_card=False, log=lambda m: None
    )
    assert old_chunk in result.deleted and set(old_tables) - set(new_tables) <= set(result.deleted)
    remote = stand_in.files(repo)
    assert sorted(remote) == sorted([*local, "notes.txt"])  # files outside the published names stay
    assert all(remote[p] == (copy / p).read_bytes() for p in local)
    card_commit = next(c for c in commits[first_new:] if "README.md" in c.changed)
    assert old_chunk not in card_commit.files  # deleted before the card went up

    configs, splits = ["captions", "all"], ["train", "test"]
    rows, _ = stream_from_stand_in(stand_in, repo, tmp_path, configs, splits)
    for config in configs:
        for split in splits:
            files = config_files(copy, config, split)
            assert files, (config, split)
            expected = pa.concat_tables([pq.read_table(p) for p in files])
            got = [r["ID"] for r in rows[f"{config}/{split}"]]
            assert got == expected["ID"].to_pylist(), (config, split)  # no duplicate rows


def test_unfinished_store_is_refused(converted, tmp_path, stand_in):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(converted, copy)
    meta = json.loads((copy / IMAGERY_STORE / "zarr.json").read_text())
    meta["attributes"]["bigearthnet_txt"]["complete"] = False
    (copy / IMAGERY_STORE / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="imagery conversion not finished"):
        hub.push(copy, "ns/unfinished", token="t", endpoint=stand_in.url, log=lambda m: None)
    assert stand_in.state.repos == {}


# --- bigearthnet_txt.load_dataset on a Hub repository ------------------------------------------

OUR_CLIENT = textwrap.dedent(
    """
    import hashlib, json, pickle, sys
    import numpy as np
    from bigearthnet_txt import load_dataset
    from bigearthnet_txt.store import ImageryStore

    KEYS = ("s2_10m", "s2_20m", "s2_60m", "s1")

    def digest(example):
        return {
            k: [
                str(example[k].dtype),
                list(example[k].shape),
                hashlib.sha1(np.ascontiguousarray(example[k]).tobytes()).hexdigest(),
            ]
            for k in KEYS
        }

    def record(example):
        return {
            "ID": example["ID"],
            "split": example["split"],
            "patch_index": example["patch_index"],
            **digest(example),
        }

    repo, configs, splits, map_config, out = (
        sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4], sys.argv[5]
    )
    result = {"streamed": {}, "map": {}}
    for config in configs:
        for split in splits:
            ds = load_dataset(repo, config, split=split, streaming=True)
            result["streamed"][f"{config}/{split}"] = [record(r) for r in ds]
    for split, ds in load_dataset(repo, map_config).items():
        rows = [record(ds[i]) for i in range(len(ds))]
        if len(ds) > 1:
            picked = ds[[len(ds) - 1, 0]]
            assert [digest({k: picked[k][j] for k in KEYS}) for j in (0, 1)] == [
                {k: rows[i][k] for k in KEYS} for i in (len(ds) - 1, 0)]
        result["map"][split] = rows
    from bigearthnet_txt import split_by_node
    country = sys.argv[6]
    filtered = load_dataset(
        repo, "all", split="train", streaming=True, countries=[country], imagery=()
    )
    result["filtered"] = [r["ID"] for r in filtered]
    stream = load_dataset(repo, "all", split="train", streaming=True)
    result["ranks"] = [[r["ID"] for r in split_by_node(stream, rank, 2)] for rank in range(2)]
    result["shuffled_ranks"] = [
        [r["ID"] for r in load_dataset(repo, "all", split="train", streaming=True, imagery=(),
                                       rank=rank, world_size=2).shuffle(seed=4, buffer_size=5)]
        for rank in range(2)
    ]  # fmt: skip
    store = pickle.loads(pickle.dumps(ImageryStore(f"hf://datasets/{repo}")))
    result["patches"] = store.patches.num_rows
    json.dump(result, open(out, "w"))
    """
)


def digests(store, indices) -> list[dict]:
    """What ``OUR_CLIENT`` records per row: dtype, shape and sha1 of each native imagery array."""
    import hashlib

    batch = store.read(indices, ("s2_10m", "s2_20m", "s2_60m", "s1"))
    return [
        {
            k: [
                str(v[j].dtype),
                list(v[j].shape),
                hashlib.sha1(np.ascontiguousarray(v[j]).tobytes()).hexdigest(),
            ]
            for k, v in batch.items()
        }
        for j in range(len(indices))
    ]


def test_our_load_dataset_on_a_hub_repo_id(converted, stand_in, tmp_path):
    from bigearthnet_txt.store import ImageryStore

    hub.push(
        converted, "ns/bigearthnet_txt", token="dummy", endpoint=stand_in.url, log=lambda m: None
    )
    train = pa.concat_tables([pq.read_table(p) for p in config_files(converted, "all", "train")])
    country = train["country"][0].as_py()
    env = dict(
        os.environ,
        HF_ENDPOINT=stand_in.url,
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_TOKEN="dummy",
        HF_HOME=str(tmp_path / "client-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    out = tmp_path / "ours.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            OUR_CLIENT,
            "ns/bigearthnet_txt",
            ",".join(CONFIGS),
            ",".join(SPLITS),
            "vqa",
            str(out),
            country,
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    local = ImageryStore(converted)
    assert result["patches"] == local.patches.num_rows
    checked = 0
    for kind, entries in (("streamed", {f"{c}/{s}": (c, s) for c in CONFIGS for s in SPLITS}),
                          ("map", {s: ("vqa", s) for s in SPLITS})):  # fmt: skip
        for key, (config, split) in entries.items():
            got = result[kind].get(key, [])  # split=None lists the splits that have rows
            expected = pa.concat_tables(
                [pq.read_table(p) for p in config_files(converted, config, split)]
                or [TABLE_SCHEMA.empty_table()]
            )
            assert [r["ID"] for r in got] == expected["ID"].to_pylist(), (kind, key)
            assert all(r["split"] == split for r in got)
            assert [r["patch_index"] for r in got] == expected["patch_index"].to_pylist()
            want = digests(local, expected["patch_index"].to_pylist()) if got else []
            assert [{k: r[k] for k in w} for r, w in zip(got, want, strict=True)] == want, (
                kind,
                key,
            )
            checked += len(got)
    assert checked > 0
    assert result["filtered"] == [r["ID"] for r in train.to_pylist() if r["country"] == country]
    assert 0 < len(result["filtered"]) < train.num_rows
    for key in ("ranks", "shuffled_ranks"):  # .shuffle reloads with the node's share kept
        first, second = result[key]
        assert (
            sorted(first + second) == sorted(train["ID"].to_pylist())
            and abs(len(first) - len(second)) <= 1
        ), key
    assert result["shuffled_ranks"] != result["ranks"]
    assert stand_in.state.range_requests > 0

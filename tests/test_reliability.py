"""Hostile input: every bad input ends in one clear line (or a documented exception), nothing the
user had is lost, and two runs never write one folder at once.

``BAD_INPUTS`` is the list the README's reliability table counts: each case builds its bad input in
a fresh folder, runs the command line (``main``) or the Python API, and names the fragments the
message must hold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import rasterio
import tifffile
from filelock import FileLock
from imagery_support import METADATA, S2_SAMPLES, V1_PAIRS, make_archive
from rasterio.errors import NotGeoreferencedWarning

from bigearthnet_txt.conversion import download as dl
from bigearthnet_txt.conversion import retry
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.conversion.imagery.arguments import main as imagery_main
from bigearthnet_txt.conversion.output_folder import LOCK_FILE, MARKER_FILE
from bigearthnet_txt.conversion.sample_data import V1_S2_DIR
from bigearthnet_txt.errors import BigEarthNetTxtError

REPO_ROOT = Path(__file__).resolve().parent.parent
V1_NAME = "S2A_MSIL2A_20170617T113321_4_55"
V1_PATCH = "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_04_55"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


@dataclass
class Context:
    tmp: Path
    release: Path  # the sample annotations (release schema)

    def table(self) -> pa.Table:
        return pq.read_table(self.release)

    def write(self, table: pa.Table, name: str = "bad.parquet") -> Path:
        path = self.tmp / name
        pq.write_table(table, path)
        return path


def _replace(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    return table.set_column(
        table.schema.get_field_index(column),
        column,
        pa.array(values, table.schema.field(column).type),
    )


def _replace_patch(table: pa.Table, column: str, patch: str, value: str) -> pa.Table:
    mask = pc.equal(table["patch_id"], patch)
    new = pc.if_else(mask, pa.scalar(value), table[column])
    return table.set_column(table.schema.get_field_index(column), column, new)


def _convert_with_imagery(ctx: Context, annotations: Path) -> list[str]:
    """convert with the v1 S2 sample: bad annotations must fail before the imagery is touched."""
    return ["convert", "--annotations", str(annotations), "--out", str(ctx.tmp / "out"), "--s2",
            str(V1_S2_DIR), "--metadata", str(METADATA[0]), "--metadata", str(METADATA[1]),
            "--allow-missing-s1", "--quiet"]  # fmt: skip


def _imagery(ctx: Context, *sources: Path, patches=V1_PAIRS) -> list[str]:
    plist = ctx.tmp / "patches.txt"
    plist.write_text("\n".join(patches))
    argv = ["--out", str(ctx.tmp / "out"), "--patch-list", str(plist), "--quiet"]
    for m in METADATA:
        argv += ["--metadata", str(m)]
    for s in sources:
        argv += ["--s2", str(s)]
    return argv


def _v1_copy(ctx: Context) -> Path:
    return Path(shutil.copytree(V1_S2_DIR, ctx.tmp / "s2"))


def _rewrite_band(path: Path, *, georeferenced: bool = True, compress: str | None = None) -> None:
    with rasterio.open(path) as ds:
        data, profile = ds.read(1), ds.profile
    profile.update(driver="GTiff", compress=compress, tiled=False)
    if not georeferenced:
        profile.pop("crs", None)
        profile.pop("transform", None)
    path.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # wanted here
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data, 1)


# --- the cases: each returns ("cli", argv) / ("imagery", argv) / ("api", callable) and fragments --


def annotations_unknown_split(ctx):
    bad = ctx.write(_replace(ctx.table(), "split", 2, "training"))
    return "cli", _convert_with_imagery(ctx, bad), ["column 'split'", "'training'", "row ID="]


def annotations_nul_in_s1_name(ctx):
    table = ctx.table()
    bad = ctx.write(_replace(table, "s1_name", 0, table["s1_name"][0].as_py() + "\x00x"))
    return (
        "cli",
        _convert_with_imagery(ctx, bad),
        ["column 's1_name'", "not a patch name", "row ID="],
    )


def annotations_path_in_patch_id(ctx):
    table = ctx.table()
    bad = ctx.write(_replace_patch(table, "patch_id", table["patch_id"][0].as_py(), "../x"))
    return "cli", _convert_with_imagery(ctx, bad), ["column 'patch_id'", "'../x'"]


def annotations_no_rows(ctx):
    bad = ctx.write(ctx.table().slice(0, 0))
    return "cli", _convert_with_imagery(ctx, bad), [str(ctx.tmp / "bad.parquet"), "no rows"]


def annotations_zero_bytes(ctx):
    bad = ctx.tmp / "bad.parquet"
    bad.write_bytes(b"")
    return "cli", _convert_with_imagery(ctx, bad), [str(bad), "not a readable Parquet file"]


def annotations_s1_name_not_the_metadata_pair(ctx):
    bad = ctx.write(
        _replace_patch(
            ctx.table(), "s1_name", V1_PATCH, "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_9_99"
        )
    )
    fragments = ["column 's1_name'", "differs from the metadata", V1_PATCH, "row ID="]
    return "cli", _convert_with_imagery(ctx, bad), fragments


def annotations_patch_not_in_metadata(ctx):
    bad = ctx.write(
        _replace_patch(
            ctx.table(), "patch_id", V1_PATCH, "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_99_99"
        )
    )
    fragments = ["column 'patch_id'", "_99_99", "not in the BigEarthNet metadata"]
    return "cli", _convert_with_imagery(ctx, bad), fragments


def annotations_duplicate_id(ctx):
    table = ctx.table()
    bad = ctx.write(_replace(table, "ID", 1, table["ID"][0].as_py()))
    return "cli", _convert_with_imagery(ctx, bad), ["column 'ID'", "more than once"]


def annotations_missing_column(ctx):
    bad = ctx.write(ctx.table().drop_columns(["category"]))
    return "cli", _convert_with_imagery(ctx, bad), ["missing column", "'category'"]


def annotations_null_value(ctx):
    bad = ctx.write(_replace(ctx.table(), "output", 3, None))
    return "cli", _convert_with_imagery(ctx, bad), ["column 'output'", "null", "row ID="]


def annotations_patch_in_two_splits(ctx):
    table = ctx.table()
    rows = np.flatnonzero(pc.equal(table["patch_id"], V1_PATCH).to_numpy(zero_copy_only=False))
    other = next(s for s in ("train", "validation") if s != table["split"][int(rows[0])].as_py())
    bad = ctx.write(_replace(table, "split", int(rows[-1]), other))
    return "cli", _convert_with_imagery(ctx, bad), [V1_PATCH, "splits"]


def archive_cut(n: int):
    def case(ctx):
        archive = make_archive(S2_SAMPLES, "BigEarthNet-S2", ctx.tmp / "BigEarthNet-S2.tar.zst")
        archive.write_bytes(archive.read_bytes()[:-n])
        argv = _imagery(ctx, archive, patches=list(S2_SAMPLES))
        return "imagery", argv, ["BigEarthNet-S2.tar.zst", "truncated or corrupt", "inside a frame"]

    case.__name__ = f"archive_cut_by_{n}_bytes"
    return case


def geotiff_without_georeference(ctx):
    s2 = _v1_copy(ctx)
    _rewrite_band(s2 / V1_NAME / f"{V1_NAME}_B03.tif", georeferenced=False)
    return "imagery", _imagery(ctx, s2), [f"{V1_NAME}_B03.tif", V1_PATCH, "no geo-reference"]


def geotiff_corrupt_deflate(ctx):
    s2 = _v1_copy(ctx)
    band = s2 / V1_NAME / f"{V1_NAME}_B04.tif"
    _rewrite_band(band, compress="deflate")
    with tifffile.TiffFile(band) as tif:  # the first strip's compressed bytes
        offset = tif.pages[0].dataoffsets[0]
    data = bytearray(band.read_bytes())
    data[offset + 2 : offset + 40] = bytes(38)
    band.write_bytes(bytes(data))
    return "imagery", _imagery(ctx, s2), [f"{V1_NAME}_B04.tif", V1_PATCH, "corrupt GeoTIFF"]


def same_patch_in_two_sources(ctx):
    first = _v1_copy(ctx)
    second = ctx.tmp / "s2-again"
    shutil.copytree(V1_S2_DIR / V1_NAME, second / V1_NAME)
    return "imagery", _imagery(ctx, first, second), [str(first), str(second), "two s2 sources"]


def option_zero(flag: str, command: str = "convert"):
    def case(ctx):
        argv = [command, "--annotations", str(ctx.release), "--out", str(ctx.tmp / "o"), flag, "0"]
        if command == "push":
            argv = ["push", str(ctx.tmp), "--repo-id", "a/b", flag, "0"]
        return "cli", argv, [f"argument {flag}", "got 0"]

    case.__name__ = f"option_{command}_{flag.strip('-').replace('-', '_')}_zero"
    return case


def foreign_content(name: str):
    def case(ctx):
        out = ctx.tmp / "out"
        target = out / name
        if name.endswith(".md"):
            out.mkdir()
            target.write_text("my notes\n")
        else:
            target.mkdir(parents=True)
            (target / "mine.txt").write_text("my file\n")
        argv = ["convert", "--annotations", str(ctx.release), "--out", str(out), "--quiet"]
        return "cli", argv, [str(out), name, "not written by bigearthnet-txt", "--overwrite"]

    case.__name__ = f"foreign_{name.strip('/').replace('.', '_')}_in_out"
    return case


def data_not_found(command: str):
    def case(ctx):
        missing = str(ctx.tmp / "nowhere")
        argv = {"info": ["info", missing],
                "show": ["show", "1", "--data", missing, "--out", str(ctx.tmp / "x.png")],
                "evaluate": ["evaluate", "--predictions", str(ctx.tmp / "p.jsonl"),
                             "--data", missing],
                }[command]  # fmt: skip
        return "cli", argv, ["nowhere", "no converted BigEarthNet.txt data set"]

    case.__name__ = f"{command}_of_a_missing_data_set"
    return case


def push_to_unreachable_hub(ctx):
    out = ctx.tmp / "converted"
    assert main(["convert", "--annotations", str(ctx.release), "--out", str(out), "--quiet"]) == 0
    argv = ["push", str(out), "--repo-id", "ns/name", "--endpoint", CLOSED_PORT_URL, "--keep-card"]
    return "cli", argv, ["push to ns/name", "cannot be reached", "token"]


class _EndlessHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"x" * 65536)
        except OSError:
            pass


def download_from_an_endless_server(ctx):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ctx.cleanup.append(server.shutdown)
    url = f"http://127.0.0.1:{server.server_address[1]}/metadata.parquet"
    source = dl.SourceFile("metadata.parquet", 300_000, "0" * 32, (url,))

    def call():
        try:
            dl.fetch(source, ctx.tmp / "dl", progress=False)
        finally:
            part = ctx.tmp / "dl" / "metadata.parquet.part"
            ctx.sizes.append(part.stat().st_size if part.exists() else 0)

    return "api", call, ["metadata.parquet", "more than the declared 300,000 bytes"]


BAD_INPUTS: list[Callable] = [
    annotations_unknown_split,
    annotations_nul_in_s1_name,
    annotations_path_in_patch_id,
    annotations_no_rows,
    annotations_zero_bytes,
    annotations_s1_name_not_the_metadata_pair,
    annotations_patch_not_in_metadata,
    annotations_duplicate_id,
    annotations_missing_column,
    annotations_null_value,
    annotations_patch_in_two_splits,
    archive_cut(1),
    archive_cut(2),
    archive_cut(3),
    geotiff_without_georeference,
    geotiff_corrupt_deflate,
    same_patch_in_two_sources,
    option_zero("--shard-size"),
    option_zero("--workers"),
    option_zero("--rows-per-shard"),
    option_zero("--temperature"),
    option_zero("--batch-files", "push"),
    foreign_content("data"),
    foreign_content("imagery.zarr"),
    foreign_content("README.md"),
    data_not_found("info"),
    data_not_found("show"),
    data_not_found("evaluate"),
    push_to_unreachable_hub,
    download_from_an_endless_server,
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c.__name__)
def test_bad_input_gives_one_clear_line(case, sample_release_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(retry, "RETRY_WAIT_S", 0.0)
    ctx = Context(tmp_path, sample_release_file)
    ctx.cleanup, ctx.sizes = [], []
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    try:
        kind, target, fragments = case(ctx)
        capsys.readouterr()
        if kind == "api":
            with pytest.raises(BigEarthNetTxtError) as raised:
                target()
            message = str(raised.value)
        else:
            if kind == "cli":
                try:
                    code = main(target)
                except SystemExit as exit_:  # argparse usage errors
                    code = exit_.code
            else:
                code = imagery_main(target)
            message = capsys.readouterr().err
            assert code != 0
            assert message.count("\n") == 1 and message.endswith("\n"), message
            assert "Traceback" not in message
    finally:
        for stop in ctx.cleanup:
            stop()
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    if case.__name__.startswith("annotations_"):  # failed before any imagery work
        assert not (tmp_path / "out" / "imagery.zarr").exists()
    if case.__name__.startswith("foreign_"):  # the user's files are untouched
        for path, data in before.items():
            assert path.read_bytes() == data
    if ctx.sizes:
        assert ctx.sizes == [300_000]  # stopped at the declared size


# --- output folder: the lock ---------------------------------------------------------------------


def test_a_held_folder_refuses_a_second_run_at_once(sample_release_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["convert", "--annotations", str(sample_release_file), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    with FileLock(out / LOCK_FILE).acquire(timeout=0):  # a first run, in the middle of its work
        capsys.readouterr()
        assert main([*argv, "--shard-size", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "another bigearthnet-txt run" in err
    assert main(argv) == 0  # free again


def test_the_lock_names_its_holder_and_dies_with_it(sample_release_file, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from bigearthnet_txt.conversion.output_folder import claim_output_folder\n"
            "with claim_output_folder(sys.argv[1], 'convert'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n"
        ), str(out)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(
            [sys.executable, "-m", "bigearthnet_txt.conversion.cli", "convert", "--annotations",
             str(sample_release_file), "--out", str(out), "--quiet"],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        )  # fmt: skip
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1, second.stderr
        assert f"pid {holder.pid}" in second.stderr and str(out) in second.stderr
        assert not (out / "data").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    argv = ["convert", "--annotations", str(sample_release_file), "--out", str(out), "--quiet"]
    assert main(argv) == 0  # the killed holder's lock went with it


def test_a_patch_without_its_s2_folder_fails_before_any_imagery_work(
    sample_release_file, tmp_path, capsys
):
    ctx = Context(tmp_path, sample_release_file)
    table = ctx.table()
    v1 = ctx.write(table.filter(pc.is_in(table["patch_id"], pa.array(V1_PAIRS))), "v1.parquet")
    rows = pq.read_table(v1)
    first_row = rows["ID"][pc.index(rows["patch_id"], V1_PATCH).as_py()].as_py()
    s2 = _v1_copy(ctx)
    shutil.rmtree(s2 / V1_NAME)
    argv = _convert_with_imagery(ctx, v1)
    argv[argv.index(str(V1_S2_DIR))] = str(s2)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no S2 patch folder" in err and V1_PATCH in err, err
    assert f"row ID={first_row}," in err and str(s2) in err
    assert not (tmp_path / "out" / "imagery.zarr").exists()  # before any imagery work
    assert main([*argv, "--skip-bad"]) == 0  # left out and counted instead
    assert json.loads((tmp_path / "out" / "annotations.json").read_text())["dropped"][
        "patches"
    ] == [V1_PATCH]


def test_the_python_api_takes_the_lock_too(sample_release_file, tmp_path):
    from bigearthnet_txt.conversion.annotations import convert_annotations
    from bigearthnet_txt.conversion.imagery.convert import convert_imagery
    from bigearthnet_txt.errors import OutputFolderBusyError

    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / LOCK_FILE).acquire(timeout=0):  # another run, in the middle of its work
        with pytest.raises(OutputFolderBusyError, match="another bigearthnet-txt run") as busy:
            convert_imagery(out, s2=[V1_S2_DIR], metadata=METADATA, patch_ids=V1_PAIRS,
                            progress=False)  # fmt: skip
        assert str(out) in str(busy.value)
        with pytest.raises(OutputFolderBusyError, match=str(out)):
            convert_annotations(sample_release_file, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written meanwhile
    result = convert_imagery(out, s2=[V1_S2_DIR], metadata=METADATA, patch_ids=V1_PAIRS,
                             progress=False)  # fmt: skip
    assert result.n_patches == len(V1_PAIRS)
    assert not (out / MARKER_FILE).exists()  # the API locks; the marker is the commands' policy


def test_foreign_content_is_replaced_only_with_overwrite(sample_release_file, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "mine.txt").write_text("mine")
    (out / "notes.txt").write_text("kept")
    argv = ["convert", "--annotations", str(sample_release_file), "--out", str(out), "--quiet"]
    assert main(argv) == 2 and (out / "data" / "mine.txt").read_text() == "mine"
    assert not (out / MARKER_FILE).exists()
    assert main([*argv, "--overwrite"]) == 0
    assert (out / MARKER_FILE).is_file() and (out / "notes.txt").read_text() == "kept"
    assert main(argv) == 0  # its own output: a rerun is welcome without --overwrite


def test_demo_refuses_a_folder_with_foreign_content(tmp_path, capsys):
    (tmp_path / "README.md").write_text("my project\n")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not written by bigearthnet-txt" in capsys.readouterr().err
    assert (tmp_path / "README.md").read_text() == "my project\n"
    assert not (tmp_path / "sources").exists()


# --- info checks that the parts of a folder agree ---------------------------------------------


def test_info_reports_arrays_with_different_shard_layouts(tmp_path, capsys):
    from bigearthnet_txt.conversion.imagery.convert import convert_imagery
    from bigearthnet_txt.info import describe

    for name, shard_size in (("a", 2), ("b", 3)):
        convert_imagery(tmp_path / name, s2=[V1_S2_DIR], metadata=METADATA, patch_ids=V1_PAIRS,
                        shard_size=shard_size, progress=False)  # fmt: skip
    assert describe(tmp_path / "a")["problems"] == []
    mixed = tmp_path / "a" / "imagery.zarr" / "s2_20m"
    shutil.rmtree(mixed)
    shutil.copytree(tmp_path / "b" / "imagery.zarr" / "s2_20m", mixed)
    problems = describe(tmp_path / "a")["problems"]
    assert any("disagree on the patches per shard" in p and "s2_20m 3" in p for p in problems)
    capsys.readouterr()  # what the conversions above logged
    assert main(["info", str(tmp_path / "a")]) == 2
    captured = capsys.readouterr()
    assert "PROBLEMS" in captured.out and captured.err.count("\n") == 1


# --- command line and Python API find data alike -------------------------------------------------


def test_cli_resolves_bare_names_in_the_data_home(converted_sample, tmp_path, monkeypatch, capsys):
    from bigearthnet_txt.conversion.card import write_card

    home = tmp_path / "home"
    shutil.copytree(converted_sample, home / "mine")
    write_card(home / "mine")
    monkeypatch.setenv("BIGEARTHNET_TXT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert main(["info", "mine", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(home / "mine")
    row_id = pq.read_table(next((home / "mine" / "data" / "binary").glob("*.parquet")))["ID"][0]
    png = tmp_path / "p.png"
    assert main(["show", str(row_id.as_py()), "--data", "mine", "--out", str(png)]) == 0
    assert png.stat().st_size > 0


def test_info_json_into_a_closed_pipe_ends_quietly(converted_sample):
    result = subprocess.run(
        f"{sys.executable} -m bigearthnet_txt.conversion.cli info --json {converted_sample}"
        " | head -c 10",
        shell=True, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )  # fmt: skip
    assert result.stdout == '{\n "path":'[:10] and result.stderr == ""


def test_hub_names_that_reach_nothing_say_both_readings(tmp_path):
    script = (
        "import json\n"
        "from bigearthnet_txt import load_dataset\n"
        "from bigearthnet_txt.errors import HubUnavailableError\n"
        "out = {}\n"
        "for name in ('ns/name', 'out/x'):\n"
        "    try:\n"
        "        load_dataset(name, 'vqa')\n"
        "    except HubUnavailableError as err:\n"
        "        out[name] = str(err)\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_ENDPOINT=CLOSED_PORT_URL,
               HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"))  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("ns/name", "out/x"):
        assert "\n" not in messages[name]
        assert f"{tmp_path / name} does not exist" in messages[name]
        assert "nor a reachable Hub data set repository" in messages[name]


def test_a_two_part_path_that_exists_locally_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    from bigearthnet_txt import load_dataset
    from bigearthnet_txt.errors import DataNotFoundError

    (tmp_path / "out" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError, match="is not a converted BigEarthNet.txt data set"):
        load_dataset("out/x", "vqa")


# --- what the formats cannot tell: documented, and --verify --------------------------------------


def test_a_flipped_pixel_in_an_uncompressed_geotiff_is_converted_as_it_is(tmp_path):
    from bigearthnet_txt.conversion.imagery.convert import convert_imagery
    from bigearthnet_txt.store import ImageryStore

    s2 = Path(shutil.copytree(V1_S2_DIR, tmp_path / "s2"))
    band = s2 / V1_NAME / f"{V1_NAME}_B02.tif"
    with rasterio.open(band, "r+") as ds:
        data = ds.read(1)
        data[5, 7] ^= 1
        ds.write(data, 1)
    convert_imagery(tmp_path / "out", s2=[s2], metadata=METADATA, patch_ids=V1_PAIRS,
                    progress=False)  # fmt: skip
    store = ImageryStore(tmp_path / "out")
    index = pq.read_table(tmp_path / "out" / "patches.parquet").to_pydict()
    row = index["patch_index"][index["patch_id"].index(V1_PATCH)]
    assert store.read([row])["s2_10m"][0, 0, 5, 7] == data[5, 7]  # silent: no format can tell


def test_a_flipped_bit_in_a_zstd_frame_without_checksum_is_caught_by_verify(tmp_path):
    import hashlib

    from bigearthnet_txt.conversion.imagery.convert import convert_imagery

    archive = make_archive(S2_SAMPLES, "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar.zst")
    sums = tmp_path / "sums.md5"
    sums.write_text("".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}\n"
                            for p in (archive, *METADATA)))  # fmt: skip
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x10
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="BigEarthNet-S2.tar.zst: md5 .* does not match"):
        convert_imagery(tmp_path / "out", s2=[archive], metadata=METADATA,
                        patch_ids=list(S2_SAMPLES), verify=True, checksum_list=sums,
                        progress=False)  # fmt: skip


def test_sample_fixture_coordinates_are_the_geotiff_centres(sample_release_table):
    from rasterio.warp import transform

    table = sample_release_table.group_by("patch_id").aggregate(
        [("latitude", "min"), ("latitude", "max"), ("longitude", "min"), ("longitude", "max")]
    )
    where = {r["patch_id"]: r for r in table.to_pylist()}
    for pid, folder in S2_SAMPLES.items():
        band = next(folder.glob("*_B02.tif*"))
        with rasterio.open(band) as ds:
            x, y = ds.transform @ (60, 60)
            (lon,), (lat,) = transform(ds.crs, "EPSG:4326", [x], [y])
        row = where[pid]
        assert row["latitude_min"] == row["latitude_max"] == pytest.approx(lat, abs=1e-5)
        assert row["longitude_min"] == row["longitude_max"] == pytest.approx(lon, abs=1e-5)
    austria = where["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_89_18"]
    assert austria["latitude_min"] == pytest.approx(48.55, abs=0.01)
    assert austria["longitude_min"] == pytest.approx(13.75, abs=0.01)


def test_push_token_on_the_command_line_warns(tmp_path, capsys):
    from bigearthnet_txt.conversion.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["push"].format_help()
    assert "HF_TOKEN" in " ".join(help_text.split()) and "process list" in " ".join(
        help_text.split()
    )
    assert main(["push", str(tmp_path), "--repo-id", "a/b", "--token", "hf_x"]) == 2
    err = capsys.readouterr().err
    assert "warning: --token shows the token" in err and "hf_x" not in err


def test_corrupt_deflate_band_is_recorded_with_skip_bad(tmp_path, capsys):
    ctx = Context(tmp_path, tmp_path / "unused")
    ctx.cleanup, ctx.sizes = [], []
    _, argv, _ = geotiff_corrupt_deflate(ctx)
    assert imagery_main([*argv, "--skip-bad"]) == 0
    report = json.loads((tmp_path / "out" / "imagery_report.json").read_text())
    (bad,) = report["bad"]
    assert bad["kind"] == "corrupt-geotiff" and bad["patch"] == V1_PATCH
    assert f"{V1_NAME}_B04.tif" in bad["path"]
    assert report["n_patches"] == len(V1_PAIRS) - 1


def test_readme_reliability_table_counts_this_list():
    import re

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    counts = dict(re.findall(r"^\| (bad inputs tried|clear errors) \| (\d+) \|", section, re.M))
    assert counts == {
        "bad inputs tried": str(len(BAD_INPUTS)),
        "clear errors": str(len(BAD_INPUTS)),
    }


def test_a_folder_converted_before_markers_is_recognised(sample_release_file, tmp_path):
    out = tmp_path / "out"
    argv = ["convert", "--annotations", str(sample_release_file), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    (out / MARKER_FILE).unlink()  # as an earlier version left it
    assert main(argv) == 0 and (out / MARKER_FILE).is_file()


def test_a_hub_failure_after_the_revision_resolved_is_one_line(monkeypatch):
    import datasets

    from bigearthnet_txt.errors import HubUnavailableError
    from bigearthnet_txt.hub_loading import hub_text

    def unreachable(*args, **kwargs):
        raise ConnectionError("Max retries exceeded with url: /api/datasets/ns/name\nmore lines")

    monkeypatch.setattr(datasets, "load_dataset_builder", unreachable)
    with pytest.raises(HubUnavailableError) as raised:
        hub_text("ns/name", "vqa", ["test"], streaming=False, revision="abc123")
    message = str(raised.value)
    assert "\n" not in message and "'ns/name'" in message and "abc123" in message
    assert "ConnectionError: Max retries exceeded" in message and "'vqa'" in message

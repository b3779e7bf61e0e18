"""Bad imagery input: a clear error naming the file/patch and nothing looking complete;
--skip-bad."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
import rasterio.io
import tifffile
import zstandard
from imagery_support import METADATA, S2_SAMPLES, V1_PAIRS, make_archive

from bigearthnet_txt.conversion.imagery import sources
from bigearthnet_txt.conversion.imagery.convert import REPORT_FILE, convert_imagery
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.geotiff import Expected, read_band, read_band_rasterio
from bigearthnet_txt.conversion.imagery.sources import iter_folder
from bigearthnet_txt.conversion.sample_data import V1_S1_DIR, V1_S2_DIR, V2_S2_DIR
from bigearthnet_txt.store import ImageryStore

V1_S2_NAME = "S2A_MSIL2A_20170617T113321_4_55"
V1_S2_PATCH = "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_04_55"


def _assert_nothing_complete(out):
    assert not (out / "patches.parquet").exists()
    if (out / "imagery.zarr").exists():
        with pytest.raises(ValueError, match="not finished"):
            _ = ImageryStore(out).arrays


def _v1_copy(tmp_path):
    s2, s1 = tmp_path / "s2", tmp_path / "s1"
    shutil.copytree(V1_S2_DIR, s2)
    shutil.copytree(V1_S1_DIR, s1)
    return s2, s1


def _convert(out, s2, s1, **kw):
    kw = {"metadata": METADATA, "patch_ids": V1_PAIRS, "shard_size": 1, "progress": False, **kw}
    return convert_imagery(out, s2=[s2], s1=[s1], **kw)


def test_corrupt_geotiff_names_file_and_patch(tmp_path):
    s2, s1 = _v1_copy(tmp_path)
    bad = s2 / V1_S2_NAME / f"{V1_S2_NAME}_B03.tif"
    bad.write_bytes(b"II*\x00" + b"\x13" * 500)
    with pytest.raises(ImageryInputError, match="corrupt GeoTIFF") as err:
        _convert(tmp_path / "out", s2, s1)
    assert str(bad) in str(err.value) and V1_S2_PATCH in str(err.value)
    _assert_nothing_complete(tmp_path / "out")


def test_missing_band_names_patch_and_band(tmp_path):
    s2, s1 = _v1_copy(tmp_path)
    (s2 / V1_S2_NAME / f"{V1_S2_NAME}_B8A.tif").unlink()
    with pytest.raises(ImageryInputError, match=f"{V1_S2_NAME} .*missing band B8A"):
        _convert(tmp_path / "out", s2, s1)
    _assert_nothing_complete(tmp_path / "out")


def test_wrong_shape_names_file(tmp_path):
    s2, s1 = _v1_copy(tmp_path)
    folder = s2 / V1_S2_NAME
    shutil.copyfile(folder / f"{V1_S2_NAME}_B05.tif", folder / f"{V1_S2_NAME}_B02.tif")
    with pytest.raises(ImageryInputError, match=r"_B02.tif: wrong shape \(60, 60\)"):
        _convert(tmp_path / "out", s2, s1)
    _assert_nothing_complete(tmp_path / "out")


def test_wrong_dtype_names_file(tmp_path):
    s2, s1 = _v1_copy(tmp_path)
    s1_name = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55"
    shutil.copyfile(s2 / V1_S2_NAME / f"{V1_S2_NAME}_B02.tif", s1 / s1_name / f"{s1_name}_VV.tif")
    with pytest.raises(ImageryInputError, match=rf"{s1_name}_VV.tif: wrong dtype uint16"):
        _convert(tmp_path / "out", s2, s1)
    _assert_nothing_complete(tmp_path / "out")


def test_missing_s1_pair_names_patch_and_s1_name(tmp_path):
    with pytest.raises(
        ImageryInputError,
        match=(
            "S2 patch .*_T33UUP_89_18: its S1 pair S1A_IW_GRDH_1SDV_20170613T165108_33UUP_89_18 "
            "is missing.*also missing: .*_T33UUP_75_43"
        ),
    ):
        convert_imagery(
            tmp_path, s2=[V2_S2_DIR], s1=[V1_S1_DIR], metadata=METADATA,
            patch_ids=[p for p in S2_SAMPLES if "T33UUP" in p], progress=False,
        )  # fmt: skip
    _assert_nothing_complete(tmp_path)


def test_annotation_patch_not_in_imagery(tmp_path, sample_release_file):
    with pytest.raises(
        ImageryInputError, match="_T33UUP_89_18 is selected .* not in the S2 imagery"
    ) as err:
        convert_imagery(
            tmp_path,
            s2=[V1_S2_DIR],
            metadata=METADATA,
            annotations=[sample_release_file],
            progress=False,
        )
    assert "also missing: " in str(err.value) and "_T33UUP_75_43" in str(err.value)
    _assert_nothing_complete(tmp_path)


def test_truncated_archive_names_archive(tmp_path):
    archive = make_archive(S2_SAMPLES, "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar.zst")
    data = archive.read_bytes()
    for cut in (len(data) // 2, len(data) - 40):
        archive.write_bytes(data[:cut])
        with pytest.raises(ImageryInputError, match="BigEarthNet-S2.tar.zst: truncated or corrupt"):
            convert_imagery(
                tmp_path / f"out{cut}",
                s2=[archive],
                metadata=METADATA,
                patch_ids=list(S2_SAMPLES),
                shard_size=1,
                progress=False,
            )
        _assert_nothing_complete(tmp_path / f"out{cut}")


def test_crafted_member_path_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        payload = (V1_S2_DIR / V1_S2_NAME / f"{V1_S2_NAME}_B02.tif").read_bytes()
        info = tarfile.TarInfo(f"BigEarthNet-S2/../../{V1_S2_NAME}_B02.tif")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    archive = tmp_path / "evil.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    with pytest.raises(
        ImageryInputError, match=r"evil.tar.zst: unsafe member path 'BigEarthNet-S2/\.\./\.\./"
    ):
        convert_imagery(
            tmp_path / "out", s2=[archive], metadata=METADATA, patch_ids=V1_PAIRS, progress=False
        )
    assert not (tmp_path.parent / f"{V1_S2_NAME}_B02.tif").exists()
    _assert_nothing_complete(tmp_path / "out")


def test_skip_bad_records_and_goes_on(tmp_path):
    s2, s1 = _v1_copy(tmp_path)
    (s2 / V1_S2_NAME / f"{V1_S2_NAME}_B8A.tif").unlink()
    other = "S2A_MSIL2A_20171221T112501_56_35"
    (s2 / other / f"{other}_B11.tif").write_bytes(b"not a tiff")
    result = _convert(tmp_path / "out", s2, s1, skip_bad=True)
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    kinds = sorted((b["kind"], b["patch"]) for b in report["bad"])
    assert kinds == [
        ("corrupt-geotiff", "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_56_35"),
        ("missing-band", V1_S2_PATCH),
    ]
    store = ImageryStore(tmp_path / "out")
    assert store.patches["patch_id"].to_pylist() == [
        "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85"
    ]
    assert result.n_patches == 1 and len(result.bad) == 2
    assert not np.isnan(
        store.read(store.indices_of(store.patches["patch_id"].to_pylist()), ["s1"])["s1"]
    ).any()


def test_verify_against_a_checksum_list(tmp_path):
    archive = make_archive(S2_SAMPLES, "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar.zst")
    good = tmp_path / "good.md5"
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (archive, *METADATA)}
    good.write_text("".join(f"{m}  {n}\n" for n, m in sums.items()))
    convert_imagery(tmp_path / "ok", s2=[archive], metadata=METADATA, patch_ids=list(S2_SAMPLES),
                    verify=True, checksum_list=good, progress=False)  # fmt: skip
    assert ImageryStore(tmp_path / "ok").attrs["sources"][0]["md5"] == sums[archive.name]
    bad = tmp_path / "bad.md5"
    bad.write_text(good.read_text().replace(sums[archive.name], "0" * 32))
    with pytest.raises(ValueError, match=r"BigEarthNet-S2.tar.zst: md5 .* does not match"):
        convert_imagery(
            tmp_path / "no",
            s2=[archive],
            metadata=METADATA,
            patch_ids=list(S2_SAMPLES),
            verify=True,
            checksum_list=bad,
            progress=False,
        )
    assert not (tmp_path / "no").exists()
    with pytest.raises(ValueError, match="does not match"):  # the published sums
        convert_imagery(
            tmp_path / "no",
            s2=[archive],
            metadata=METADATA,
            patch_ids=list(S2_SAMPLES),
            verify=True,
            progress=False,
        )


V2_75_43 = S2_SAMPLES["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"]
V2_89_18 = S2_SAMPLES["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_89_18"]


def _v2_copy_with(tmp_path, extra_name: str):
    """A copy of the v2 sample folder with ``_89_18``'s B02 file added to ``_75_43``'s folder as
    ``extra_name``."""
    s2 = tmp_path / "s2"
    shutil.copytree(V2_S2_DIR, s2)
    target = s2 / V2_75_43.relative_to(V2_S2_DIR)
    shutil.copyfile(V2_89_18 / f"{V2_89_18.name}_B02.tif", target / extra_name)
    return s2, target / extra_name


@pytest.mark.parametrize(
    ("extra", "kind"),
    [(f"{V2_89_18.name}_B02.tif", "foreign-band"), (f"{V2_75_43.name}_B02.tiff", "duplicate-band")],
)
@pytest.mark.parametrize("route", ["folder", "archive"])
def test_foreign_or_duplicate_band_file_makes_its_patch_bad(tmp_path, extra, kind, route):
    s2, path = _v2_copy_with(tmp_path, extra)
    label = str(path)
    if route == "archive":
        archive = tmp_path / "BigEarthNet-S2.tar.zst"
        subprocess.run(
            ["tar", "--sort=name", "-cf", str(tmp_path / "s2.tar"), "-C", str(tmp_path), "s2"],
            check=True,
        )
        subprocess.run(
            ["zstd", "-q", "--rm", str(tmp_path / "s2.tar"), "-o", str(archive)], check=True
        )
        s2, label = archive, f"{archive}:{path.relative_to(tmp_path).as_posix()}"
    ids = [p for p in S2_SAMPLES if "T33UUP" in p]
    options = {"metadata": METADATA, "patch_ids": ids, "shard_size": 1, "progress": False}
    with pytest.raises(
        ImageryInputError, match=f"{re.escape(label)}: .*patch {V2_75_43.name}"
    ) as err:
        convert_imagery(tmp_path / "out", s2=[s2], **options)
    assert err.value.kind == kind
    _assert_nothing_complete(tmp_path / "out")
    convert_imagery(tmp_path / "skip", s2=[s2], skip_bad=True, **options)
    report = json.loads((tmp_path / "skip" / REPORT_FILE).read_text())
    assert [(b["kind"], b["path"]) for b in report["bad"]] == [(kind, label)]
    assert ImageryStore(tmp_path / "skip").patches["patch_id"].to_pylist() == [V2_89_18.name]


def test_folder_of_loose_band_files_is_grouped_by_patch_name(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    for folder in (V2_75_43, V2_89_18):
        for f in folder.glob("*.tif"):
            shutil.copyfile(f, loose / f.name)
    patches = list(iter_folder(loose))
    assert [p.name for p in patches] == sorted([V2_75_43.name, V2_89_18.name])
    assert all(len(p.files) == 12 and p.error is None for p in patches)


def test_oversized_archive_member_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", 40_000)  # every real band file fits
    buffer = io.BytesIO()
    folder = V1_S2_DIR / V1_S2_NAME
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(folder.glob("*.tif")):
            tar.add(path, f"BigEarthNet-v1.0/{V1_S2_NAME}/{path.name}")
        info = tarfile.TarInfo(f"BigEarthNet-v1.0/{V1_S2_NAME}/{V1_S2_NAME}_B12.tiff")
        info.size = 40_001
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    archive = tmp_path / "crafted.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    member = f"{archive}:BigEarthNet-v1.0/{V1_S2_NAME}/{V1_S2_NAME}_B12.tiff"
    (patch,) = sources.iter_archive(archive)
    assert patch.error.kind == "oversized-member" and str(patch.error).startswith(
        f"{member}: 40001 bytes"
    )
    assert len(patch.files) == 12


def test_band_shape_is_checked_before_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("pixels decoded before the shape check")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", never)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read", never)
    path = V1_S2_DIR / V1_S2_NAME / f"{V1_S2_NAME}_B05.tif"  # 60 x 60
    expected = Expected("B02", (120, 120), "uint16")
    for read in (read_band, read_band_rasterio):
        with pytest.raises(ImageryInputError, match=r"wrong shape \(60, 60\) for band B02") as err:
            read(path.read_bytes(), str(path), V1_S2_PATCH, expected)
        assert err.value.kind == "wrong-shape"


def test_train_statistics_leave_out_patches_dropped_by_another_pass(tmp_path):
    s2, s1 = _v1_copy(tmp_path)
    s1_name = (
        "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55"  # the S1 pair of V1_S2_PATCH, a train patch
    )
    (s1 / s1_name / f"{s1_name}_VV.tif").write_bytes(b"not a tiff")
    _convert(tmp_path / "skip", s2, s1, skip_bad=True)
    kept = [p for p in V1_PAIRS if p != V1_S2_PATCH]
    _convert(tmp_path / "kept", s2, s1, patch_ids=kept)
    stats = ImageryStore(tmp_path / "skip").attrs["stats"]
    expected = ImageryStore(tmp_path / "kept").attrs["stats"]
    assert stats.keys() == expected.keys() and "B02" in stats and "VH" in stats
    for band in expected:
        assert stats[band] == pytest.approx(expected[band], rel=1e-9), band

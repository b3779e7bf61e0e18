"""The README's main command: ``bigearthnet-txt demo`` on the embedded real sample, end to end."""

from __future__ import annotations

import numpy as np

from bigearthnet_txt import load_dataset
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.paths import HOME_ENV
from bigearthnet_txt.store import ImageryStore


def test_demo_converts_the_sample_and_loads_vqa_by_bare_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "== load_dataset('bigearthnet_txt', 'vqa', split='train')[0]" in out
    assert "s2_10m: uint16 [4, 120, 120]" in out and "s1: float32 [2, 120, 120]" in out
    for task in ("captions", "binary", "mcq", "referring"):
        assert f"== {task} (data/{task}/" in out
    assert (tmp_path / "README.md").is_file() and (tmp_path / "imagery.zarr").is_dir()

    vqa = load_dataset("bigearthnet_txt", "vqa", split="train")
    assert set(vqa["type"]) == {"binary", "mcq"}
    example = vqa[0]
    native = ImageryStore(tmp_path).read([example["patch_index"]])
    for name in ("s2_10m", "s2_20m", "s2_60m", "s1"):
        assert example[name].dtype == native[name].dtype
        np.testing.assert_array_equal(example[name], native[name][0])

    assert main(["demo"]) == 0  # a second run finds the data set converted and loads again
    assert "== load_dataset('bigearthnet_txt', 'vqa', split='train')[0]" in capsys.readouterr().out


def test_demo_refuses_a_folder_holding_another_data_set(sample_release_file, tmp_path, capsys):
    assert (
        main(
            [
                "convert",
                "--annotations",
                str(sample_release_file),
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "does not replace it" in capsys.readouterr().err
    assert not (tmp_path / "imagery.zarr").exists()

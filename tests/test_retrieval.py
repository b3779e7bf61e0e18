"""Retrieval metrics against a brute-force computation of the documented definitions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from bigearthnet_txt.retrieval import metrics_from_file, retrieval_metrics


def brute_force(text, image, text_patch, image_patch, ks=(1, 5, 10)):
    """Query by query in float64: ties count against the query; images without texts left out."""
    scores = text.astype(np.float64) @ image.astype(np.float64).T
    column = {int(p): j for j, p in enumerate(image_patch)}
    t2i = []
    for i in range(len(text)):
        j = column[int(text_patch[i])]
        t2i.append(sum(1 for q in range(len(image)) if q != j and scores[i, q] >= scores[i, j]))
    i2t = []
    for j, p in enumerate(image_patch):
        mine = [i for i in range(len(text)) if text_patch[i] == p]
        if not mine:
            continue
        top = max(scores[i, j] for i in mine)
        i2t.append(sum(1 for i in range(len(text)) if text_patch[i] != p and scores[i, j] >= top))
    out = {}
    for k in ks:
        out[f"t2i_R@{k}"] = 100.0 * np.mean([r < k for r in t2i])
    for k in ks:
        out[f"i2t_R@{k}"] = 100.0 * np.mean([r < k for r in i2t])
    out["mR"] = float(np.mean(list(out.values())))
    out["texts"], out["images"] = len(text), len(i2t)
    return out


def tied_embeddings(seed, n_text=300, n_image=40, dim=4):
    """Small integer embeddings: exact float32 scores with many ties; some images have no text."""
    rng = np.random.default_rng(seed)
    image_patch = rng.permutation(1000)[:n_image]
    text_patch = rng.choice(image_patch[: n_image - 5], size=n_text)
    text = rng.integers(-1, 2, size=(n_text, dim)).astype(np.float32)
    image = rng.integers(-1, 2, size=(n_image, dim)).astype(np.float32)
    return text, image, text_patch, image_patch


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force_with_ties(seed):
    text, image, text_patch, image_patch = tied_embeddings(seed)
    want = brute_force(text, image, text_patch, image_patch)
    got = retrieval_metrics(text, image, text_patch, image_patch)
    assert got == pytest.approx(want)
    assert got["images"] == len(set(text_patch.tolist())) < len(image)


def test_blocked_equals_unblocked_numpy_and_torch():
    rng = np.random.default_rng(5)
    text = rng.normal(size=(517, 16)).astype(np.float32)
    image = rng.normal(size=(61, 16)).astype(np.float32)
    text_patch = rng.integers(0, 61, size=517)
    whole = retrieval_metrics(text, image, text_patch, block_rows=517)
    for rows in (1, 7, 100):
        assert retrieval_metrics(text, image, text_patch, block_rows=rows) == whole
    assert retrieval_metrics(text, image, text_patch, block_bytes=4096) == whole
    as_torch = retrieval_metrics(torch.from_numpy(text), torch.from_numpy(image),
                                 torch.from_numpy(text_patch), block_rows=13)  # fmt: skip
    assert as_torch == whole
    assert whole == pytest.approx(brute_force(text, image, text_patch, np.arange(61)))
    cosine = retrieval_metrics(text * 3, image, text_patch, normalize=True)
    assert cosine == retrieval_metrics(
        text / np.linalg.norm(text, axis=1, keepdims=True),
        image / np.linalg.norm(image, axis=1, keepdims=True), text_patch,
    )  # fmt: skip


def test_constant_embeddings_do_not_score_perfectly():
    text = np.ones((50, 3), np.float32)
    image = np.ones((10, 3), np.float32)
    got = retrieval_metrics(text, image, np.arange(50) % 10)
    assert got["t2i_R@1"] == 0.0 and got["t2i_R@10"] == 100.0 and got["i2t_R@1"] == 0.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="without an image row"):
        retrieval_metrics(np.ones((2, 3)), np.ones((2, 3)), [0, 7])
    with pytest.raises(ValueError, match="repeats"):
        retrieval_metrics(np.ones((2, 3)), np.ones((2, 3)), [0, 0], [0, 0])


def test_embeddings_file_and_cli(tmp_path):
    text, image, text_patch, image_patch = tied_embeddings(3)
    path = tmp_path / "emb.npz"
    np.savez(path, text=text, image=image, text_patch_index=text_patch,
             image_patch_index=image_patch)  # fmt: skip
    want = brute_force(text, image, text_patch, image_patch)
    assert metrics_from_file(path) == pytest.approx(want)
    out = tmp_path / "m.json"
    done = subprocess.run(
        [sys.executable, "-m", "bigearthnet_txt.conversion.cli", "evaluate", "--embeddings",
         str(path), "--out-json", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "t2i_R@1" in done.stdout
    import json

    assert json.loads(out.read_text()) == pytest.approx(want)
    np.savez(tmp_path / "bad.npz", text=text)
    with pytest.raises(ValueError, match="lacks arrays"):
        metrics_from_file(tmp_path / "bad.npz")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_equals_cpu():
    text, image, text_patch, image_patch = tied_embeddings(4, n_text=2000, n_image=300, dim=8)
    cpu = retrieval_metrics(text, image, text_patch, image_patch, block_rows=128)
    gpu = retrieval_metrics(text, image, text_patch, image_patch, device="cuda", block_rows=128)
    assert gpu == cpu

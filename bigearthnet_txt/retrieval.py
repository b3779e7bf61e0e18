"""Text-image retrieval metrics: Recall@K both ways and their mean (mR), blocked on CPU or GPU.

    from bigearthnet_txt.retrieval import retrieval_metrics
    m = retrieval_metrics(text_emb, image_emb, text_patch_index, image_patch_index)
    m["t2i_R@1"], m["i2t_R@10"], m["mR"]                       # percent

Inputs (NumPy arrays or torch tensors): ``text`` ``[T, D]`` (one row per text), ``image``
``[P, D]`` (one row per patch), ``text_patch`` ``[T]`` int (the ``patch_index`` of each text) and
``image_patch`` ``[P]`` int (the ``patch_index`` of each image row; default ``0 .. P-1``). Scores
are dot products in float32 (``normalize=True`` L2-normalises the rows first: cosine similarity).

* **Text → image**: the query is a text, the one relevant image its patch. Its rank is the number of
  *other* images scoring at least as high as the relevant one (``>=``); hit@K if rank < K.
* **Image → text**: the query is an image with at least one text (images without texts are left
  out); all its texts are relevant. Its rank is the number of irrelevant texts scoring at least as
  high as its best relevant text; hit@K if rank < K.
* **Ties count against the query** (pessimistic): an irrelevant candidate with exactly the relevant
  score ranks ahead of it, so constant embeddings score near zero, never 100 %.
* ``R@K`` is the percentage of queries with a hit; ``mR`` the mean of the six recalls
  (t2i and i2t at K = 1, 5, 10), as in the remote-sensing retrieval papers.

The score matrix ``[T, P]`` is never held whole: texts go through in blocks of ``block_rows`` rows
(default: as many as fit in ``block_bytes``, 256 MiB), twice (ranks of the texts and best relevant
score per image; then the count of irrelevant texts above it per image), so the test split's
≈ 2.4 M texts × 116 k patches runs in bounded memory on a CPU or a GPU (``device``). Block sizes
do not change the result: each block's scores come from the same matmul in both passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_BLOCK_BYTES = 256 << 20


def _tensor(x, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


def _relevant_image(text_patch: torch.Tensor, image_patch: torch.Tensor) -> torch.Tensor:
    """int64 ``[T]``: the image row of each text's patch (error where a patch has no image row)."""
    order = torch.argsort(image_patch)
    sorted_patch = image_patch[order]
    if len(sorted_patch) > 1 and bool((sorted_patch[1:] == sorted_patch[:-1]).any()):
        raise ValueError("image_patch repeats a patch_index; give one image row per patch")
    pos = torch.searchsorted(sorted_patch, text_patch).clamp_max(max(len(sorted_patch) - 1, 0))
    found = (
        sorted_patch[pos] == text_patch
        if len(sorted_patch)
        else torch.zeros_like(text_patch, dtype=torch.bool)
    )
    if not bool(found.all()):
        missing = text_patch[~found][:5].tolist()
        raise ValueError(f"texts refer to patches without an image row, e.g. patch_index {missing}")
    return order[pos]


def retrieval_metrics(
    text,
    image,
    text_patch,
    image_patch=None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    normalize: bool = False,
    device: str | torch.device | None = None,
    block_rows: int | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, float | int]:
    """Recall@K text→image and image→text and mR (percent), see the module docstring.

    Returns ``{"t2i_R@1": …, "t2i_R@5": …, "t2i_R@10": …, "i2t_R@1": …, …, "mR": …,
    "texts": T, "images": images with a text}`` (one entry per ``K`` of ``ks`` and direction).
    """
    if device is None:
        device = text.device if isinstance(text, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    t = _tensor(text, device, torch.float32)
    v = _tensor(image, device, torch.float32)
    if t.dim() != 2 or v.dim() != 2 or t.shape[1] != v.shape[1]:
        raise ValueError(
            f"text [T, D] and image [P, D] needed, got {tuple(t.shape)}, {tuple(v.shape)}"
        )
    tp = _tensor(text_patch, device, torch.int64).reshape(-1)
    if tp.shape[0] != t.shape[0]:
        raise ValueError(f"text_patch has {tp.shape[0]} entries for {t.shape[0]} texts")
    ip = (torch.arange(v.shape[0], device=device) if image_patch is None
          else _tensor(image_patch, device, torch.int64).reshape(-1))  # fmt: skip
    if ip.shape[0] != v.shape[0]:
        raise ValueError(f"image_patch has {ip.shape[0]} entries for {v.shape[0]} images")
    if normalize:
        t = torch.nn.functional.normalize(t, dim=1)
        v = torch.nn.functional.normalize(v, dim=1)
    relevant = _relevant_image(tp, ip)
    n_text, n_image = t.shape[0], v.shape[0]
    rows = block_rows or max(1, block_bytes // (4 * max(n_image, 1) * 2))
    vt = v.T.contiguous()

    # pass 1: rank of every text's image; best relevant score of every image
    t2i_rank = torch.empty(n_text, dtype=torch.int64, device=device)
    best = torch.full((n_image,), -math.inf, dtype=torch.float32, device=device)
    for lo in range(0, n_text, rows):
        hi = min(lo + rows, n_text)
        scores = t[lo:hi] @ vt
        own = scores.gather(1, relevant[lo:hi, None])
        t2i_rank[lo:hi] = (scores >= own).sum(1) - 1
        best.scatter_reduce_(0, relevant[lo:hi], own[:, 0], reduce="amax")
    # pass 2: texts at or above each image's best relevant score, less its relevant ones there
    above = torch.zeros(n_image, dtype=torch.int64, device=device)
    for lo in range(0, n_text, rows):
        hi = min(lo + rows, n_text)
        scores = t[lo:hi] @ vt
        above += (scores >= best[None, :]).sum(0)
        own = scores.gather(1, relevant[lo:hi, None])[:, 0]
        at_best = (own >= best[relevant[lo:hi]]).to(torch.int64)
        above.scatter_add_(0, relevant[lo:hi], -at_best)
    has_text = torch.isfinite(best)
    i2t_rank = above[has_text]

    out: dict[str, float | int] = {}
    for k in ks:
        out[f"t2i_R@{k}"] = 100.0 * float((t2i_rank < k).double().mean()) if n_text else math.nan
    for k in ks:
        hits = (i2t_rank < k).double()
        out[f"i2t_R@{k}"] = 100.0 * float(hits.mean()) if len(i2t_rank) else math.nan
    recalls = [out[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in ks]
    out["mR"] = float(np.mean(recalls))
    out["texts"] = int(n_text)
    out["images"] = int(has_text.sum())
    return out


EMBEDDINGS_ARRAYS = ("text", "image", "text_patch_index")


def load_embeddings(path) -> dict[str, np.ndarray]:
    """An embeddings file: NumPy ``.npz`` with ``text`` float ``[T, D]``, ``image`` float
    ``[P, D]``, ``text_patch_index`` int ``[T]`` and optionally ``image_patch_index`` int ``[P]``
    (default ``0 .. P-1``), ``text_id`` int ``[T]`` (the rows' ``ID``, informative)."""
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in EMBEDDINGS_ARRAYS if k not in data.files]
        if missing:
            raise ValueError(f"{path}: embeddings file lacks arrays {missing} (has {data.files})")
        return {k: data[k] for k in data.files}


def metrics_from_file(path, **kwargs) -> dict[str, float | int]:
    """:func:`retrieval_metrics` of an embeddings file (:func:`load_embeddings`)."""
    arrays = load_embeddings(path)
    return retrieval_metrics(
        arrays["text"], arrays["image"], arrays["text_patch_index"],
        arrays.get("image_patch_index"), **kwargs,
    )  # fmt: skip


def metrics_markdown(metrics: dict[str, float | int]) -> str:
    """The metrics as a Markdown table (one row)."""
    keys = [k for k in metrics if "@" in k] + ["mR"]
    head = "| " + " | ".join(keys) + " | texts | images |\n"
    rule = "|" + "---:|" * (len(keys) + 2) + "\n"
    row = "| " + " | ".join(f"{metrics[k]:.2f}" for k in keys)
    return head + rule + row + f" | {metrics['texts']} | {metrics['images']} |\n"

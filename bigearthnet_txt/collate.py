"""``Collator``: examples (dicts, as the loaders yield them) → a training batch of tensors.

    ds = load_dataset(DIR, "all", split="train", imagery=())       # text rows with patch_index
    collator = Collator(DIR, bands="S1S2-10m20m", resample="nearest", augment=Augmenter(seed=0))
    loader = DataLoader(ds, batch_size=256, num_workers=2, collate_fn=collator,
                        pin_memory=torch.cuda.is_available())
    for batch in loader:
        batch = collator.to_device(batch, device)     # any torch device: "cpu", "cuda", "mps"

One call reads the imagery of the whole batch in one ``ImageryStore.read`` (rows sorted and
deduplicated, each shard visited once), applies each example's augmentation to the native arrays,
its boxes, points and texts (``bigearthnet_txt.augment``), tokenises, and returns (``B`` examples):

    image                   float32 [B, C, S, S]  every band of ``bands`` in its order (official
                                     presets: the official order), resampled to ``S = img_size``
                                     (120) and normalised; S1 channels 0 where S1 is missing
                            (``stacked=False``: ``s2`` [B, C2, S, S] and ``s1`` [B, C1, S, S])
    has_s1                  bool    [B]  the patch has S1 (always present; with no S1 band selected
                                     it comes from the patch table, or the examples' ``s1``)
    prompt_input_ids        int64   [B, Lp]   ``input`` tokens, padded on ``prompt_padding_side``
    prompt_attention_mask   int64   [B, Lp]
    target_input_ids        int64   [B, Lt]   ``output`` tokens (+ end-of-text id), padded right
    target_attention_mask   int64   [B, Lt]
    answer_index            int64   [B]  mcq 0-3, else -1;   answer_index_mask  bool [B]
    answer_bool             bool    [B]  binary, else False; answer_bool_mask   bool [B]
    box                     float32 [B, 4]  x1 y1 x2 y2, else 0; box_mask   bool [B]
    point                   float32 [B, 2]  x y, else 0;         point_mask bool [B]
    redundancy_weight       float32 [B]  (1 where absent)
    group_index             int64   [B]  0..G-1, one redundancy group within the batch: a patch, or
                                     a (patch, type) pair for tables converted with
                                     ``group_key="patch_type"`` (their weights sum to 1 per pair)
    patch_index             int64   [B]
    ID                      int64   [B]
    transform               int64   [B, 3]  hflip, vflip, rot90 applied to each example

With ``device_transform=True`` the CPU side stops before resampling: the batch then carries the
selected native channels, not yet flipped or rotated (``s2_10m`` uint16 [B, c, 120, 120],
``s2_20m`` [B, c, 60, 60], ``s2_60m`` [B, c, 20, 20], ``s1`` float32 [B, 2, 120, 120]), and
:meth:`Collator.to_device` produces ``image`` (or ``s2``/``s1``) and ``has_s1`` on the device,
then applies each row's ``transform`` to them (boxes, points and texts are already transformed on
the CPU).
``Collator(None, stats=store.stats)`` takes the native arrays from the examples instead (e.g. a
``load_dataset`` with imagery, whose batched ``__getitems__`` reads a DataLoader batch in one pass).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from bigearthnet_txt.augment import IDENTITY, Augmenter, Transform, transform_example
from bigearthnet_txt.image_tensors import (
    RESAMPLING_MODES,
    BandLayout,
    ImageTransform,
    resolve_stats,
)
from bigearthnet_txt.schema import DATA_DIR, STORE_ATTRS_KEY
from bigearthnet_txt.store import ImageryStore
from bigearthnet_txt.tag_tokens import replace_tags, tag_pair
from bigearthnet_txt.tokenize import TextTokenizer, pad_sequences


class Collator:
    """Picklable ``collate_fn`` (see the module docstring for the batch it returns).

    Parameters: ``store`` an ``ImageryStore`` or its folder (``None``: imagery from the examples);
    ``bands`` a ``BAND_PRESETS`` name or band list; ``stacked`` one ``image`` tensor in the bands'
    order (the official loader's ``image_input``), else ``s2`` and ``s1``; ``img_size`` the side
    of the image tensors (default 120, as the official ``img_size``); ``resample``
    ``nearest``/``bilinear``/``bicubic`` (as the official ``upsample_mode``); ``normalize`` with
    the store's train statistics, or ``stats`` (a ``{band: {"mean", "std"}}`` mapping, or
    ``"official"`` for the official loader's published table);
    ``point_token``/``ref_token`` replace the prompt's ``<point>``/``<ref>`` tags as the official
    loader does (after augmentation; ``None`` keeps the tags);
    ``tokenizer`` a ``TextTokenizer``, tiktoken encoding name or ``str -> list[int]`` callable
    (``None``: no token tensors); ``max_prompt_length``/``max_target_length`` truncate;
    ``augment`` an ``Augmenter`` (``None``: no augmentation; its default ``key="patch"`` gives the
    rows of one patch, one ``group_index`` group, the same transform); ``device_transform`` defers
    resampling and normalisation to :meth:`to_device`; ``keep_text`` adds the (augmented) ``prompt``
    and ``target`` strings as lists; ``group_key`` ``"patch"``/``"patch_type"`` how
    ``group_index`` groups rows (``None``: the redundancy group key recorded in the annotation
    tables under the store's folder, else ``"patch"``).
    """

    def __init__(
        self,
        store: ImageryStore | str | None,
        *,
        bands: str | Sequence[str] = "S1S2-10m20m",
        stacked: bool = True,
        img_size: int = 120,
        resample: str = "nearest",
        normalize: bool = True,
        stats: str | Mapping[str, Mapping[str, float]] | None = None,
        point_token: Sequence[str] | None = None,
        ref_token: Sequence[str] | None = None,
        tokenizer: TextTokenizer | str | object | None = "cl100k_base",
        prompt_field: str = "input",
        target_field: str = "output",
        max_prompt_length: int | None = None,
        max_target_length: int | None = None,
        prompt_padding_side: str = "left",
        append_eos: bool = True,
        augment: Augmenter | None = None,
        device_transform: bool = False,
        keep_text: bool = False,
        group_key: str | None = None,
    ):
        self.store = ImageryStore(store) if isinstance(store, str | os.PathLike) else store
        self.layout = BandLayout.of(bands, stacked=stacked)
        if resample not in RESAMPLING_MODES:
            raise ValueError(f"resample must be one of {RESAMPLING_MODES}, got {resample!r}")
        self.resample = resample
        self.img_size = int(img_size)
        self.normalize = normalize
        self._exact = isinstance(stats, str)  # the official table: Normalize's exact arithmetic
        stats = resolve_stats(stats)
        self._stats = dict(stats) if stats is not None else None
        self.point_token = None if point_token is None else tag_pair(point_token, "point_token")
        self.ref_token = None if ref_token is None else tag_pair(ref_token, "ref_token")
        if tokenizer is not None and not isinstance(tokenizer, TextTokenizer):
            tokenizer = TextTokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.prompt_field, self.target_field = prompt_field, target_field
        self.max_prompt_length, self.max_target_length = max_prompt_length, max_target_length
        self.prompt_padding_side = prompt_padding_side
        self.append_eos = append_eos
        self.augment = augment
        self.device_transform = device_transform
        self.keep_text = keep_text
        if group_key is None:
            group_key = table_group_key(self.store.root) if self.store is not None else "patch"
        if group_key not in GROUP_KEYS:
            raise ValueError(f"group_key must be one of {GROUP_KEYS}, got {group_key!r}")
        self.group_key = group_key
        self._image_transform: ImageTransform | None = None
        self._patch_has_s1: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_image_transform"] = None
        state["_patch_has_s1"] = None
        return state

    @property
    def image_transform(self) -> ImageTransform:
        """Native arrays → ``s2``/``s1`` tensors on whatever device they are (built lazily)."""
        if self._image_transform is None:
            stats = self._stats
            if stats is None and self.normalize:
                if self.store is None:
                    raise ValueError("normalize=True without a store needs stats=")
                stats = self.store.stats
            self._image_transform = ImageTransform(
                self.layout, stats or {}, resample=self.resample, normalize=self.normalize,
                size=self.img_size, exact=self._exact,
            )  # fmt: skip
        return self._image_transform

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws for a new epoch (call before iterating the loader; with
        ``persistent_workers=True`` the workers keep the epoch they started with)."""
        if self.augment is not None:
            self.augment.set_epoch(epoch)

    # -- the batch --------------------------------------------------------------------------------

    def __call__(self, examples: Sequence[Mapping]) -> dict:
        return self.collate(examples, self.read_native(examples))

    def collate(self, examples: Sequence[Mapping], native: dict[str, np.ndarray]) -> dict:
        """The batch from the examples and their already read native arrays (``read_native``;
        augmentation rewrites those arrays in place)."""
        transforms = (
            self.augment.sample_batch(examples) if self.augment else [IDENTITY] * len(examples)
        )
        examples = [transform_example(ex, t) for ex, t in zip(examples, transforms, strict=True)]
        if self.point_token is not None or self.ref_token is not None:
            examples = [self.replace_tags(ex) for ex in examples]
        batch: dict = {}
        if not self.device_transform and any(not t.is_identity for t in transforms):
            native = {k: v if v.flags.writeable else np.array(v) for k, v in native.items()}
            apply_transforms(native, transforms)
        native_tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in native.items()}
        if self.device_transform:
            batch.update(native_tensors)
        else:
            batch.update(self.image_transform(native_tensors))
        if not self.layout.s1:
            batch["has_s1"] = self.has_s1(examples)
        if self.tokenizer is not None:
            batch.update(self.tokens(examples))
        batch.update(label_tensors(examples, self.group_key))
        batch["transform"] = torch.tensor(
            [[t.hflip, t.vflip, t.rot90 % 4] for t in transforms], dtype=torch.int64
        ).reshape(len(examples), 3)
        if self.keep_text:
            batch["prompt"] = [ex[self.prompt_field] for ex in examples]
            batch["target"] = [ex[self.target_field] for ex in examples]
        return batch

    def replace_tags(self, example: Mapping) -> dict:
        """A copy of ``example`` whose prompt has its tags replaced (official ``point_token`` and
        ``ref_token``; a kind whose token is ``None`` keeps its tags)."""
        out = dict(example)
        text = out[self.prompt_field]
        if self.ref_token is not None:
            text = replace_tags(text, point_token=("<point>", "</point>"), ref_token=self.ref_token)
        if self.point_token is not None:
            text = replace_tags(text, point_token=self.point_token, ref_token=("<ref>", "</ref>"))
        out[self.prompt_field] = text
        return out

    def read_native(self, examples: Sequence[Mapping]) -> dict[str, np.ndarray]:
        """The used channels of the batch's native arrays, ``{array: [B, c, n, n]}``: one batched
        store read (or the arrays the examples carry, stacked)."""
        if self.store is None:
            arrays = {
                name: np.stack([np.asarray(ex[name]) for ex in examples])
                for name in self.layout.arrays
            }
        else:
            indices = [ex["patch_index"] for ex in examples]
            if any(i is None for i in indices):
                raise ValueError(
                    "an example has no patch_index (its patch has no imagery in the store)"
                )
            arrays = self.store.read(np.asarray(indices, dtype=np.int64), arrays=self.layout.arrays)
        return self.layout.select(arrays)

    def has_s1(self, examples: Sequence[Mapping]) -> torch.Tensor:
        """bool ``[B]``: whether each example's patch has S1, where no S1 band is read: the store's
        patch table, else the examples' ``s1`` arrays (not all NaN) or ``has_s1`` values."""
        if self.store is not None:
            if self._patch_has_s1 is None:
                patches = self.store.patches
                index = patches.column("patch_index").to_numpy(zero_copy_only=False)
                flags = np.zeros(int(index.max()) + 1 if len(index) else 0, dtype=bool)
                flags[index] = patches.column("has_s1").to_numpy(zero_copy_only=False)
                self._patch_has_s1 = flags
            indices = np.asarray([ex["patch_index"] for ex in examples], dtype=np.int64)
            return torch.from_numpy(self._patch_has_s1[indices])
        flags = []
        for ex in examples:
            if ex.get("s1") is not None:
                flags.append(bool(np.isfinite(np.asarray(ex["s1"])).any()))
            elif ex.get("has_s1") is not None:
                flags.append(bool(ex["has_s1"]))
            else:
                raise ValueError("without a store, has_s1 needs the examples' s1 arrays or has_s1")
        return torch.tensor(flags, dtype=torch.bool)

    def tokens(self, examples: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        """Padded prompt and target token tensors."""
        tok = self.tokenizer
        prompts = tok.encode_batch([ex[self.prompt_field] for ex in examples])
        targets = tok.encode_batch([ex[self.target_field] for ex in examples])
        if self.append_eos and tok.eos_id is not None:
            targets = [t + [tok.eos_id] for t in targets]
        p = pad_sequences(
            prompts,
            pad_id=tok.pad_id,
            side=self.prompt_padding_side,
            max_length=self.max_prompt_length,
            truncate="left",
        )
        t = pad_sequences(
            targets, pad_id=tok.pad_id, side="right", max_length=self.max_target_length
        )
        return {
            "prompt_input_ids": p["input_ids"],
            "prompt_attention_mask": p["attention_mask"],
            "target_input_ids": t["input_ids"],
            "target_attention_mask": t["attention_mask"],
        }

    # -- device -----------------------------------------------------------------------------------

    def to_device(self, batch: Mapping, device: torch.device | str) -> dict:
        """Move every tensor to ``device`` (any torch device: ``"cpu"``, ``"cuda"``, ``"mps"``;
        ``non_blocking`` from pinned memory) and, for a ``device_transform`` batch, resample and
        normalise the imagery there."""
        out = {
            k: v.to(device, non_blocking=v.is_pinned()) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }
        if not self.device_transform:
            return out
        native = {k: out.pop(k) for k in self.layout.arrays if k in out}
        if native:
            images = self.image_transform(native)
            transforms = [Transform(*row) for row in batch["transform"].tolist()]
            apply_transforms(images, transforms, keys=("image", "s2", "s1"))
            out.update(images)
        return out

    def __repr__(self) -> str:
        return (
            f"Collator({self.store!r}, bands={self.layout.bands}, stacked={self.layout.stacked}, "
            f"resample={self.resample!r}, augment={self.augment!r}, "
            f"device_transform={self.device_transform})"
        )


def apply_transforms(
    images: dict, transforms: Sequence[Transform], keys: Sequence[str] | None = None
) -> None:
    """Apply each example's transform to its rows of the ``[B, ..., H, W]`` arrays or tensors
    ``images[k]`` (``k`` in ``keys``, default all), in place: one vectorised pass per distinct
    transform."""
    canonical = [t.canonical() for t in transforms]
    names = [k for k in (keys if keys is not None else images) if k in images]
    for transform in set(canonical):
        if transform.is_identity:
            continue
        rows = [i for i, t in enumerate(canonical) if t == transform]
        for name in names:
            values = images[name]
            index = (
                np.array(rows)
                if isinstance(values, np.ndarray)
                else torch.tensor(rows, device=values.device)
            )
            values[index] = transform.apply_image(values[index])


GROUP_KEYS = ("patch", "patch_type")


def table_group_key(root: Path | str) -> str:
    """The redundancy group key the annotation tables under ``root`` were converted with (schema
    metadata ``bigearthnet_txt`` → ``redundancy`` → ``group_key``); ``"patch"`` where there are
    no tables or no such entry."""
    first = next(iter(sorted((Path(root) / DATA_DIR).rglob("*.parquet"))), None)
    if first is None:
        return "patch"
    metadata = pq.read_schema(first).metadata or {}
    attrs = json.loads(metadata.get(STORE_ATTRS_KEY.encode(), b"{}"))
    return attrs.get("redundancy", {}).get("group_key", "patch")


def _column(examples: Sequence[Mapping], name: str) -> list:
    return [ex.get(name) for ex in examples]


def label_tensors(examples: Sequence[Mapping], group_key: str = "patch") -> dict[str, torch.Tensor]:
    """Answers, boxes, points (with masks), redundancy weights, groups (by patch, or by patch and
    ``type`` for ``group_key="patch_type"``) and ids."""
    n = len(examples)
    answer_index = _column(examples, "answer_index")
    answer_bool = _column(examples, "answer_bool")
    boxes = _column(examples, "box")
    points = _column(examples, "point")
    box = np.zeros((n, 4), dtype=np.float32)
    point = np.zeros((n, 2), dtype=np.float32)
    for i, (b, p) in enumerate(zip(boxes, points, strict=True)):
        if b is not None:
            box[i] = b
        if p is not None:
            point[i] = p
    weights = [1.0 if w is None else float(w) for w in _column(examples, "redundancy_weight")]
    patch_index = [-1 if p is None else int(p) for p in _column(examples, "patch_index")]
    group_keys = [
        ex.get("patch_id") if ex.get("patch_index") is None else int(ex["patch_index"])
        for ex in examples
    ]
    if group_key == "patch_type":
        group_keys = [(k, ex.get("type")) for k, ex in zip(group_keys, examples, strict=True)]
    first_seen: dict = {}
    group_index = [first_seen.setdefault(k, len(first_seen)) for k in group_keys]
    return {
        "answer_index": torch.tensor(
            [-1 if a is None else int(a) for a in answer_index], dtype=torch.int64
        ),
        "answer_index_mask": torch.tensor([a is not None for a in answer_index], dtype=torch.bool),
        "answer_bool": torch.tensor([bool(a) for a in answer_bool], dtype=torch.bool),
        "answer_bool_mask": torch.tensor([a is not None for a in answer_bool], dtype=torch.bool),
        "box": torch.from_numpy(box),
        "box_mask": torch.tensor([b is not None for b in boxes], dtype=torch.bool),
        "point": torch.from_numpy(point),
        "point_mask": torch.tensor([p is not None for p in points], dtype=torch.bool),
        "redundancy_weight": torch.tensor(weights, dtype=torch.float32),
        "group_index": torch.tensor(group_index, dtype=torch.int64),
        "patch_index": torch.tensor(patch_index, dtype=torch.int64),
        "ID": torch.tensor([int(i) for i in _column(examples, "ID")], dtype=torch.int64),
    }

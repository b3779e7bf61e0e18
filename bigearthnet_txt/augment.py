"""Geometry-correct augmentation: flips and 90° rotations of the imagery, the boxes, the points and
the direction words of a sample, all together.

Coordinates are normalised to [0, 1] with the origin at the top-left and y pointing down (SPEC §1);
image arrays are ``[..., H, W]`` (row = y, column = x), any resolution, NumPy or torch. A
:class:`Transform` is a horizontal flip, then a vertical flip, then ``rot90`` counter-clockwise
quarter turns (``torch.rot90(x, k, dims=(-2, -1))``)::

    hflip   x' = 1 - x              vflip   y' = 1 - y
    rot90   x' = y,  y' = 1 - x     (top → left → bottom → right → top)

Boxes ``(x1, y1, x2, y2)`` are mapped corner by corner and re-ordered so that x1 ≤ x2, y1 ≤ y2.

Direction rule (applied to ``input``, ``output``, ``options`` and ``ref``):

* Rewritten: the image-position phrases of the release's ``relative pos`` vocabulary, ``top``,
  ``bottom``, ``left``, ``right`` and ``top``/``bottom`` + ``left``/``right`` (``top left``,
  ``bottom-right`` …), and ``upper``/``lower`` only directly before ``left``/``right``/``part``/
  ``half``/``corner``/``side`` (``upper-right``, ``the lower part``). Each phrase is mapped with
  the transform, keeping its wording style, case and separator: ``top left`` becomes ``top right``
  under hflip and ``bottom left`` under rot90 (a lone ``left``/``right`` turned vertical is written
  ``top``/``bottom``). The MCQ answer letter therefore stays correct.
* Not augmented: a sample with any other direction-like word in any of its texts
  (``UNREWRITABLE_WORDS``: ``up``/``down``, ``upper``/``lower``/``higher``/``lowest`` outside the
  phrases above, as in "lower than", ``above``/``below``/``beneath``, compass words
  ``north`` … ``south-west``, which may describe geography rather than the image,
  ``horizontal``/``vertical``/``diagonal``, ``-most`` forms, ``clockwise`` …):
  :meth:`Augmenter.sample_for` returns the identity transform for it.

Sampling is reproducible: a transform depends only on ``(seed, epoch, key)`` (bits of a BLAKE2b
hash of the three), never on worker assignment. ``key`` is the patch by default, so all texts of
one patch in an epoch see the same image transform; within a batch, a patch with any
unaugmentable row is left unaugmented for all its rows (:meth:`Augmenter.sample_batch`), so that
is the only way batch composition matters. ``Augmenter(key="ID")`` keys per row instead.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from bigearthnet_txt.annotations import (
    POINT_PATTERN,
    parse_box,
    render_box,
    render_point,
)

_VERTICAL = {"top": -1, "bottom": 1, "upper": -1, "lower": 1}
_VERTICAL_STYLE = {
    "top": ("top", "bottom"),
    "bottom": ("top", "bottom"),
    "upper": ("upper", "lower"),
    "lower": ("upper", "lower"),
}
_HORIZONTAL = {"left": -1, "right": 1}
DIRECTION_PATTERN = re.compile(
    r"\b(?:"
    r"(?:(?P<v>top|bottom)|(?P<u>upper|lower)(?=[ -](?:left|right|part|half|corner|side)s?\b))"
    r"(?:(?P<sep>[ -])(?P<h1>left|right)\b)?"
    r"|(?P<h>left|right)"
    r")\b",
    re.IGNORECASE,
)
UNREWRITABLE_WORDS: frozenset[str] = frozenset(
    [
        "north",
        "south",
        "east",
        "west",
        "northern",
        "southern",
        "eastern",
        "western",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
        "northeastern",
        "northwestern",
        "southeastern",
        "southwestern",
        "northward",
        "southward",
        "eastward",
        "westward",
        "northwards",
        "southwards",
        "eastwards",
        "westwards",
        "northerly",
        "southerly",
        "easterly",
        "westerly",
        "up",
        "down",
        "upper",
        "lower",
        "higher",
        "highest",
        "lowest",
        "upward",
        "upwards",
        "downward",
        "downwards",
        "uphill",
        "downhill",
        "upstream",
        "downstream",
        "above",
        "below",
        "beneath",
        "underneath",
        "horizontal",
        "horizontally",
        "vertical",
        "vertically",
        "diagonal",
        "diagonally",
        "leftmost",
        "rightmost",
        "topmost",
        "bottommost",
        "uppermost",
        "lowermost",
        "northernmost",
        "southernmost",
        "easternmost",
        "westernmost",
        "upmost",
        "clockwise",
        "counterclockwise",
        "anticlockwise",
    ]
)
DIRECTION_WORDS: frozenset[str] = frozenset(("top", "bottom", "upper", "lower", "left", "right"))
_WORD_RE = re.compile(r"[a-z]+")


def words_of(text: str) -> set[str]:
    """The lower-case letter runs of ``text`` (``north-east`` → ``north``, ``east``)."""
    return set(_WORD_RE.findall(text.lower()))


_POINT_RE = re.compile(POINT_PATTERN)
TEXT_FIELDS: tuple[str, ...] = ("input", "output", "ref")


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word.capitalize() if like[:1].isupper() else word


@dataclass(frozen=True)
class Transform:
    """An element of the symmetry group of the square: ``hflip``, then ``vflip``, then ``rot90``
    counter-clockwise quarter turns (0-3)."""

    hflip: bool = False
    vflip: bool = False
    rot90: int = 0

    @property
    def is_identity(self) -> bool:
        return self.hflip == self.vflip and (self.rot90 + 2 * self.vflip) % 4 == 0

    def canonical(self) -> Transform:
        """The same map written without ``vflip`` (vflip = hflip followed by two quarter turns)."""
        return Transform(self.hflip != self.vflip, False, (self.rot90 + 2 * self.vflip) % 4)

    # -- geometry ---------------------------------------------------------------------------------

    def apply_image(self, image):
        """The transformed ``[..., H, W]`` NumPy array (a view) or torch tensor."""
        if hasattr(image, "flip") and not isinstance(image, np.ndarray):
            import torch

            if self.hflip:
                image = image.flip(-1)
            if self.vflip:
                image = image.flip(-2)
            return torch.rot90(image, self.rot90 % 4, dims=(-2, -1)) if self.rot90 % 4 else image
        if self.hflip:
            image = image[..., ::-1]
        if self.vflip:
            image = image[..., ::-1, :]
        return np.rot90(image, self.rot90 % 4, axes=(-2, -1)) if self.rot90 % 4 else image

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """float ``[..., 2]`` ``(x, y)`` points → transformed points (same shape, float64)."""
        p = np.asarray(points, dtype=np.float64)
        x, y = p[..., 0], p[..., 1]
        if self.hflip:
            x = 1.0 - x
        if self.vflip:
            y = 1.0 - y
        for _ in range(self.rot90 % 4):
            x, y = y, 1.0 - x
        return np.stack([x, y], axis=-1)

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """float ``[..., 4]`` ``(x1, y1, x2, y2)`` boxes → transformed boxes with x1 ≤ x2,
        y1 ≤ y2."""
        b = np.asarray(boxes, dtype=np.float64)
        a = self.apply_points(b[..., 0:2])
        c = self.apply_points(b[..., 2:4])
        return np.concatenate([np.minimum(a, c), np.maximum(a, c)], axis=-1)

    def apply_direction(self, dx: int, dy: int) -> tuple[int, int]:
        """A direction as signs ``(dx, dy)`` (right = +x, down = +y) after the transform."""
        if self.hflip:
            dx = -dx
        if self.vflip:
            dy = -dy
        for _ in range(self.rot90 % 4):
            dx, dy = dy, -dx
        return dx, dy

    # -- text -------------------------------------------------------------------------------------

    def apply_text(self, text: str) -> str:
        """``text`` with its image-direction phrases and ``<point>`` tags transformed.

        Results are cached per (transform, text): the release's texts are templated and repeat.
        """
        if self.is_identity:
            return text
        return _transformed_text(self, text)

    def _apply_text(self, text: str) -> str:
        if not DIRECTION_WORDS.isdisjoint(words_of(text)):
            text = DIRECTION_PATTERN.sub(self._rewrite_direction, text)
        return _POINT_RE.sub(self._rewrite_point, text) if "<point>" in text else text

    def _rewrite_direction(self, m: re.Match) -> str:
        v_word, h_word = m["v"] or m["u"], m["h1"] or m["h"]
        dy = _VERTICAL[v_word.lower()] if v_word else 0
        dx = _HORIZONTAL[h_word.lower()] if h_word else 0
        ndx, ndy = self.apply_direction(dx, dy)
        style = _VERTICAL_STYLE[v_word.lower()] if v_word else ("top", "bottom")
        words = []
        if ndy:
            words.append(style[0] if ndy < 0 else style[1])
        if ndx:
            words.append("left" if ndx < 0 else "right")
        originals = [w for w in (v_word, h_word) if w]
        cased = [_match_case(w, originals[min(i, len(originals) - 1)]) for i, w in enumerate(words)]
        return (m["sep"] or " ").join(cased)

    def _rewrite_point(self, m: re.Match) -> str:
        x, y = self.apply_points(np.array([float(m["x"]), float(m["y"])]))
        return render_point((_clean(x), _clean(y)))

    def apply_box_text(self, text: str) -> str:
        """A ``"[x1 y1, x2 y2]"`` answer transformed (other texts: direction rewriting); cached."""
        if self.is_identity:
            return text
        return _transformed_answer(self, text)

    def _apply_box_text(self, text: str) -> str:
        try:
            box = parse_box(text)
        except ValueError:
            return self.apply_text(text)
        return render_box(tuple(_clean(v) for v in self.apply_boxes(np.array(box))))


def _clean(value: float) -> float:
    """Round away float noise (``1 - 0.64``) so rendered coordinates keep the release's grid."""
    return round(float(value), 6)


IDENTITY = Transform()
ALL_TRANSFORMS: tuple[Transform, ...] = tuple(
    Transform(h, False, k) for h in (False, True) for k in range(4)
)


def texts_of(example: Mapping) -> Iterable[str]:
    for name in TEXT_FIELDS:
        value = example.get(name)
        if isinstance(value, str):
            yield value
    yield from (o for o in example.get("options") or () if isinstance(o, str))


@functools.lru_cache(maxsize=1 << 17)
def _transformed_text(transform: Transform, text: str) -> str:
    return transform._apply_text(text)


@functools.lru_cache(maxsize=1 << 17)
def _transformed_answer(transform: Transform, text: str) -> str:
    return transform._apply_box_text(text)


@functools.lru_cache(maxsize=1 << 17)
def text_can_augment(text: str) -> bool:
    """False when ``text`` holds a direction-like word (``UNREWRITABLE_WORDS``) outside the
    image-position phrases that :data:`DIRECTION_PATTERN` rewrites (cached per text)."""
    return UNREWRITABLE_WORDS.isdisjoint(words_of(DIRECTION_PATTERN.sub(" ", text)))


def can_augment(example: Mapping) -> bool:
    """Whether every text of the example can follow a flip or rotation
    (:func:`text_can_augment`)."""
    return all(text_can_augment(t) for t in texts_of(example))


def transform_example(example: Mapping, transform: Transform) -> dict:
    """A copy of ``example`` with ``box``, ``point`` and the texts transformed
    (images untouched)."""
    out = dict(example)
    if transform.is_identity:
        return out
    for name in ("input", "ref"):
        if isinstance(out.get(name), str):
            out[name] = transform.apply_text(out[name])
    if isinstance(out.get("output"), str):
        out["output"] = transform.apply_box_text(out["output"])
    if out.get("options") is not None:
        out["options"] = [transform.apply_text(o) for o in out["options"]]
    if out.get("box") is not None:
        out["box"] = list(_transformed_coordinates(transform, tuple(out["box"]), True))
    if out.get("point") is not None:
        out["point"] = list(_transformed_coordinates(transform, tuple(out["point"]), False))
    return out


@functools.lru_cache(maxsize=1 << 17)
def _transformed_coordinates(transform: Transform, values: tuple, box: bool) -> tuple[float, ...]:
    """A box ``(x1, y1, x2, y2)`` or point ``(x, y)`` transformed (cached: coordinates are on the
    release's 0.01 grid and repeat)."""
    apply = transform.apply_boxes if box else transform.apply_points
    return tuple(_clean(v) for v in apply(np.array(values)))


KEYS = ("patch", "ID")


class Augmenter:
    """Seeded sampler of :class:`Transform`\\ s (picklable).

    ``hflip``/``vflip``: each drawn with probability 0.5 when enabled; ``rot90``: 0-3 quarter turns
    uniformly when enabled. ``set_epoch(e)`` changes the draws per epoch.

    ``key="patch"`` (the default) draws one transform per patch and epoch, keyed by the example's
    ``patch_index`` (its ``patch_id`` where it has none): every text of a patch describes the same
    image, so the rows of one patch in a batch (one ``group_index`` group) share one transform.
    ``key="ID"`` draws per row ``ID`` instead.
    """

    def __init__(
        self,
        *,
        hflip: bool = True,
        vflip: bool = True,
        rot90: bool = True,
        seed: int = 0,
        key: str = "patch",
    ):
        if key not in KEYS:
            raise ValueError(f"key must be one of {KEYS}, got {key!r}")
        self.hflip, self.vflip, self.rot90 = hflip, vflip, rot90
        self.seed = int(seed)
        self.key = key
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def key_of(self, example: Mapping) -> int | str:
        """The value the example's transform is keyed by (``patch_index``/``patch_id``
        or ``ID``)."""
        if self.key == "ID":
            return int(example["ID"])
        index = example.get("patch_index")
        return int(index) if index is not None else str(example["patch_id"])

    def sample(self, key: int | str) -> Transform:
        """The transform drawn for this key, whatever the example's text."""
        digest = hashlib.blake2b(
            f"{self.seed}:{self.epoch}:{key}".encode(), digest_size=1
        ).digest()[0]
        return Transform(
            hflip=self.hflip and bool(digest & 1),
            vflip=self.vflip and bool(digest & 2),
            rot90=(digest >> 2) % 4 if self.rot90 else 0,
        )

    def sample_for(self, example: Mapping) -> Transform:
        """The transform for ``example`` alone: identity where the direction rule says so."""
        if not can_augment(example):
            return IDENTITY
        return self.sample(self.key_of(example))

    def sample_batch(self, examples: Iterable[Mapping]) -> list[Transform]:
        """One transform per example of a batch. With ``key="patch"`` the rows of one patch get the
        same transform, and the identity if any of them cannot be augmented."""
        examples = list(examples)
        keys = [self.key_of(ex) for ex in examples]
        augmentable = [can_augment(ex) for ex in examples]
        if self.key == "patch":
            blocked = {k for k, ok in zip(keys, augmentable, strict=True) if not ok}
            augmentable = [k not in blocked for k in keys]
        return [self.sample(k) if ok else IDENTITY for k, ok in zip(keys, augmentable, strict=True)]

    def __repr__(self) -> str:
        return (
            f"Augmenter(hflip={self.hflip}, vflip={self.vflip}, rot90={self.rot90}, "
            f"seed={self.seed}, key={self.key!r})"
        )

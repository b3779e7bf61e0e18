"""Flips and rotations move images, boxes, points and direction words together; seeded sampling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigearthnet_txt.annotations import parse_box, parse_point, render_box, render_point
from bigearthnet_txt.augment import (
    ALL_TRANSFORMS,
    IDENTITY,
    Augmenter,
    Transform,
    can_augment,
    transform_example,
)

SIZE = 120
EVERY_TRANSFORM = tuple(
    Transform(h, v, k) for h in (False, True) for v in (False, True) for k in range(4)
)
transforms = st.sampled_from(EVERY_TRANSFORM)
grid = st.integers(0, 100)


@st.composite
def grid_boxes(draw):
    """Boxes on the release's 0.01 grid (no pixel centre of a 120 grid lies on a box edge)."""
    x1, x2 = sorted((draw(grid), draw(grid)))
    y1, y2 = sorted((draw(grid), draw(grid)))
    return np.array([x1, y1, x2, y2], dtype=np.float64) / 100


def paint_box(box: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Boolean [size, size] image: the pixels whose centres lie inside ``box``."""
    centres = (np.arange(size) + 0.5) / size
    cols = (centres >= box[0]) & (centres <= box[2])
    rows = (centres >= box[1]) & (centres <= box[3])
    return rows[:, None] & cols[None, :]


def test_the_eight_transforms_are_distinct_and_canonical_forms_agree():
    probe = np.arange(9).reshape(3, 3)
    images = {t.apply_image(probe).tobytes() for t in ALL_TRANSFORMS}
    assert len(images) == 8
    for h in (False, True):
        for v in (False, True):
            for k in range(4):
                t = Transform(h, v, k)
                assert np.array_equal(t.apply_image(probe), t.canonical().apply_image(probe))


@settings(max_examples=150, deadline=None)
@given(grid_boxes(), transforms, st.integers(0, 2**32 - 1))
def test_augmented_box_frames_the_same_pixels(box, transform, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 1000, (3, SIZE, SIZE))
    painted = image.copy()
    painted[:, paint_box(box)] = -1
    example = {"ID": 1, "input": "Where?", "output": render_box(tuple(box)), "box": list(box)}
    out = transform_example(example, transform)
    new_box = np.array(out["box"])
    assert parse_box(out["output"]) == tuple(out["box"])
    assert new_box[0] <= new_box[2] and new_box[1] <= new_box[3]
    assert np.all((new_box >= 0) & (new_box <= 1))
    moved = transform.apply_image(painted)
    assert np.array_equal(moved == -1, np.broadcast_to(paint_box(new_box), moved.shape))
    assert np.array_equal(
        np.where(moved == -1, 0, moved), np.where(moved == -1, 0, transform.apply_image(image))
    )


@settings(max_examples=150, deadline=None)
@given(st.integers(0, SIZE - 1), st.integers(0, SIZE - 1), transforms)
def test_augmented_point_stays_on_its_pixel(col, row, transform):
    image = np.zeros((SIZE, SIZE), dtype=np.int64)
    image[row, col] = 1
    point = ((col + 0.5) / SIZE, (row + 0.5) / SIZE)
    example = {
        "ID": 1,
        "input": f"What is at {render_point(point)}?",
        "output": "x",
        "point": point,
    }
    out = transform_example(example, transform)
    x, y = out["point"]
    assert parse_point(out["input"]) == (x, y)
    moved = transform.apply_image(image)
    assert moved[int(y * SIZE), int(x * SIZE)] == 1


@settings(max_examples=60, deadline=None)
@given(transforms, st.integers(0, 2**32 - 1))
def test_all_resolutions_move_consistently(transform, seed):
    """Transforming a 60×60 or 20×20 band then upsampling equals upsampling then transforming."""
    rng = np.random.default_rng(seed)
    for size in (20, 60):
        band = rng.integers(0, 10000, (2, size, size)).astype(np.uint16)
        factor = SIZE // size
        up = band.repeat(factor, -2).repeat(factor, -1)
        moved = transform.apply_image(band).repeat(factor, -2).repeat(factor, -1)
        assert np.array_equal(moved, transform.apply_image(up))


@settings(max_examples=40, deadline=None)
@given(transforms, st.integers(0, 2**32 - 1))
def test_torch_and_numpy_images_agree(transform, seed):
    image = np.random.default_rng(seed).random((2, 3, 12, 12)).astype(np.float32)
    assert np.array_equal(
        transform.apply_image(torch.from_numpy(image)).numpy(), transform.apply_image(image)
    )


def test_points_move_like_degenerate_boxes():
    point = np.array([0.82, 0.28])
    for t in EVERY_TRANSFORM:
        assert np.allclose(t.apply_points(point), t.apply_boxes(np.concatenate([point, point]))[:2])


def test_known_maps():
    point = np.array([0.82, 0.28])
    assert np.allclose(Transform(hflip=True).apply_points(point), [0.18, 0.28])
    assert np.allclose(Transform(vflip=True).apply_points(point), [0.82, 0.72])
    assert np.allclose(Transform(rot90=1).apply_points(point), [0.28, 0.18])
    assert np.allclose(
        Transform(hflip=True).apply_boxes(np.array([0.64, 0.0, 1.0, 0.71])), [0.0, 0.0, 0.36, 0.71]
    )


# --- the direction rule ---------------------------------------------------------------------------

RELATIVE = {
    "ID": 7,
    "type": "mcq",
    "category": "relative pos",
    "input": (
        "Where is the pastures relative to the arable land? a) top left, b) bottom, c) right, "
        "d) top right"
    ),
    "output": "a",
    "options": ["top left", "bottom", "right", "top right"],
    "answer_index": 0,
}


@pytest.mark.parametrize(
    ("transform", "options"),
    [
        (Transform(hflip=True), ["top right", "bottom", "left", "top left"]),
        (Transform(vflip=True), ["bottom left", "top", "right", "bottom right"]),
        (Transform(rot90=1), ["bottom left", "right", "top", "top left"]),
        (Transform(rot90=2), ["bottom right", "top", "left", "bottom left"]),
    ],
)
def test_relative_position_options_are_rewritten(transform, options):
    out = transform_example(RELATIVE, transform)
    assert out["options"] == options
    assert out["input"].endswith(
        ", ".join(f"{letter}) {o}" for letter, o in zip("abcd", options, strict=True))
    )
    assert out["output"] == "a" and out["answer_index"] == 0


def test_wording_style_case_and_other_words_are_kept():
    t = Transform(rot90=1)
    assert t.apply_text("The Upper-Right corner") == "The Upper-Left corner"
    assert t.apply_text("TOP") == "LEFT"
    assert t.apply_text("leftover lowercase toppings") == "leftover lowercase toppings"
    assert Transform(hflip=True).apply_text("lower left") == "lower right"
    assert Transform(vflip=True).apply_text("the upper part") == "the lower part"
    assert Transform(rot90=1).apply_text("the upper part") == "the left part"


POSITION_PHRASES = [
    "top",
    "Bottom",
    "left",
    "right",
    "top left",
    "top-right",
    "bottom left",
    "Bottom Right",
    "upper-right",
    "LOWER-LEFT",
    "Lower left",
    "the upper part",
    "the lower half",
    "the left side",
]


def named_region(phrase: str) -> np.ndarray:
    """Boolean 4×4 image of the region a position phrase names (top = upper rows, left = left
    columns; a phrase without a vertical or horizontal word spans that whole axis)."""
    words = set(phrase.lower().replace("-", " ").split())
    rows, cols = np.ones(4, dtype=bool), np.ones(4, dtype=bool)
    if words & {"top", "upper"}:
        rows[2:] = False
    if words & {"bottom", "lower"}:
        rows[:2] = False
    if "left" in words:
        cols[2:] = False
    if "right" in words:
        cols[:2] = False
    return rows[:, None] & cols[None, :]


@pytest.mark.parametrize("phrase", POSITION_PHRASES)
def test_rewritten_phrase_names_where_the_painted_region_lands(phrase):
    painted = named_region(phrase)
    assert painted.any() and not painted.all()
    for t in EVERY_TRANSFORM:
        rewritten = t.apply_text(phrase)
        assert np.array_equal(named_region(rewritten), t.apply_image(painted)), (t, rewritten)


@pytest.mark.parametrize(
    "text",
    [
        "Is the forest in the north of the image?",
        "Which class lies above the water?",
        "Is there pastures below the urban fabric?",
        "What is in the south-east part?",
        "Is the leftmost region arable land?",
        "Does the river run horizontally?",
        "Is the area of pastures lower than that of arable land?",
        "Is the proportion of forest higher than that of pastures?",
        "Is the water up or down the river?",
        "Does the forest extend down to the lake?",
        "Is the urban fabric in the upper area?",
        "Is the lowest region covered by water?",
        "Is the forest in the uppermost row?",
    ],
)
def test_unrewritable_direction_words_leave_the_sample_unaugmented(text):
    example = {"ID": 3, "input": text, "output": "yes"}
    assert not can_augment(example)
    assert Augmenter(seed=0).sample_for(example) == IDENTITY
    assert not can_augment({"ID": 3, "input": "q", "output": "o", "options": [text]})


def test_comparatives_are_not_read_as_image_directions():
    text = "Is the area of pastures lower than that of arable land?"
    for t in EVERY_TRANSFORM:
        assert t.apply_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "Where is the pastures relative to the arable land? a) top left, b) bottom, c) right",
        "Is there forest in the upper part of the image?",
        "Is the lower-right corner water?",
        "Is the Upper Left half urban fabric?",
        "Does the left side hold pastures?",
    ],
)
def test_image_position_phrases_keep_the_sample_augmentable(text):
    assert can_augment({"ID": 3, "input": text, "output": "yes"})


def test_referring_texts_follow_box_and_point():
    example = {
        "ID": 11,
        "type": "bounding box",
        "category": "point",
        "input": (
            "Provide a bounding box for the land cover class instance at "
            "<point>(0.82, 0.28)</point>"
        ),
        "output": "[0.55 0.58, 1.0 1.0]",
        "box": [0.55, 0.58, 1.0, 1.0],
        "point": [0.82, 0.28],
    }
    for t in EVERY_TRANSFORM:
        out = transform_example(example, t)
        assert parse_box(out["output"]) == tuple(out["box"])
        assert parse_point(out["input"]) == tuple(out["point"])
        assert np.allclose(out["box"], t.apply_boxes(np.array(example["box"])))
        assert np.allclose(out["point"], t.apply_points(np.array(example["point"])))
    assert transform_example(example, Transform(hflip=True))["output"] == "[0.0 0.58, 0.45 1.0]"


# --- seeding --------------------------------------------------------------------------------------


def test_sampling_is_reproducible_per_key_and_epoch():
    a, b = Augmenter(seed=5), pickle.loads(pickle.dumps(Augmenter(seed=5)))
    draws = [a.sample(i) for i in range(200)]
    assert draws == [b.sample(i) for i in range(200)]
    assert draws[::-1] == [a.sample(i) for i in reversed(range(200))]
    assert len({d.canonical() for d in draws}) == 8
    a.set_epoch(1)
    assert [a.sample(i) for i in range(200)] != draws
    assert [Augmenter(seed=6).sample(i) for i in range(200)] != draws
    assert {Augmenter(hflip=False, vflip=False, rot90=False).sample(i) for i in range(50)} == {
        IDENTITY
    }


def test_patch_key_gives_the_rows_of_a_patch_one_transform():
    aug = Augmenter(seed=1)
    rows = [{"ID": i, "patch_index": i % 5, "input": "q", "output": "o"} for i in range(40)]
    transforms = aug.sample_batch(rows)
    for row, t in zip(rows, transforms, strict=True):
        assert t == aug.sample(row["patch_index"]) == aug.sample_for(row)
    assert len(set(transforms)) > 1
    assert aug.sample_for({"ID": 1, "patch_index": None, "patch_id": "S2A_x"}) == aug.sample(
        "S2A_x"
    )
    by_id = Augmenter(seed=1, key="ID")
    assert by_id.sample_batch(rows) == [by_id.sample(i) for i in range(40)]
    with pytest.raises(ValueError, match="key"):
        Augmenter(key="row")


def test_an_unaugmentable_row_leaves_its_whole_patch_unaugmented_in_the_batch():
    aug = Augmenter(seed=0, rot90=False, vflip=False)
    patch = next(p for p in range(100) if not aug.sample(p).is_identity)
    other = next(p for p in range(patch + 1, 200) if not aug.sample(p).is_identity)
    rows = [
        {"ID": 1, "patch_index": patch, "input": "Is there forest at the top?", "output": "yes"},
        {"ID": 2, "patch_index": patch, "input": "Is the forest above the lake?", "output": "no"},
        {"ID": 3, "patch_index": other, "input": "Is there water on the left?", "output": "no"},
    ]
    assert aug.sample_batch(rows) == [IDENTITY, IDENTITY, aug.sample(other)]
    assert aug.sample_batch(rows[:1]) == [aug.sample(patch)]
    by_id = Augmenter(seed=0, rot90=False, vflip=False, key="ID")
    assert by_id.sample_batch(rows) == [by_id.sample(1), IDENTITY, by_id.sample(3)]

"""Synthetic BigEarthNet.txt-like texts for the redundancy benchmark.

``templated_texts(num_patches)`` returns ``(texts, patch_ids)``: about 21 texts per patch
(``input + " " + output``), built from the kinds of templates the release uses — captions,
binary and multiple-choice questions, and referring-expression boxes — over the 19
BigEarthNet classes, so texts repeat across patches the way templated texts do.
"""

from __future__ import annotations

import random

CLASSES = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
COUNTRIES = ("Austria", "Belgium", "Finland", "Ireland", "Kosovo", "Lithuania", "Luxembourg", "Portugal", "Serbia", "Switzerland")
SEASONS = ("spring", "summer", "autumn", "winter")
CLIMATES = ("Cfb", "Dfb", "Dfc", "Csa", "Csb", "BSk")
DIRECTIONS = ("north", "south", "east", "west", "north-east", "north-west", "south-east", "south-west", "center")
LETTERS = "abcd"


def _box(rng: random.Random) -> str:
    x0, y0 = round(rng.random() * 0.6, 2), round(rng.random() * 0.6, 2)
    x1, y1 = round(x0 + 0.1 + rng.random() * (0.9 - x0), 2), round(y0 + 0.1 + rng.random() * (0.9 - y0), 2)
    return f"[{x0} {y0}, {min(x1, 1.0)} {min(y1, 1.0)}]"


def _choices(rng: random.Random, options: list[str]) -> tuple[str, str]:
    answer = rng.randrange(len(options))
    listed = ", ".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))
    return listed, LETTERS[answer]


def _patch_texts(rng: random.Random, n: int) -> list[str]:
    present = rng.sample(CLASSES, rng.randint(1, 5))
    country, season, climate = rng.choice(COUNTRIES), rng.choice(SEASONS), rng.choice(CLIMATES)
    makers = [
        lambda: (f"Is there any {rng.choice(CLASSES).lower()} in the image?", rng.choice(("yes", "no"))),
        lambda: (f"Does {rng.choice(present).lower()} cover more than {rng.choice((10, 25, 50, 75))}% of the image?", rng.choice(("yes", "no"))),
        lambda: (f"Are there more than {rng.randint(1, 5)} separate regions of {rng.choice(present).lower()}?", rng.choice(("yes", "no"))),
        lambda: (f"Is {rng.choice(present).lower()} adjacent to {rng.choice(CLASSES).lower()}?", rng.choice(("yes", "no"))),
        lambda: _mcq("Which classes share a boundary?", [f"{rng.choice(CLASSES)} and {rng.choice(CLASSES)}" for _ in range(4)]),
        lambda: _mcq("Which class covers the largest area?", rng.sample(CLASSES, 4)),
        lambda: _mcq(f"Where is the largest region of {rng.choice(present).lower()} located?", rng.sample(DIRECTIONS, 4)),
        lambda: _mcq("In which country was this image taken?", [country, *rng.sample(COUNTRIES, 3)]),
        lambda: _mcq("In which season was this image taken?", rng.sample(SEASONS, 4)),
        lambda: _mcq("What is the climate zone of this area?", [climate, *rng.sample(CLIMATES, 3)]),
        lambda: (f"Identify the location of the <ref>largest connected region of {rng.choice(present).lower()}</ref>.", _box(rng)),
        lambda: (f"Identify the location of the <ref>{rng.choice(('smallest', 'northern-most', 'southern-most'))} region of {rng.choice(present).lower()}</ref>.", _box(rng)),
        lambda: (f"What is at point [{round(rng.random(), 2)}, {round(rng.random(), 2)}]?", rng.choice(present)),
        lambda: ("Describe the image.", _caption(rng, present)),
    ]

    def _mcq(question: str, options: list[str]) -> tuple[str, str]:
        rng.shuffle(options)
        listed, answer = _choices(rng, options)
        return f"{question} {listed}", answer

    out = []
    for _ in range(n):
        question, answer = rng.choice(makers)()
        out.append(f"{question} {answer}")
    return out


def _caption(rng: random.Random, present: list[str]) -> str:
    main = present[0].lower()
    if len(present) == 1:
        return f"The image is entirely covered by {main}."
    other = rng.choice(present[1:]).lower()
    return rng.choice(
        (
            f"This image shows {main} with some {other} in the {rng.choice(DIRECTIONS)}.",
            f"The area is dominated by {main}, while {other} appears in the {rng.choice(DIRECTIONS)} part.",
            f"A landscape of {main} and {other}.",
        )
    )


def templated_texts(num_patches: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(texts, patch_ids)`` for ``num_patches`` patches, 5 to 40 texts each (mean ~21)."""
    rng = random.Random(seed)
    texts: list[str] = []
    patch_ids: list[str] = []
    for p in range(num_patches):
        n = min(67, max(5, int(rng.gauss(21, 6))))
        texts.extend(_patch_texts(rng, n))
        patch_ids.extend([f"S2A_MSIL2A_patch_{p:07d}"] * n)
    return texts, patch_ids

"""md5 verification of the published BigEarthNet v2.0 files (SPEC §2) or of a given list, and the
one table of the published files: ``PUBLISHED_FILES`` (Zenodo record 10891137), ``RELEASE_FILE``
(the text release on the Hub) and ``FILE_GROUPS`` (each file's group for ``download --what``).

A checksum list is a text file in ``md5sum`` format (``<md5>  <file name>`` per line).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from bigearthnet_txt.schema import RELEASE_FILENAME


class ChecksumError(ValueError):
    """A file's checksum (md5 unless ``algorithm`` says otherwise) differs from the expected one."""

    def __init__(self, name: str, expected: str, got: str, where: str = "", algorithm: str = "md5"):
        self.name, self.expected, self.got = name, expected, got
        suffix = f" ({where})" if where else ""
        super().__init__(f"{name}: {algorithm} mismatch, expected {expected}, got {got}{suffix}")


# name -> (bytes, md5) as published with Zenodo record 10891137.
PUBLISHED_FILES: dict[str, tuple[int, str]] = {
    "BigEarthNet-S2.tar.zst": (63_251_710_377, "2245ed2d1a93f6ce637d839bc856396e"),
    "BigEarthNet-S1.tar.zst": (54_439_153_171, "a55eaa2cdf6a917e296bd6601ec1e348"),
    "Reference_Maps.tar.zst": (282_391_301, "95d85a222fa983faddcac51a19f28917"),
    "metadata.parquet": (3_616_349, "55687065e77b6d0b0f1ff604a6e7b49c"),
    "metadata_for_patches_with_snow_cloud_or_shadow.parquet": (
        710_162,
        "fe31856f4986d446c9468b59d6387c91",
    ),
}
# (bytes, md5) of the text release ``RELEASE_FILENAME`` on the Hugging Face Hub.
RELEASE_FILE: tuple[int, str] = (466_819_745, "68628955917d75a280e605bf33e9cea5")
# name -> group, in download order; a group names its ``convert`` flag (``--s2``,
# ``--metadata``, ...).
FILE_GROUPS: dict[str, str] = {
    "BigEarthNet-S2.tar.zst": "s2",
    "BigEarthNet-S1.tar.zst": "s1",
    "Reference_Maps.tar.zst": "reference-maps",
    "metadata.parquet": "metadata",
    "metadata_for_patches_with_snow_cloud_or_shadow.parquet": "metadata",
    RELEASE_FILENAME: "text",
}


def names_in(group: str) -> tuple[str, ...]:
    """The file names of ``group`` (``FILE_GROUPS``), in download order."""
    return tuple(name for name, g in FILE_GROUPS.items() if g == group)


def hash_file(path: Path | str, progress: bool, *digests, label: str = "hash") -> None:
    """Feed the bytes of ``path`` to each of ``digests`` (``hashlib`` objects), read in 8 MiB
    blocks; ``label`` names the progress bar."""
    path = Path(path)
    with (
        open(path, "rb") as fh,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"{label} {path.name}",
            disable=not progress,
        ) as bar,
    ):
        while block := fh.read(8 << 20):
            for digest in digests:
                digest.update(block)
            bar.update(len(block))


def md5_file(path: Path | str, progress: bool = False) -> str:
    """md5 hex digest of a file."""
    digest = hashlib.md5()
    hash_file(path, progress, digest, label="md5")
    return digest.hexdigest()


def read_checksum_list(path: Path | str) -> dict[str, str]:
    """Parse an ``md5sum``-format file into ``{file name: md5}``."""
    sums: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 32:
            raise ValueError(f"{path}:{number}: not an md5sum line: {line!r}")
        sums[Path(parts[1].strip().lstrip("*")).name] = parts[0].lower()
    return sums


def verify_files(
    files: Iterable[Path | str], expected: dict[str, str] | None = None, progress: bool = False
) -> dict[str, str]:
    """Check each file's md5 against ``expected`` (by file name; default: the published sums).

    Returns ``{path: md5}``. Raises ``ValueError`` naming the file on a mismatch or when no
    checksum is known for it.
    """
    expected = expected if expected is not None else {n: m for n, (_, m) in PUBLISHED_FILES.items()}
    result: dict[str, str] = {}
    for f in files:
        name = Path(f).name
        if name not in expected:
            raise ValueError(f"{f}: no checksum known for {name!r}; give a checksum list")
        actual = md5_file(f, progress)
        if actual != expected[name]:
            raise ValueError(f"{f}: md5 {actual} does not match the expected {expected[name]}")
        result[str(f)] = actual
    return result

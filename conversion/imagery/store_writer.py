"""Create ``imagery.zarr``, write whole shards atomically and record per-shard progress.

Layout: every array has shape ``[n_rows, *band_shape]``, inner chunks of one patch and shards of
``shard_size`` patches along the patch axis. A shard is encoded whole (``bigearthnet_txt.shards``)
and written to a temporary file of a unique name beside it (``*.partial``), synced, then renamed
into place, so neither a killed run nor two writers of one shard (a task run twice) leave a torn
file. After the shard files of a pass (``s2``: three arrays, ``s1``, ``reference_map``) are written,
a JSON marker ``DIR/.imagery-progress/<pass>/<shard>.json`` records the shard as done with its
per-patch geo-reference, bad patches and band statistics (sums over the train rows). A rerun skips
the shards with a marker. The group attribute ``STORE_ATTRS_KEY`` carries ``"complete": false``
until ``finalize`` writes the full attributes (and the patch table) last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bigearthnet_txt.conversion.imagery.codecs import codec_kwargs
from bigearthnet_txt.schema import IMAGERY_STORE, STORE_ATTRS_KEY, ImageryArray
from bigearthnet_txt.shards import ShardLayout

if TYPE_CHECKING:  # zarr is imported where a group is opened (not in shard-writing workers)
    import zarr

FORMAT_VERSION = 1
PROGRESS_DIR = ".imagery-progress"
STAGING_DIR = ".imagery-staging"


def fill_value(array: ImageryArray) -> float | int:
    """Value of rows never written (padding, missing S1): 0 for uint16, NaN for float32."""
    return float("nan") if np.dtype(array.dtype).kind == "f" else 0


def band_shape(array: ImageryArray) -> tuple[int, ...]:
    """Shape of one patch of ``array``: ``(bands, size, size)`` or ``(size, size)``."""
    return ((len(array.bands),) if array.bands else ()) + (array.size, array.size)


TEMP_SUFFIX = ".partial"


def unique_temp(path: Path) -> Path:
    """A new empty file of a unique name beside ``path`` (``<name>.<random>.partial``)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TEMP_SUFFIX)
    os.close(fd)
    return Path(name)


def replace_synced(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``path`` (removing ``tmp`` if that fails)."""
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | Sequence[bytes | memoryview]) -> None:
    """Write ``data`` (bytes, or buffers written in turn) to ``path`` through a unique temporary
    file, synced, and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_temp(path)
    try:
        with open(tmp, "wb") as fh:
            fh.writelines([data] if isinstance(data, bytes) else data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_synced(tmp, path)


def write_json_atomic(path: Path, payload) -> None:
    """Write JSON to ``path`` atomically (``write_atomic``)."""
    write_atomic(path, json.dumps(payload, indent=1, sort_keys=True).encode())


class StoreWriter:
    """Writes the arrays of one store under ``out_dir`` (chunks compressed by ``encode_threads``
    threads: blosc releases the GIL).

    ``settings`` (JSON-ready) identify the conversion; a rerun with other settings on an
    unfinished store is refused instead of mixing two conversions. With ``create=False`` (Dask
    workers) the store must already exist: it is never created, replaced or deleted.
    """

    def __init__(
        self,
        out_dir: Path,
        n_rows: int,
        shard_size: int,
        arrays: Sequence[ImageryArray],
        preset: str,
        settings: dict,
        encode_threads: int = 1,
        create: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / IMAGERY_STORE
        self.progress_dir = self.out_dir / PROGRESS_DIR
        self.staging_dir = self.out_dir / STAGING_DIR
        self.n_rows = n_rows
        self.shard_size = shard_size
        self.arrays = list(arrays)
        self.preset = preset
        self.settings = settings
        self._group: zarr.Group | None = None
        self._layouts: dict[str, ShardLayout | None] = {}
        self._encoder = ThreadPoolExecutor(encode_threads) if encode_threads > 1 else None
        self.create = create
        self._checked = False

    # -- state --------------------------------------------------------------------------------

    def _stored_attrs(self) -> dict:
        """The ``STORE_ATTRS_KEY`` attributes in the group's ``zarr.json`` (empty when it has
        none), read without zarr-python; OSError or ValueError when there is no readable group."""
        meta = json.loads((self.path / "zarr.json").read_text())
        if not isinstance(meta, dict) or meta.get("node_type") != "group":
            raise ValueError("zarr.json does not describe a zarr group")
        attrs = meta.get("attributes") or {}
        return dict((attrs.get(STORE_ATTRS_KEY) if isinstance(attrs, dict) else None) or {})

    def existing_attrs(self) -> dict | None:
        """The store's ``STORE_ATTRS_KEY`` attributes, or None when there is no usable group."""
        try:
            return self._stored_attrs() or None
        except (OSError, ValueError):
            return None

    def is_complete(self) -> bool:
        attrs = self.existing_attrs()
        if attrs and attrs.get("complete"):
            if attrs.get("settings") != self.settings:
                raise FileExistsError(
                    f"{self.path}: a complete store from a conversion with other settings exists; "
                    "remove it or rerun with the same inputs and options"
                )
            return True
        return False

    def open(self) -> zarr.Group:
        """Create the group and arrays, or reopen those of an interrupted run with equal
        settings."""
        if self._group is not None:
            return self._group
        if not self.create:
            return self._open_existing()
        import zarr

        attrs = self.existing_attrs()
        if attrs is not None and attrs.get("settings") != self.settings:
            raise FileExistsError(
                f"{self.path}: an unfinished store from a conversion with other settings exists; "
                "remove it (and .imagery-progress) or rerun with the same inputs and options"
            )
        if attrs is None:
            shutil.rmtree(self.path, ignore_errors=True)
            shutil.rmtree(self.progress_dir, ignore_errors=True)
            shutil.rmtree(self.staging_dir, ignore_errors=True)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            group = zarr.open_group(self.path, mode="w", zarr_format=3)
            for array in self.arrays:
                shape = band_shape(array)
                z = group.create_array(
                    array.name,
                    shape=(self.n_rows, *shape),
                    chunks=(1, *shape),
                    shards=(self.shard_size, *shape),
                    dtype=array.dtype,
                    fill_value=fill_value(array),
                    dimension_names=("patch", "band", "y", "x")
                    if array.bands
                    else ("patch", "y", "x"),
                    **codec_kwargs(self.preset, array.dtype),
                )
                z.attrs.update(
                    {
                        "bands": list(array.bands),
                        "resolution_m": array.resolution_m,
                        "units": array.units,
                        "nodata": array.nodata,
                    }
                )
            group.attrs[STORE_ATTRS_KEY] = {
                "format_version": FORMAT_VERSION,
                "complete": False,
                "settings": self.settings,
            }
            self._group = group
        else:
            self._group = zarr.open_group(self.path, mode="r+")
        return self._group

    def _check_existing(self) -> None:
        """Refuse a store that cannot be read or was written with other settings (a
        shard-writing worker needs no zarr-python for it)."""
        try:
            settings = self._stored_attrs().get("settings")
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"{self.path}: cannot open the store being written ({err}); "
                "is the output folder reachable from this machine?"
            ) from err
        if settings != self.settings:
            raise FileExistsError(
                f"{self.path}: the store was written by a conversion with other settings"
            )
        self._checked = True

    def _open_existing(self) -> zarr.Group:
        import zarr

        self._check_existing()
        self._group = zarr.open_group(self.path, mode="r+")
        return self._group

    # -- shards -------------------------------------------------------------------------------

    def marker(self, pass_name: str, shard: int) -> Path:
        return self.progress_dir / pass_name / f"{shard:06d}.json"

    def done_shards(self, pass_name: str) -> set[int]:
        folder = self.progress_dir / pass_name
        if not folder.is_dir():
            return set()
        return {int(p.stem) for p in folder.glob("*.json")}

    def records(self, pass_name: str) -> dict[int, dict]:
        folder = self.progress_dir / pass_name
        if not folder.is_dir():
            return {}
        return {int(p.stem): json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}

    def discard_pass(self, pass_name: str, array_names: Sequence[str]) -> list[int]:
        """Remove the shard files and markers of every done shard of a pass;
        returns those shards."""
        shards = sorted(self.done_shards(pass_name))
        for shard in shards:
            self.discard_shard(pass_name, shard, array_names)
        return shards

    def discard_shard(self, pass_name: str, shard: int, array_names: Sequence[str]) -> None:
        """Remove the marker and then the files of one shard of a pass (a rerun writes it again)."""
        self.marker(pass_name, shard).unlink(missing_ok=True)
        for name in array_names:
            if (self.path / name / "zarr.json").is_file() and (
                layout := ShardLayout.load(self.path / name)
            ):
                Path(layout.shard_path(shard)).unlink(missing_ok=True)

    def write_shard(
        self, pass_name: str, shard: int, data: dict[str, np.ndarray], record: dict
    ) -> None:
        """Write rows ``[shard*shard_size, (shard+1)*shard_size)`` of each array, then the marker.

        Shard files are encoded by ``bigearthnet_txt.shards`` (byte-compatible with zarr-python,
        much faster per chunk) and renamed into place; zarr-python writes layouts it does not
        handle.
        """
        if self.create:
            self.open()
        elif not self._checked:
            self._check_existing()
        start = shard * self.shard_size
        for name, block in data.items():
            layout = (
                self._layouts.get(name)
                if name in self._layouts
                else self._layouts.setdefault(name, ShardLayout.load(self.path / name))
            )
            if layout is None:  # zarr-python writes it (opened only then: workers skip its import)
                self.open()[name][start : start + self.shard_size] = block
                continue
            encoded = layout.encode_shard_parts(
                block, map_fn=self._encoder.map if self._encoder else map
            )
            target = layout.shard_path(shard)
            if encoded is None:
                target.unlink(missing_ok=True)
                continue
            write_atomic(target, encoded)
        write_json_atomic(self.marker(pass_name, shard), record)

    # -- end ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the encoding threads."""
        if self._encoder is not None:
            self._encoder.shutdown()
            self._encoder = None

    def missing_shards(self, pass_name: str, planned: Sequence[int]) -> list[int]:
        """The shards of ``planned`` without a progress marker."""
        done = self.done_shards(pass_name)
        return [s for s in planned if s not in done]

    def finalize(self, attrs: dict) -> None:
        """Write the complete store attributes, then drop the progress and staging folders."""
        group = self.open()
        group.attrs[STORE_ATTRS_KEY] = {
            **attrs,
            "format_version": FORMAT_VERSION,
            "complete": True,
            "settings": self.settings,
        }
        self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """Remove what only an unfinished run needs: temporary shard files (of a run killed while
        writing one), the progress and the staging folders. ``finalize`` calls it last; a run that
        finds the store complete calls it again, for a run killed just after the attributes."""
        for partial in self.path.rglob("*" + TEMP_SUFFIX):
            partial.unlink(missing_ok=True)
        shutil.rmtree(self.progress_dir, ignore_errors=True)
        shutil.rmtree(self.staging_dir, ignore_errors=True)

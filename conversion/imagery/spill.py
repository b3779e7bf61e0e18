"""Per-shard buffering with bounded memory, shared by both engines.

Items (decoded patches for the local engine, band files for the Dask client) arrive in source
order and wait until their shard is complete. ``ShardSpill`` keeps the items of up to ``max_open``
shards in memory and pickles those of further shards to ``folder`` (one file per item), so memory
stays flat whatever the order of the source.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
from pathlib import Path


class ShardSpill:
    """Items per shard: in memory for up to ``max_open`` shards, pickled under ``folder`` for the
    others; ``pop(shard)`` returns a shard's items in arrival order (memory first)."""

    def __init__(self, folder: Path, max_open: int):
        self.folder = Path(folder)
        self.max_open = max_open
        self.memory: dict[int, list] = {}
        self.on_disk: dict[int, int] = {}
        shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, shard: int, item) -> None:
        """Keep ``item`` of ``shard``."""
        if shard in self.memory or (shard not in self.on_disk and len(self.memory) < self.max_open):
            self.memory.setdefault(shard, []).append(item)
            return
        count = self.on_disk.get(shard, 0)
        path = self.folder / f"{shard:06d}" / f"{count:06d}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        self.on_disk[shard] = count + 1

    def pop(self, shard: int) -> list:
        """The items of ``shard`` (removed from memory and disk); empty when it has none."""
        items = self.memory.pop(shard, [])
        if self.on_disk.pop(shard, 0):
            folder = self.folder / f"{shard:06d}"
            items += [pickle.loads(p.read_bytes()) for p in sorted(folder.glob("*.pkl"))]
            shutil.rmtree(folder)
        return items

    def close(self) -> None:
        """Remove ``folder``, and its parent once empty (the staging root no other pass uses)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()

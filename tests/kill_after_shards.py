"""``python tests/kill_after_shards.py N ARGS...``: the imagery conversion command (``ARGS``), killed
with SIGKILL right after its N-th shard is written (progress marker included), as a crash would."""

from __future__ import annotations

import os
import signal
import sys

from bigearthnet_txt.conversion.imagery.arguments import main
from bigearthnet_txt.conversion.imagery.store_writer import StoreWriter


def kill_after_shards(n: int) -> None:
    """Make this process die right after ``StoreWriter.write_shard`` returned ``n`` times."""
    write_shard = StoreWriter.write_shard
    written = 0

    def write_then_die(self, *args, **kwargs):
        nonlocal written
        write_shard(self, *args, **kwargs)
        written += 1
        if written >= n:
            os.kill(os.getpid(), signal.SIGKILL)

    StoreWriter.write_shard = write_then_die


if __name__ == "__main__":
    kill_after_shards(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))

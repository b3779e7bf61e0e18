"""``python tests/kill_after_shards.py N ARGS...``: the imagery conversion command (``ARGS``),
killed with SIGKILL right after its N-th shard is written (progress marker included), as a crash
would.

With ``KILL_RECORD_CHILDREN=FILE`` in the environment, the process ids of its worker processes are
written to FILE (one per line) just before the kill."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path

from bigearthnet_txt.conversion.imagery.arguments import main
from bigearthnet_txt.conversion.imagery.pass_runner import PassRun


def kill_after_shards(n: int) -> None:
    """Make this process die once ``n`` shard tasks have finished (their markers written), wherever
    the tasks ran (this process or worker processes)."""
    shard_done = PassRun.shard_done
    written = 0

    def note_then_die(self, outcome):
        nonlocal written
        shard_done(self, outcome)
        written += 1
        if written >= n:
            record = os.environ.get("KILL_RECORD_CHILDREN")
            if record:
                pids = [str(p.pid) for p in multiprocessing.active_children()]
                Path(record).write_text("\n".join(pids))
            os.kill(os.getpid(), signal.SIGKILL)

    PassRun.shard_done = note_then_die


if __name__ == "__main__":
    kill_after_shards(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))

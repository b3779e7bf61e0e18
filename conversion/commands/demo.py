"""``bigearthnet-txt demo``: the main job on the embedded real sample, end to end."""

from __future__ import annotations

import argparse
from pathlib import Path



def register(sub) -> None:
    parser = sub.add_parser(
        "demo",
        help="convert the embedded real sample and show parsed rows per task",
        description="Build annotation fixtures for the shipped real sample patches, convert them "
        "and print a few parsed rows per task.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=2, help="rows shown per task")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from bigearthnet_txt.schema import DATA_DIR, TABLE_TASKS
    from conversion.annotations import AnnotationSettings, convert_annotations
    from conversion.commands.convert import print_summary
    from conversion.sample_data import METADATA_FILE
    from conversion.synthetic import write_sample

    out = args.out
    annotations = write_sample(out / "sources" / "BigEarthNet.txt.sample.parquet", METADATA_FILE)
    print(f"sample annotations: {annotations}")
    summary = convert_annotations(annotations, out, AnnotationSettings(), progress=False, overwrite=True)
    print_summary(summary)
    shown = ["ID", "patch_id", "type", "category", "input", "output", "options", "answer_index",
             "answer_bool", "box", "point", "ref", "redundancy_weight"]
    for task in TABLE_TASKS:
        files = sorted((out / DATA_DIR / task).glob("*.parquet"))
        table = pq.read_table(files[0]).slice(0, args.rows)
        print(f"\n== {task} ({files[0].relative_to(out)})")
        for row in table.to_pylist():
            print({k: row[k] for k in shown if row[k] is not None})
    return 0

"""ChatCollator on the converted embedded sample with a chat tokenizer built offline."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from chat_support import offline_chat_tokenizer
from collate_support import build_converted_sample
from torch.utils.data import DataLoader

from bigearthnet_txt.annotations import parse_box, parse_point
from bigearthnet_txt.answer_extraction import extract_box
from bigearthnet_txt.augment import Augmenter
from bigearthnet_txt.box_scales import render_box_scaled, render_point_scaled
from bigearthnet_txt.chat_collate import IGNORE_INDEX, ChatCollator
from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.store import ImageryStore

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return build_converted_sample(tmp_path_factory.mktemp("chat"))


@pytest.fixture(scope="module")
def examples(converted, tmp_path_factory):
    """Every row of every split and task, text only."""
    ds = load_dataset(converted, "all", imagery=(), cache_dir=str(tmp_path_factory.mktemp("hf")))
    return [row for split in ds for row in ds[split].to_list()]


@pytest.fixture(scope="module")
def tokenizer(examples):
    return offline_chat_tokenizer([e["input"] for e in examples] + [e["output"] for e in examples])


@pytest.fixture(scope="module")
def store(converted):
    return ImageryStore(converted)


def answer_span(labels: torch.Tensor) -> tuple[int, int]:
    """First and one-past-last position of the labelled tokens; they must be contiguous."""
    positions = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    assert positions == list(range(positions[0], positions[-1] + 1))
    return positions[0], positions[-1] + 1


def test_labels_are_exactly_the_answer_and_end_token_for_every_row(store, examples, tokenizer):
    collator = ChatCollator(store, tokenizer, image_token="<image>", image_token_count=5)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert {e["type"] for e in examples} == {"binary", "mcq", "captioning", "bounding box"}
    for start in range(0, len(examples), 16):
        chunk = examples[start : start + 16]
        batch = collator(chunk)
        assert batch["image"].shape[0] == len(chunk) and batch["dropped_ID"].numel() == 0
        for i, ex in enumerate(chunk):
            ids, labels, mask = (
                batch["input_ids"][i],
                batch["labels"][i],
                batch["attention_mask"][i],
            )
            first, end = answer_span(labels)
            assert torch.equal(labels[first:end], ids[first:end])
            assert tokenizer.decode(labels[first:end]) == ex["output"] + "<|im_end|>"
            assert (labels[:first] == IGNORE_INDEX).all() and (labels[end:] == IGNORE_INDEX).all()
            assert int((ids[mask.bool()] == image_id).sum()) == 5
            # the sequence is the template's own rendering of the conversation
            conversation = [
                {"role": "user", "content": "<image>" * 5 + "\n" + ex["input"]},
                {"role": "assistant", "content": ex["output"]},
            ]
            rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
            assert tokenizer.decode(ids[mask.bool()]) == rendered
            assert mask[: int(mask.sum())].all()  # right padding
        assert batch["ID"].tolist() == [e["ID"] for e in chunk]


def test_left_padding_system_prompt_and_no_placeholders(store, examples, tokenizer):
    chunk = examples[:12]
    right = ChatCollator(store, tokenizer, image_token=None)(chunk)
    left = ChatCollator(store, tokenizer, image_token=None, padding_side="left")(chunk)
    for i in range(len(chunk)):
        n = int(right["attention_mask"][i].sum())
        assert torch.equal(left["input_ids"][i, -n:], right["input_ids"][i, :n])
        assert torch.equal(left["labels"][i, -n:], right["labels"][i, :n])
        assert left["attention_mask"][i, -n:].all() and not left["attention_mask"][i, :-n].any()
        assert (left["labels"][i, :-n] == IGNORE_INDEX).all()
    system = ChatCollator(store, tokenizer, image_token=None, system_prompt="You see Earth.")
    batch = system(chunk)
    text = tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert text.startswith("<|im_start|>system\nYou see Earth.<|im_end|>")
    first, end = answer_span(batch["labels"][0])
    assert tokenizer.decode(batch["labels"][0][first:end]) == chunk[0]["output"] + "<|im_end|>"


@pytest.mark.parametrize("box_scale", ["1000", "pixels"])
def test_boxes_and_points_re_rendered_and_read_back_by_evaluate(
    store, examples, tokenizer, box_scale
):
    referring = [e for e in examples if e["type"] == "bounding box"][:16]
    collator = ChatCollator(store, tokenizer, box_scale=box_scale, keep_text=True)
    batch = collator(referring)
    for i, ex in enumerate(referring):
        first, end = answer_span(batch["labels"][i])
        answer = tokenizer.decode(batch["labels"][i][first : end - 1])
        assert answer == render_box_scaled(parse_box(ex["output"]), box_scale)
        read = extract_box(answer, box_scale=box_scale)
        assert read.value == pytest.approx(parse_box(ex["output"]), abs=1e-9)
        prompt = tokenizer.decode(batch["input_ids"][i][batch["attention_mask"][i].bool()])
        if ex["point"] is not None:
            assert render_point_scaled(parse_point(ex["input"]), box_scale) in prompt
            assert "<point>(0." not in prompt or box_scale == "unit"
    with pytest.raises(ValueError, match="box_scale"):
        ChatCollator(store, tokenizer, box_scale="percent")


def test_truncation_never_cuts_the_answer_and_is_counted(store, examples, tokenizer, caplog):
    chunk = examples[:40]
    free = ChatCollator(store, tokenizer, image_token_count=3)(chunk)
    lengths = free["attention_mask"].sum(1)
    answers = (free["labels"] != IGNORE_INDEX).sum(1)
    limit = int(lengths.float().median())
    collator = ChatCollator(store, tokenizer, image_token_count=3, max_length=limit)
    with caplog.at_level(logging.WARNING, logger="bigearthnet_txt.chat_collate"):
        batch = collator(chunk)
    assert batch["input_ids"].shape[1] <= limit
    kept_ids = batch["ID"].tolist()
    dropped = batch["dropped_ID"].tolist()
    assert sorted(kept_ids + dropped) == sorted(e["ID"] for e in chunk)
    by_id = {e["ID"]: e for e in chunk}
    for i, row_id in enumerate(kept_ids):
        first, end = answer_span(batch["labels"][i])
        assert tokenizer.decode(batch["labels"][i][first:end]) == by_id[row_id]["output"] + (
            "<|im_end|>"
        )
    long_rows = [e["ID"] for e, n in zip(chunk, lengths.tolist(), strict=True) if n > limit]
    assert long_rows and set(long_rows) == {
        row_id for row_id, t in zip(kept_ids, batch["truncated"].tolist(), strict=True) if t
    } | set(dropped)
    assert collator.overflow_counts == {
        "rows": 40,
        "truncated": int(batch["truncated"].sum()),
        "dropped": len(dropped),
    }
    # a row whose answer alone is longer than the limit is dropped, never cut
    tiny = ChatCollator(store, tokenizer, image_token_count=3, max_length=int(lengths.min()))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bigearthnet_txt.chat_collate"):
        small = tiny(chunk)
    dropped_small = small["dropped_ID"].numel()
    assert 0 < dropped_small < len(chunk) and "rows dropped" in caplog.text
    assert small["image"].shape[0] == small["input_ids"].shape[0] == len(chunk) - dropped_small
    assert small["group_index"].max() < len(set(small["patch_index"].tolist()))
    everything = ChatCollator(store, tokenizer, max_length=int(answers.min()))(chunk)
    assert everything["input_ids"].shape == (0, 0) and everything["image"].shape[0] == 0
    drop = ChatCollator(store, tokenizer, image_token_count=3, max_length=limit, overflow="drop")
    assert set(drop(chunk)["dropped_ID"].tolist()) == set(long_rows)
    with pytest.raises(ValueError, match="max_length"):
        ChatCollator(store, tokenizer, max_length=limit, overflow="error")(chunk)


def test_augmented_targets_are_what_is_labelled(store, examples, tokenizer):
    chunk = [e for e in examples if e["type"] == "bounding box"][:16]
    collator = ChatCollator(store, tokenizer, augment=Augmenter(seed=3), keep_text=True)
    batch = collator(chunk)
    assert batch["transform"].any()
    for i in range(len(chunk)):
        first, end = answer_span(batch["labels"][i])
        assert tokenizer.decode(batch["labels"][i][first:end]) == batch["target"][i] + "<|im_end|>"
        assert batch["box"][i].tolist() == pytest.approx(parse_box(batch["target"][i]), abs=1e-6)


def test_pickles_and_runs_in_dataloader_workers(converted, examples, tokenizer):
    collator = ChatCollator(str(converted), tokenizer, image_token_count=2)
    clone = pickle.loads(pickle.dumps(collator))
    loader = DataLoader(examples[:24], batch_size=8, num_workers=2, collate_fn=clone)
    seen = [row_id for batch in loader for row_id in batch["ID"].tolist()]
    assert seen == [e["ID"] for e in examples[:24]]


def test_processor_style_messages(store, examples, tokenizer):
    class Processor:
        """What a transformers processor offers: a tokenizer and a list-content chat template."""

        chat_template = "list"

        def __init__(self, tok):
            self.tokenizer = tok

        def apply_chat_template(self, messages, **kwargs):
            flat = [
                {"role": m["role"], "content": "".join(p["text"] for p in m["content"])}
                for m in messages
            ]
            return self.tokenizer.apply_chat_template(flat, **kwargs)

    processed = ChatCollator(store, Processor(tokenizer))(examples[:8])
    plain = ChatCollator(store, tokenizer)(examples[:8])
    assert torch.equal(processed["input_ids"], plain["input_ids"])
    assert torch.equal(processed["labels"], plain["labels"])


def test_image_token_must_be_one_token(store, tokenizer):
    with pytest.raises(ValueError, match="not one token"):
        ChatCollator(store, tokenizer, image_token="<img>")


def test_readme_fine_tuning_snippet_runs_as_written(converted, tokenizer, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Fine-tuning a VLM") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    namespace: dict = {}
    exec(compile(code.replace('"DIR"', repr(str(converted))), "README", "exec"), namespace)
    batch = namespace["batch"]
    assert {"input_ids", "attention_mask", "labels", "image"} <= set(batch)
    assert (batch["labels"] != IGNORE_INDEX).any()

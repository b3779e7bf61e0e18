"""``ChatCollator``: examples → a VLM fine-tuning batch in the model's own chat template.

    from transformers import AutoTokenizer                      # pip install bigearthnet_txt[hf]
    tokenizer = AutoTokenizer.from_pretrained("MODEL")         # or an AutoProcessor
    collator = ChatCollator("DIR", tokenizer, image_token="<image>", image_token_count=64,
                            max_length=512, box_scale="1000")
    loader = DataLoader(ds, batch_size=16, collate_fn=collator)

The imagery, augmentation and label tensors come from :class:`~bigearthnet_txt.collate.Collator`
(the same batched store read, the same keys: ``image`` (or ``s2``/``s1``), ``has_s1``, ``box``,
``ID`` …); the text is one conversation per example, rendered with
``tokenizer.apply_chat_template``:

* user turn: ``image_token`` × ``image_token_count`` then ``"\\n"`` then the row's ``input``
  (after an optional ``system_prompt`` turn);
* assistant turn: the row's ``output``; for referring rows the box of the output and the point of
  the input are first re-rendered on ``box_scale``'s grid (``unit`` as released, ``1000``,
  ``pixels``; see :mod:`bigearthnet_txt.box_scales`; ``evaluate(box_scale=…)`` reads them back).

The batch adds (``B`` kept examples, ``L`` the longest sequence, or ``max_length``):

    input_ids       int64 [B, L]  prompt, answer, end token, template tail; padded on padding_side
    attention_mask  int64 [B, L]  1 on tokens, 0 on padding
    labels          int64 [B, L]  the answer's tokens and the end token; -100 everywhere else
                                  (system and user turns, placeholders, template text, padding)
    truncated       bool  [B]     the row was shortened to fit ``max_length`` (template tail
                                  and/or the start of its ``input``; never the answer)
    dropped_ID      int64 [D]     IDs of rows left out because even the answer did not fit

The sequence is tokenised piece by piece (``add_special_tokens=False``; the template writes
BOS etc.): the prompt rendered with ``add_generation_prompt=True``, the answer, the end token
(``end_token``, default the tokenizer's ``eos_token``; where the template does not close the
answer with it, it is inserted after the answer) and the rest of the rendered conversation.
Truncation never cuts the answer: with ``overflow="truncate"`` the masked template tail goes
first, then tokens from the start of the ``input`` text; a row that still does not fit is
dropped. ``overflow="drop"`` drops every row that is too long, ``"error"`` raises. Every drop
and truncation is logged with the row IDs and counted in :attr:`ChatCollator.overflow_counts`
(per process: with DataLoader workers, sum ``batch["truncated"]`` and ``batch["dropped_ID"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from bigearthnet_txt.box_scales import check_scale, rescale_texts
from bigearthnet_txt.collate import Collator
from bigearthnet_txt.schema import TYPE_BOX

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
OVERFLOW_MODES = ("truncate", "drop", "error")
PADDING_SIDES = ("left", "right")


class ChatCollator(Collator):
    """Picklable ``collate_fn`` for chat-template fine-tuning (see the module docstring).

    Parameters: ``store`` as for :class:`Collator`; ``tokenizer`` a ``transformers`` tokenizer
    with a chat template, or a processor (its ``tokenizer`` encodes, its ``apply_chat_template``
    renders, message contents as ``[{"type": "text", …}]``); ``image_token`` (``None``: no
    placeholders) repeated ``image_token_count`` times, which must be one token of the
    tokenizer; ``system_prompt`` an optional system turn; ``max_length`` in tokens (``None``: no
    limit); ``padding_side`` ``right``/``left``; ``overflow`` ``truncate``/``drop``/``error``;
    ``box_scale`` ``unit``/``1000``/``pixels``; ``end_token`` the token that closes the answer
    (default ``eos_token``). Other keywords (``bands``, ``augment``, ``device_transform`` …) go to
    :class:`Collator`; its own tiktoken tensors are not produced.
    """

    def __init__(
        self,
        store,
        tokenizer,
        *,
        image_token: str | None = "<image>",
        image_token_count: int = 1,
        system_prompt: str | None = None,
        max_length: int | None = None,
        padding_side: str = "right",
        overflow: str = "truncate",
        box_scale: str = "unit",
        end_token: str | None = None,
        keep_text: bool = False,
        **collator_options,
    ):
        super().__init__(store, tokenizer=None, keep_text=True, **collator_options)
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
        if overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
        if image_token_count < 0:
            raise ValueError(f"image_token_count must be >= 0, got {image_token_count}")
        self.template = tokenizer
        self.text_tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        self.processor_messages = self.text_tokenizer is not tokenizer
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"{type(tokenizer).__name__} has no chat_template")
        self.image_token, self.image_token_count = image_token, image_token_count
        self.system_prompt = system_prompt
        self.max_length, self.padding_side, self.overflow = max_length, padding_side, overflow
        self.box_scale = check_scale(box_scale)
        self.end_token = end_token if end_token is not None else self.text_tokenizer.eos_token
        if not self.end_token:
            raise ValueError("the tokenizer has no eos_token: pass end_token=")
        self.keep_chat_text = keep_text
        self.pad_id = self.text_tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.text_tokenizer.eos_token_id
        if self.pad_id is None:
            raise ValueError("the tokenizer has neither pad_token_id nor eos_token_id")
        if image_token is not None and len(self._encode([image_token])[0]) != 1:
            raise ValueError(
                f"image_token {image_token!r} is not one token of the tokenizer; register it "
                f"(tokenizer.add_special_tokens({{'additional_special_tokens': [{image_token!r}]}}"
                ") and resize the model's embeddings)"
            )
        self.overflow_counts = {"rows": 0, "truncated": 0, "dropped": 0}

    # -- text ---------------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return list(self.text_tokenizer(list(texts), add_special_tokens=False)["input_ids"])

    def _message(self, role: str, text: str) -> dict:
        content = [{"type": "text", "text": text}] if self.processor_messages else text
        return {"role": role, "content": content}

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.template.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def user_text(self, prompt: str) -> str:
        """The user turn's text: the placeholders, a newline, the ``input``."""
        if self.image_token is None or self.image_token_count == 0:
            return prompt
        return self.image_token * self.image_token_count + "\n" + prompt

    def pieces(self, prompt: str, answer: str) -> tuple[str, str, str, str, str, str]:
        """The rendered conversation cut into ``(head, input, prompt_rest, answer, end, tail)``:
        ``head + input + prompt_rest`` is the prompt with its generation prompt (``input`` the
        row's text), then the answer, the end token and the template's masked tail."""
        messages = [self._message("user", self.user_text(prompt))]
        if self.system_prompt is not None:
            messages.insert(0, self._message("system", self.system_prompt))
        prompt_text = self._render(messages, True)
        full = self._render([*messages, self._message("assistant", answer)], False)
        if not full.startswith(prompt_text):
            raise ValueError(
                "chat template: the rendered conversation does not start with the prompt "
                "rendered with add_generation_prompt=True, so the answer cannot be located"
            )
        rest = full[len(prompt_text) :]
        at = rest.find(answer)
        if at < 0:
            raise ValueError(f"chat template: the answer {answer!r} is not in {rest!r}")
        start = prompt_text.rfind(prompt)
        if start < 0:
            raise ValueError(f"chat template: the input {prompt!r} is not in {prompt_text!r}")
        tail = rest[at + len(answer) :]
        if tail.startswith(self.end_token):
            tail = tail[len(self.end_token) :]
        return (
            prompt_text[:start],
            prompt,
            prompt_text[start + len(prompt) :] + rest[:at],
            answer,
            self.end_token,
            tail,
        )

    def chat_tokens(self, examples: Sequence[Mapping], prompts: Sequence[str],
                    targets: Sequence[str]) -> tuple[dict, np.ndarray]:  # fmt: skip
        """Padded ``input_ids``/``attention_mask``/``labels``/``truncated`` of the kept rows and
        the bool ``[B]`` mask of kept rows."""
        cut = [self.pieces(p, t) for p, t in zip(prompts, targets, strict=True)]
        encoded = [self._encode([c[k] for c in cut]) for k in range(6)]
        ids_of = [int(ex["ID"]) if ex.get("ID") is not None else -1 for ex in examples]
        keep = np.ones(len(examples), dtype=bool)
        truncated = np.zeros(len(examples), dtype=bool)
        sequences, labels = [], []
        for i in range(len(examples)):
            head, body, rest, answer, end, tail = (encoded[k][i] for k in range(6))
            if self.max_length is not None:
                excess = len(head) + len(body) + len(rest) + len(answer) + len(end) + len(tail)
                excess -= self.max_length
                if excess > 0 and self.overflow == "error":
                    raise ValueError(
                        f"row ID {ids_of[i]}: {excess + self.max_length} tokens > max_length "
                        f"{self.max_length} (overflow='error')"
                    )
                if excess > 0 and self.overflow == "truncate":
                    dropped_tail = min(excess, len(tail))
                    tail, excess = tail[: len(tail) - dropped_tail], excess - dropped_tail
                    if 0 < excess < len(body):
                        body, excess, truncated[i] = body[excess:], 0, True
                    elif excess > 0:
                        keep[i] = False
                    elif dropped_tail:
                        truncated[i] = True
                elif excess > 0:
                    keep[i] = False
            if not keep[i]:
                continue
            prefix = head + body + rest
            sequences.append(prefix + answer + end + tail)
            labels.append([IGNORE_INDEX] * len(prefix) + answer + end + [IGNORE_INDEX] * len(tail))
        self._count(ids_of, keep, truncated)
        return self._pad(sequences, labels, truncated[keep]), keep

    def _count(self, ids: list[int], keep: np.ndarray, truncated: np.ndarray) -> None:
        counts = self.overflow_counts
        counts["rows"] += len(ids)
        counts["truncated"] += int(truncated.sum())
        counts["dropped"] += int((~keep).sum())
        if truncated.any():
            logger.warning(
                "max_length %d: input shortened for row IDs %s",
                self.max_length,
                [i for i, t in zip(ids, truncated, strict=True) if t],
            )
        if not keep.all():
            logger.warning(
                "max_length %d: rows dropped (the answer would not fit) IDs %s",
                self.max_length,
                [i for i, k in zip(ids, keep, strict=True) if not k],
            )

    def _pad(self, sequences: list[list[int]], labels: list[list[int]], truncated: np.ndarray):
        width = max((len(s) for s in sequences), default=0)
        n = len(sequences)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.int64)
        label_ids = torch.full((n, width), IGNORE_INDEX, dtype=torch.int64)
        attention = torch.zeros((n, width), dtype=torch.int64)
        for i, (seq, lab) in enumerate(zip(sequences, labels, strict=True)):
            span = (
                slice(0, len(seq))
                if self.padding_side == "right"
                else slice(width - len(seq), width)
            )
            input_ids[i, span] = torch.tensor(seq, dtype=torch.int64)
            label_ids[i, span] = torch.tensor(lab, dtype=torch.int64)
            attention[i, span] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": label_ids,
            "truncated": torch.from_numpy(truncated.copy()),
        }

    # -- the batch ----------------------------------------------------------------------------

    def collate(self, examples: Sequence[Mapping], native: dict[str, np.ndarray]) -> dict:
        """The :class:`Collator` batch (imagery, labels) plus the chat tensors; rows that do not
        fit ``max_length`` are removed from every per-example tensor."""
        batch = super().collate(examples, native)
        prompts, targets = batch.pop("prompt"), batch.pop("target")
        for i, ex in enumerate(examples):
            if ex.get("type") == TYPE_BOX:
                prompts[i], targets[i] = rescale_texts(prompts[i], targets[i], self.box_scale)
        tokens, keep = self.chat_tokens(examples, prompts, targets)
        if not keep.all():
            batch = _select_rows(batch, keep, len(examples))
            prompts = [p for p, k in zip(prompts, keep, strict=True) if k]
            targets = [t for t, k in zip(targets, keep, strict=True) if k]
        batch.update(tokens)
        batch["dropped_ID"] = torch.tensor(
            [int(ex["ID"]) for ex, k in zip(examples, keep, strict=True) if not k],
            dtype=torch.int64,
        )
        if self.keep_chat_text:
            batch["prompt"], batch["target"] = prompts, targets
        return batch

    def __repr__(self) -> str:
        return (
            f"ChatCollator({self.store!r}, tokenizer={type(self.template).__name__}, "
            f"image_token={self.image_token!r} x {self.image_token_count}, "
            f"max_length={self.max_length}, box_scale={self.box_scale!r})"
        )


def _select_rows(batch: dict, keep: np.ndarray, n: int) -> dict:
    """``batch`` with only the ``keep`` rows of every per-example tensor or list; ``group_index``
    renumbered 0..G-1 in order of first appearance."""
    index = torch.from_numpy(np.flatnonzero(keep))
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == n:
            out[key] = value[index]
        elif isinstance(value, list) and len(value) == n:
            out[key] = [v for v, k in zip(value, keep, strict=True) if k]
        else:
            out[key] = value
    if "group_index" in out:
        first_seen: dict[int, int] = {}
        out["group_index"] = torch.tensor(
            [first_seen.setdefault(g, len(first_seen)) for g in out["group_index"].tolist()],
            dtype=torch.int64,
        )
    return out

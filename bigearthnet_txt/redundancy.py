"""BLEU-based redundancy weights for the several texts of one patch (SPEC §4).

Within a group ``G`` of texts (default: the texts of one patch), text ``i`` gets

* the uniqueness ``u_i = 1 - BLEU(t_i; refs = G minus t_i) / 100``, where BLEU is
  ``sacrebleu.sentence_bleu`` with its defaults (4-grams, ``13a`` tokeniser, ``exp`` smoothing,
  effective order). The references are the *other rows* of the group: an identical copy of
  ``t_i`` elsewhere in the group stays a reference, so duplicated texts get ``u = 0``;
* the weight ``w_i = u_i / sum(u)`` (uniform when ``sum(u) = 0``), or ``softmax(u / temperature)``
  within the group when a temperature is given.

A group of one text has no references: its uniqueness is 1 and its weight is 1.

The numbers equal a loop over ``sacrebleu.sentence_bleu`` (to float rounding), but the n-gram
statistics of all groups are computed at once with numpy: texts are deduplicated, every
distinct space-separated word is tokenised once with sacrebleu's own ``13a`` tokeniser (see
``_token_ids`` for why this gives the same tokens), n-grams are mapped to integer ids, and the
clipped matches against the other texts of the group come from one sort of the
``(n-gram, row)`` keys of every n-gram occurrence, per chunk of about ``_CHUNK_ROWS`` rows sorted
by group. A row's count of an n-gram is the length of its run of equal keys; inside a
``(group, n-gram)`` run the largest count among the *other* rows is the run's largest count,
except for a row holding the largest count alone, whose best other count is the second largest.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import lru_cache
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_ORDER = 4
"""Largest n-gram order (sacrebleu's default)."""

_CHUNK_ROWS = 8_192
"""Rows (whole groups) processed per vectorised step; bounds the memory of one step."""

_KEY_BITS = 63
"""Bits available in the packed sort keys; a chunk that needs more is split in two."""


@lru_cache(maxsize=1)
def _tokenizer():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def uniqueness(texts: Sequence[str]) -> np.ndarray:
    """Uniqueness of each text of one group.

    Args:
        texts: the ``N`` texts of one group (list, tuple or numpy str/object array).

    Returns:
        ``[N]`` float64 array, ``u_i = 1 - sentence_bleu(t_i, others).score / 100`` in [0, 1];
        ``[1.0]`` for a single text.
    """
    return uniqueness_batch(texts, np.zeros(len(texts), dtype=np.int64))


def weights(texts: Sequence[str], temperature: float | None = None) -> np.ndarray:
    """Redundancy weights of the texts of one group; they sum to 1.

    Args:
        texts: the ``N`` texts of one group.
        temperature: ``None`` for ``u / sum(u)``; a positive float for ``softmax(u / temperature)``.

    Returns:
        ``[N]`` float64 array.
    """
    return weights_batch(texts, np.zeros(len(texts), dtype=np.int64), temperature)


def uniqueness_batch(
    texts: Sequence[str], group_ids: Sequence[Hashable] | np.ndarray
) -> np.ndarray:
    """Uniqueness of every text of a table, each against the other texts of its group.

    Args:
        texts: ``N`` texts (list, tuple, numpy str/object array or Arrow string array).
        group_ids: ``N`` group keys: a 1-D array or sequence of any hashable values (ints,
            strings, tuples such as ``(patch_id, type)``), or a 2-D ``[N, K]`` array whose rows
            are composite keys. Groups need not be contiguous.

    Returns:
        ``[N]`` float64 array aligned with ``texts``.
    """
    texts = _as_text_array(texts)
    groups, _ = _group_codes(group_ids, len(texts))
    return _uniqueness(texts, groups)


def weights_batch(
    texts: Sequence[str],
    group_ids: Sequence[Hashable] | np.ndarray,
    temperature: float | None = None,
) -> np.ndarray:
    """Redundancy weights of every text of a table, normalised within each group.

    Args:
        texts: ``N`` texts.
        group_ids: ``N`` group keys, as for :func:`uniqueness_batch`.
        temperature: ``None`` for ``u / sum(u)`` (uniform where ``sum(u) = 0``); a positive float
            for ``softmax(u / temperature)`` within the group.

    Returns:
        ``[N]`` float64 array aligned with ``texts``; each group's weights sum to 1.
    """
    texts = _as_text_array(texts)
    groups, num_groups = _group_codes(group_ids, len(texts))
    return normalise(_uniqueness(texts, groups), groups, num_groups, temperature)


def normalise(
    u: np.ndarray, groups: np.ndarray, num_groups: int, temperature: float | None = None
) -> np.ndarray:
    """Turn uniqueness values into weights that sum to 1 within each group.

    Args:
        u: ``[N]`` float64 uniqueness values.
        groups: ``[N]`` int64 group codes in ``0 .. num_groups - 1``.
        num_groups: number of groups ``G``.
        temperature: ``None`` for ``u / sum(u)`` (uniform where the sum is 0); a positive float
            for ``softmax(u / temperature)``.

    Returns:
        ``[N]`` float64 weights.
    """
    u = np.asarray(u, dtype=np.float64)
    sizes = np.bincount(groups, minlength=num_groups).astype(np.float64)
    if temperature is None:
        sums = np.bincount(groups, weights=u, minlength=num_groups)
        safe = np.where(sums > 0, sums, 1.0)
        return np.where(sums[groups] > 0, u / safe[groups], 1.0 / sizes[groups])
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    z = u / temperature
    zmax = np.full(num_groups, -np.inf)
    np.maximum.at(zmax, groups, z)
    e = np.exp(z - zmax[groups])
    return e / np.bincount(groups, weights=e, minlength=num_groups)[groups]


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------


def _as_text_array(texts) -> pa.Array:
    """Texts as an Arrow large-string array (from a list, tuple, numpy or Arrow array)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):
        if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
            raise TypeError(f"texts must be strings, got Arrow type {texts.type}")
        return texts.cast(pa.large_string())
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise ValueError(f"texts must be 1-D, got shape {texts.shape}")
        texts = texts.tolist()
    try:
        return pa.array(list(texts), type=pa.large_string())
    except (pa.ArrowTypeError, pa.ArrowInvalid) as err:
        raise TypeError(f"texts must be str: {err}") from None


def _group_codes(group_ids, n: int) -> tuple[np.ndarray, int]:
    """Map ``n`` group keys to int64 codes ``0 .. G-1``; returns ``(codes [n], G)``."""
    if isinstance(group_ids, np.ndarray) and group_ids.dtype != object:
        keys = group_ids.reshape(len(group_ids), -1) if group_ids.ndim != 1 else group_ids
        if len(keys) != n:
            raise ValueError(f"{len(keys)} group ids for {n} texts")
        if keys.ndim == 2:
            _, codes = np.unique(keys, axis=0, return_inverse=True)
        else:
            _, codes = np.unique(keys, return_inverse=True)
        codes = codes.reshape(-1).astype(np.int64)
    else:
        keys = group_ids.tolist() if isinstance(group_ids, np.ndarray) else list(group_ids)
        if len(keys) != n:
            raise ValueError(f"{len(keys)} group ids for {n} texts")
        codes = _string_codes(keys) if n and isinstance(keys[0], str) else None
        if codes is None:
            index: dict = {}
            codes = np.fromiter(
                (
                    index.setdefault(tuple(k) if isinstance(k, list) else k, len(index))
                    for k in keys
                ),
                dtype=np.int64,
                count=n,
            )
    return codes, int(codes.max()) + 1 if n else 0


def _string_codes(keys: list) -> np.ndarray | None:
    """Codes of string keys via Arrow's hash table; ``None`` if the keys are not all strings."""
    try:
        values = pa.array(keys, type=pa.large_string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None
    if values.null_count:
        return None
    return _dictionary_encode(values)[0]


# ---------------------------------------------------------------------------------------------
# Tokens and n-grams
# ---------------------------------------------------------------------------------------------


def _token_ids(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicate texts and give each distinct text its ``13a`` tokens as integer ids.

    sacrebleu tokenises ``text.rstrip()`` with ``Tokenizer13a``. Its rules look at one
    character, or at two adjacent characters, at least one of which is neither a space nor
    able to start a match after a space (``[.,]`` then a non-digit, a non-digit then ``[.,]``,
    a digit then ``-``), and its replacements (``<skipped>``, ``-\\n``, HTML entities) contain no
    space. So a text's tokens are the tokens of its space-separated words, in order, each word
    tokenised on its own. Words repeat far more than texts, so each distinct word is
    tokenised once, with sacrebleu's own tokeniser.

    Returns:
        ``(codes [N] int64 index of each text's distinct text, ids [T] int64 token ids of the
        distinct texts laid end to end, offsets [K+1] int64 into ids)``.
    """
    codes, distinct = _dictionary_encode(texts)
    stripped = pa.array([t.rstrip() for t in distinct.to_pylist()], type=pa.large_string())
    split = pc.split_pattern(stripped, " ")
    words_per_text = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int64)
    word_codes, words = _dictionary_encode(pc.list_flatten(split))
    tok = _tokenizer()
    vocab: dict[str, int] = {}
    word_tokens = [
        [vocab.setdefault(x, len(vocab)) for x in tok(w).split()] for w in words.to_pylist()
    ]
    word_offsets = np.zeros(len(word_tokens) + 1, dtype=np.int64)
    np.cumsum(
        np.fromiter(map(len, word_tokens), dtype=np.int64, count=len(word_tokens)),
        out=word_offsets[1:],
    )
    word_flat = np.fromiter(
        chain.from_iterable(word_tokens), dtype=np.int64, count=int(word_offsets[-1])
    )

    positions, occurrence = _ragged_take(word_offsets, word_codes)
    k = len(distinct)
    text_of_word = np.repeat(np.arange(k, dtype=np.int64), words_per_text)
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.bincount(text_of_word[occurrence], minlength=k), out=offsets[1:])
    return codes, word_flat[positions], offsets


def _dictionary_encode(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """``(codes [N] int64, distinct values)`` of a string array; nulls are rejected."""
    if values.null_count:
        raise TypeError("texts must be str, got None")
    encoded = values.dictionary_encode()
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary


def _ragged_take(offsets: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the items of segments ``which`` of a ragged array.

    Returns ``(positions [M] int64 into the flat array, segment number [M] int64 into which)``.
    """
    starts = offsets[which]
    lengths = offsets[which + 1] - starts
    owner = np.repeat(np.arange(len(which), dtype=np.int64), lengths)
    first = np.zeros(len(which) + 1, dtype=np.int64)
    np.cumsum(lengths, out=first[1:])
    positions = np.arange(int(first[-1]), dtype=np.int64) - first[owner] + starts[owner]
    return positions, owner


def _factorize(keys: np.ndarray) -> np.ndarray:
    """``[M]`` int64 codes ``0..U-1`` of non-negative int64 ``keys``, in ascending key order."""
    m = len(keys)
    if m == 0:
        return keys.copy()
    pb = _bits(m)
    if _bits(int(keys.max()) + 1) + pb > 63:
        return np.unique(keys, return_inverse=True)[1].reshape(-1)
    packed = (keys << pb) | np.arange(m, dtype=np.int64)
    packed.sort()
    key = packed >> pb
    new = np.empty(m, dtype=np.int64)
    new[0] = 0
    np.not_equal(key[1:], key[:-1], out=new[1:])
    codes = np.empty(m, dtype=np.int64)
    codes[packed & ((1 << pb) - 1)] = np.cumsum(new)
    return codes


def _ngram_occurrences(ids: np.ndarray, lengths: np.ndarray):
    """Every n-gram (orders 1..4) of each of ``K`` texts, text by text.

    Args:
        ids: ``[T]`` int64 token ids of the ``K`` texts laid end to end.
        lengths: ``[K]`` int64 token counts.

    Returns:
        ``(offsets [K+1], gram [P], order_of [G])``, all int64: text ``k``'s n-grams (with
        repeats) are ``gram[offsets[k]:offsets[k+1]]``; ``gram`` ids are equal exactly when the
        n-grams (token sequences) are equal, across texts and orders, and ``order_of[g]`` is the
        order (1..4) of n-gram ``g``.
    """
    k = len(lengths)
    text_of = np.repeat(np.arange(k, dtype=np.int64), lengths)
    starts = np.zeros(k, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    remaining = lengths[text_of] - (np.arange(len(ids), dtype=np.int64) - starts[text_of])
    width = int(ids.max()) + 1 if len(ids) else 1
    by_position = np.full((len(ids), MAX_ORDER), -1, dtype=np.int64)  # n-grams starting there
    prev = ids
    base = 0
    orders = []
    for n in range(1, MAX_ORDER + 1):
        at = np.flatnonzero(remaining >= n)
        if n == 1:
            local = ids
        else:
            local = _factorize(prev[at] * width + ids[at + n - 1])
            prev = np.zeros_like(ids)
            prev[at] = local
        by_position[at, n - 1] = local + base
        used = int(local.max()) + 1 if len(local) else 0
        orders.append(np.full(used, n, dtype=np.int64))
        base += used
    present = by_position >= 0
    orders_in_text = np.minimum(lengths, MAX_ORDER)
    offsets = np.zeros(k + 1, dtype=np.int64)  # a text of L tokens has sum(L - n + 1) n-grams
    np.cumsum(orders_in_text * (2 * lengths - orders_in_text + 1) // 2, out=offsets[1:])
    order_of = np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64)
    return offsets, by_position[present], order_of


# ---------------------------------------------------------------------------------------------
# BLEU statistics
# ---------------------------------------------------------------------------------------------


def _uniqueness(texts: pa.Array, groups: np.ndarray) -> np.ndarray:
    """``[N]`` float64 uniqueness of ``texts`` grouped by int64 ``groups`` codes."""
    n = len(texts)
    out = np.ones(n, dtype=np.float64)
    if n == 0:
        return out
    codes, flat, offsets = _token_ids(texts)
    by_group = np.argsort(groups, kind="stable")
    group_end = np.cumsum(np.bincount(groups))
    cuts = group_end[np.searchsorted(group_end, np.arange(_CHUNK_ROWS, n, _CHUNK_ROWS))]
    bounds = np.unique(np.concatenate([[0], cuts, [n]]))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = by_group[a:b]
        out[rows] = _chunk_uniqueness(codes[rows], groups[rows], flat, offsets)
    sizes = np.bincount(groups)
    out[sizes[groups] == 1] = 1.0
    return out


def _chunk_uniqueness(
    text_codes: np.ndarray, groups: np.ndarray, flat: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Uniqueness of ``R`` rows forming whole groups, sorted by group.

    Args:
        text_codes: ``[R]`` int64 index of each row's distinct text.
        groups: ``[R]`` int64 group codes, ascending (whole groups only).
        flat, offsets: token ids of all distinct texts (see ``_token_ids``).

    Returns:
        ``[R]`` float64; rows of one-text groups get meaningless values (set by the caller).
    """
    distinct, local_text = np.unique(text_codes, return_inverse=True)
    positions, _ = _ragged_take(offsets, distinct)
    lengths = offsets[distinct + 1] - offsets[distinct]
    grams = _ngram_occurrences(flat[positions], lengths)
    grp = np.zeros(len(groups), dtype=np.int64)
    np.cumsum(groups[1:] != groups[:-1], out=grp[1:])
    correct = _clipped_matches(*grams, local_text.reshape(-1), grp)
    if correct is None:
        half = np.searchsorted(groups, groups[len(groups) // 2])
        half = half if half > 0 else np.searchsorted(groups, groups[0], side="right")
        return np.concatenate(
            [
                _chunk_uniqueness(text_codes[:half], groups[:half], flat, offsets),
                _chunk_uniqueness(text_codes[half:], groups[half:], flat, offsets),
            ]
        )
    hyp_len = lengths[local_text.reshape(-1)]
    ref_len = _closest_ref_len(hyp_len, grp)
    total = np.maximum(hyp_len[:, None] - np.arange(MAX_ORDER)[None, :], 0)
    return np.clip(1.0 - _sentence_bleu(correct, total, hyp_len, ref_len) / 100.0, 0.0, 1.0)


def _bits(n: int) -> int:
    return max(int(n - 1).bit_length(), 1)


def _clipped_matches(gram_offsets, gram, order_of, row_text, row_group) -> np.ndarray | None:
    """``[R, 4]`` float64 clipped n-gram matches of each row against the other rows of its group.

    The reference count of an n-gram is its largest count among the other rows of the group
    (sacrebleu merges references with ``max``); the match is ``min(own count, reference count)``.
    Every n-gram occurrence of every row is packed into one integer ``n-gram | row`` (uint32
    when it fits, else int64) and sorted. Rows are sorted by group, so equal keys are one row's
    count of an n-gram and, inside an n-gram's block, the rows of one group follow each other;
    inside such a ``(group, n-gram)`` run every row but a sole largest count matches its whole
    count, while that one matches the second largest count (0 if it is alone).
    Returns ``None`` when the keys of a chunk of several groups do not fit in ``_KEY_BITS``.

    Args:
        gram_offsets, gram, order_of: n-grams per distinct text (``_ngram_occurrences``).
        row_text: ``[R]`` int64 distinct text of each row.
        row_group: ``[R]`` int64 group of each row, ascending from 0.
    """
    r = len(row_text)
    if r == 0:
        return np.zeros((0, MAX_ORDER))
    rb = _bits(r)
    gb = _bits(len(order_of))
    if gb + rb > _KEY_BITS:
        if row_group[-1] > 0:
            return None
        raise ValueError(f"a group of {r} texts is too large for 64-bit sort keys")
    occurrence, row = _ragged_take(gram_offsets, row_text)
    dtype = np.uint32 if gb + rb <= 32 else np.int64
    key = gram[occurrence].astype(dtype)
    del occurrence
    key <<= dtype(rb)
    key |= row.astype(dtype)
    del row
    key.sort()
    first = np.ones(len(key), dtype=bool)  # first occurrence of an (n-gram, row)
    np.not_equal(key[1:], key[:-1], out=first[1:])
    at = np.flatnonzero(first)
    count = np.diff(at, append=len(key))
    key = key[at].astype(np.int64)
    row = key & ((1 << rb) - 1)
    key >>= rb
    slot = row * MAX_ORDER + order_of[key] - 1
    group = row_group[row]
    new_run = np.ones(len(key), dtype=bool)  # first row of a (group, n-gram)
    new_run[1:] = (key[1:] != key[:-1]) | (group[1:] != group[:-1])
    starts = np.flatnonzero(new_run)
    run = np.cumsum(new_run) - 1
    largest = np.maximum.reduceat(count, starts)[run]
    top = count == largest
    sole = (np.add.reduceat(top, starts) == 1)[run] & top
    second = np.maximum.reduceat(np.where(top, 0, count), starts)[run]
    match = np.where(sole, second, count)
    return np.bincount(slot, weights=match, minlength=r * MAX_ORDER).reshape(r, MAX_ORDER)


def _closest_ref_len(hyp_len: np.ndarray, grp: np.ndarray) -> np.ndarray:
    """``[R]`` int64: the length among the other rows of the group closest to each row's length.

    Ties go to the shorter length, as in sacrebleu. Rows alone in their group get 0.
    """
    srt = np.lexsort((hyp_len, grp))
    g, length = grp[srt], hyp_len[srt]
    same_prev = np.zeros(len(g), dtype=bool)
    same_prev[1:] = g[1:] == g[:-1]
    same_next = np.zeros(len(g), dtype=bool)
    same_next[:-1] = same_prev[1:]
    prev_len = np.roll(length, 1)
    next_len = np.roll(length, -1)
    d_prev = np.where(same_prev, length - prev_len, np.iinfo(np.int64).max)
    d_next = np.where(same_next, next_len - length, np.iinfo(np.int64).max)
    closest = np.where(d_prev <= d_next, prev_len, next_len)
    closest[~(same_prev | same_next)] = 0
    out = np.empty_like(hyp_len)
    out[srt] = closest
    return out


def _sentence_bleu(correct, total, hyp_len, ref_len) -> np.ndarray:
    """``[R]`` float64 BLEU in [0, 100] from sufficient statistics, as sacrebleu's
    ``compute_bleu`` with ``exp`` smoothing and effective order.

    Args:
        correct: ``[R, 4]`` clipped matches; total: ``[R, 4]`` hypothesis n-gram counts;
        hyp_len, ref_len: ``[R]`` int64 hypothesis and closest reference lengths.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(
            hyp_len < ref_len,
            np.where(hyp_len > 0, np.exp(1.0 - ref_len / np.maximum(hyp_len, 1)), 0.0),
            1.0,
        )
        zero = correct == 0
        halvings = np.cumsum(zero, axis=1)
        precision = np.where(zero, 100.0 / (np.exp2(halvings) * total), 100.0 * correct / total)
        eff_order = np.minimum(hyp_len, MAX_ORDER)
        used = np.arange(MAX_ORDER)[None, :] < eff_order[:, None]
        log_sum = np.where(used, np.log(np.where(used, precision, 1.0)), 0.0).sum(axis=1)
        score = bp * np.exp(log_sum / np.maximum(eff_order, 1))
    return np.where(correct.any(axis=1), score, 0.0)

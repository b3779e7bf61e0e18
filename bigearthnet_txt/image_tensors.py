"""Native-resolution store arrays → 120×120 float32 training tensors (resampled, normalised).

The same torch code runs on the CPU (inside a ``DataLoader`` worker) or on the GPU after transfer.

* :func:`resolve_bands` — a preset name of ``BAND_PRESETS`` or an explicit band list → band names.
  The official loader's names (``RGB``, ``S2-10m20m``, ``S1S2-10m20m``, ``all``) give exactly its
  channel order (``OFFICIAL_BAND_PRESETS``); ``S2-10m-first``/``S1S2-10m-first`` are this
  package's own orders with the 10 m bands first.
* :class:`BandLayout` — which store arrays and channels those bands need, and the output tensors:
  ``stacked`` (default) gives one ``image`` tensor with every band in the order given (as the
  official ``stack_and_interpolate``); ``stacked=False`` gives the S2 bands in ``s2`` and the S1
  bands in ``s1``, each in the order given.
* :func:`resolve_stats` — ``"official"`` → ``OFFICIAL_BAND_STATS`` (the official loader's published
  table), or a ``{band: {"mean", "std"}}`` mapping as given.
* :class:`ImageTransform` — ``{array: tensor [B, c, n, n]}`` holding only the layout's channels
  (``BandLayout.select``) → ``{"image": float32 [B, C, 120, 120], "has_s1": bool [B]}`` (or
  ``"s2"``/``"s1"``): ``(x - mean) / std`` per band (with the official table exactly the arithmetic
  of torchvision's ``Normalize``; else fused in one pass), each array upsampled to 120×120 as the
  official ``stack_and_interpolate`` does (``F.interpolate``; ``nearest`` is a pixel repeat,
  ``bilinear``/``bicubic`` use ``align_corners=True``). Normalising the smaller native arrays before
  upsampling gives the same values: bit-identical for ``nearest`` (exact arithmetic), within
  float32 rounding (≤ 1e-5) for the smooth modes, since interpolation commutes with the per-band
  affine map. S1 pixels that are NaN (patch without S1) become 0 after normalisation and
  ``has_s1`` is False for patches whose S1 is all NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data

from bigearthnet_txt.schema import (
    ARRAY_OF_BAND,
    BAND_PRESETS,
    OFFICIAL_BAND_STATS,
    PATCH_SIZE,
    S1,
    S1_BANDS,
    S2_ARRAYS,
)

RESAMPLING_MODES: tuple[str, ...] = ("nearest", "bilinear", "bicubic")
ARRAY_BANDS: dict[str, tuple[str, ...]] = {a.name: a.bands for a in (*S2_ARRAYS, S1)}


def resolve_bands(bands: str | Sequence[str]) -> tuple[str, ...]:
    """Band names of a preset or an explicit list (validated, no repeats)."""
    if isinstance(bands, str):
        if bands not in BAND_PRESETS:
            raise KeyError(f"unknown band preset {bands!r}; expected one of {tuple(BAND_PRESETS)}")
        return BAND_PRESETS[bands]
    names = tuple(bands)
    unknown = [b for b in names if b not in ARRAY_OF_BAND]
    if unknown or not names:
        raise KeyError(f"unknown bands {unknown}; expected names from {tuple(ARRAY_OF_BAND)}")
    if len(set(names)) != len(names):
        raise ValueError(f"bands repeat: {names}")
    return names


def resolve_stats(
    stats: str | Mapping[str, Mapping[str, float]] | None,
) -> Mapping[str, Mapping[str, float]] | None:
    """``"official"`` → ``OFFICIAL_BAND_STATS``; a mapping or ``None`` as given."""
    if isinstance(stats, str):
        if stats != "official":
            raise ValueError(f"stats must be 'official' or a mapping, got {stats!r}")
        return OFFICIAL_BAND_STATS
    return stats


@dataclass(frozen=True)
class BandLayout:
    """The output bands in channel order, and whether they form one ``image`` tensor (``stacked``)
    or an ``s2`` and an ``s1`` tensor."""

    bands: tuple[str, ...]
    stacked: bool = True

    @classmethod
    def of(cls, bands: str | Sequence[str], *, stacked: bool = True) -> BandLayout:
        return cls(resolve_bands(bands), stacked)

    @property
    def s2(self) -> tuple[str, ...]:
        return tuple(b for b in self.bands if b not in S1_BANDS)

    @property
    def s1(self) -> tuple[str, ...]:
        return tuple(b for b in self.bands if b in S1_BANDS)

    def outputs(self) -> dict[str, tuple[str, ...]]:
        """``{"image": bands}``, or ``{"s2": bands, "s1": bands}`` for the non-empty modalities."""
        if self.stacked:
            return {"image": self.bands}
        return {key: bands for key, bands in (("s2", self.s2), ("s1", self.s1)) if bands}

    @property
    def arrays(self) -> tuple[str, ...]:
        """Store arrays to read, in store order."""
        wanted = {ARRAY_OF_BAND[b].name for b in (*self.s2, *self.s1)}
        return tuple(name for name in ARRAY_BANDS if name in wanted)

    def channels(self, array: str) -> tuple[str, ...]:
        """The bands of ``array`` the layout uses, in the array's own order."""
        own = ARRAY_BANDS[array]
        used = set(self.bands)
        return tuple(b for b in own if b in used)

    def select(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Keep only the used channels of each read array (``[B, c, n, n]``)."""
        out = {}
        for name in self.arrays:
            own = ARRAY_BANDS[name]
            idx = [own.index(b) for b in self.channels(name)]
            values = arrays[name]
            out[name] = values if len(idx) == len(own) else values[:, idx]
        return out


def empty_output(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor; inside a ``DataLoader`` worker on the CPU it is allocated in
    shared memory, so handing the batch to the main process needs no further copy (as
    ``default_collate`` does)."""
    if device.type == "cpu" and torch.utils.data.get_worker_info() is not None:
        numel = math.prod(shape)
        storage = torch.UntypedStorage._new_shared(numel * 4)
        return torch.empty(0, dtype=torch.float32).set_(storage, 0, shape)
    return torch.empty(shape, dtype=torch.float32, device=device)


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32. uint16 tensors off the CPU go through an int16 view (bit-identical), since
    accelerator kernels for unsigned 16-bit integers are sparse."""
    if x.dtype == torch.uint16 and x.device.type != "cpu":
        return uint16_bits_to_float32(x.view(torch.int16))
    return x.to(torch.float32)


def uint16_bits_to_float32(bits: torch.Tensor) -> torch.Tensor:
    """float32 values of uint16 data held in an int16 tensor (negative values wrap to +65536)."""
    values = bits.to(torch.float32)
    return torch.where(values < 0, values + 65536.0, values)


def upsample_into(out: torch.Tensor, x: torch.Tensor, mode: str = "nearest") -> None:
    """Write ``x`` (``[B, C, n, n]``) upsampled into ``out`` (``[B, C, size, size]``, maybe a view):
    ``F.interpolate`` as the official ``stack_and_interpolate`` calls it (``align_corners=True`` for
    ``bilinear``/``bicubic``); ``nearest`` as an equal pixel repeat."""
    size, n = out.shape[-1], x.shape[-1]
    if n == size:
        out.copy_(x)
    elif mode == "nearest" and size % n == 0:
        f = size // n
        out.unflatten(-1, (n, f)).unflatten(-3, (n, f)).copy_(x[:, :, :, None, :, None])
    elif mode == "nearest":
        out.copy_(F.interpolate(x, size=(size, size), mode=mode))
    elif mode in RESAMPLING_MODES:
        out.copy_(F.interpolate(x, size=(size, size), mode=mode, align_corners=True))
    else:
        raise ValueError(f"resampling must be one of {RESAMPLING_MODES}, got {mode!r}")


class ImageTransform:
    """Resample and normalise selected native arrays into the ``s2``/``s1`` tensors (picklable).

    ``stats``: ``{band: {"mean", "std"}}`` (``ImageryStore.stats``) or ``"official"``;
    ``normalize=False`` keeps raw values (reflectance × 10000, dB) as float32; ``size`` the output
    side (the official ``img_size``; default 120). ``exact`` computes ``(x - mean) / std`` as
    torchvision's ``Normalize`` does (two passes; default: with the official table only); else the
    fused ``x * (1 / std) - mean / std`` (one pass, within a float32 rounding step of it).
    """

    def __init__(
        self,
        layout: BandLayout,
        stats: str | Mapping[str, Mapping[str, float]],
        *,
        resample: str = "nearest",
        normalize: bool = True,
        size: int = PATCH_SIZE,
        exact: bool | None = None,
    ):
        self.size = int(size)
        self.exact = (
            (isinstance(stats, str) or stats is OFFICIAL_BAND_STATS) if exact is None else exact
        )
        if resample not in RESAMPLING_MODES:
            raise ValueError(f"resample must be one of {RESAMPLING_MODES}, got {resample!r}")
        self.layout = layout
        self.resample = resample
        self.normalize = normalize
        stats = resolve_stats(stats)
        bands = layout.bands
        missing = [b for b in bands if normalize and b not in stats]
        if missing:
            raise KeyError(f"no statistics for bands {missing}")
        self.mean = {b: float(stats[b]["mean"]) for b in bands if normalize}
        self.std = {b: float(stats[b]["std"]) for b in bands if normalize}

    def __call__(self, native: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key, bands in self.layout.outputs().items():
            first = native[self.layout.arrays[0]]
            tensor = empty_output((first.shape[0], len(bands), self.size, self.size), first.device)
            for name in self.layout.arrays:
                wanted = self.layout.channels(name)
                if set(wanted) <= set(bands):
                    self._write(
                        tensor, bands, wanted, native[name], out if name == S1.name else None
                    )
            out[key] = tensor
        return out

    def _write(
        self,
        tensor: torch.Tensor,
        bands: tuple[str, ...],
        wanted: tuple[str, ...],
        x: torch.Tensor,
        s1_flags: dict | None,
    ) -> None:
        """Normalise the native channels ``x`` of ``wanted`` and write them, upsampled, into their
        channels of ``tensor`` (normalised straight into the output where no resampling is
        needed)."""
        if x.device.type != "cpu" or not self.normalize:
            x = as_float32(x)
        positions = [bands.index(b) for b in wanted]
        contiguous = positions == list(range(positions[0], positions[0] + len(positions)))
        nan = torch.isnan(x) if s1_flags is not None else None
        if nan is not None:
            s1_flags["has_s1"] = ~nan.flatten(1).all(dim=1)
        if self.normalize:
            mean = torch.tensor([self.mean[b] for b in wanted], dtype=torch.float32,
                                device=x.device)[:, None, None]  # fmt: skip
            std = torch.tensor([self.std[b] for b in wanted], dtype=torch.float32,
                               device=x.device)[:, None, None]  # fmt: skip
            scale = torch.tensor([1.0 / self.std[b] for b in wanted], dtype=torch.float32,
                                 device=x.device)[:, None, None]  # fmt: skip
            bias = torch.tensor([-self.mean[b] / self.std[b] for b in wanted], dtype=torch.float32,
                                device=x.device)[:, None, None]  # fmt: skip
            if contiguous and x.shape[-1] == self.size:
                target = tensor[:, positions[0] : positions[0] + len(positions)]
                if self.exact:
                    torch.sub(x, mean, out=target)
                    target.div_(std)
                else:
                    torch.addcmul(bias, x, scale, out=target)
                if nan is not None and bool(nan.any()):
                    target.nan_to_num_(nan=0.0)
                return
            x = torch.sub(x, mean).div_(std) if self.exact else torch.addcmul(bias, x, scale)
        if nan is not None:
            x = x.nan_to_num(nan=0.0)
        if contiguous:
            upsample_into(tensor[:, positions[0] : positions[0] + len(positions)], x, self.resample)
        else:
            for i, position in enumerate(positions):
                upsample_into(tensor[:, position : position + 1], x[:, i : i + 1], self.resample)

    def __repr__(self) -> str:
        return (
            f"ImageTransform({self.layout}, resample={self.resample!r}, normalize={self.normalize})"
        )

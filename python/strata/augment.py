"""On-the-fly augmentation as a transform pipeline describes it (`augment: {online: [...]}`).

A pipeline's offline ops are applied once and stored in the shards; its online ops are stored
as a description in the output's manifest.json and applied here, to each sample as it is read,
with a new draw every time (so each epoch sees other crops and flips):

    import json, strata.torch
    manifest = json.load(open("/nvme/fm/manifest.json"))   # or repo.read("fm@ready:manifest.json")
    aug = strata.augment.OnlineAugment.from_manifest(manifest)
    ds = strata.torch.ShardIterableDataset("/nvme/fm/shards", batch_size=256, transform=aug)

The ops act on the pipeline's output field (`image`), one sample ([C, H, W] or [H, W, C], as
the manifest's layout says) or a batch of them ([B, ...], each sample drawn separately), as
numpy arrays or torch tensors. They do what the same ops do offline: `random_crop` (zeros
added on each side by `padding`, then a window at a uniform position), `flip` (horizontal,
vertical or both, with a probability) and `rotate` (90, 180 or 270 degrees clockwise, with a
probability; 90 and 270 need square images).

Randomness: a numpy Generator seeded from (seed, DataLoader worker id), made in each process on
its first call, so workers draw differently and a run with the same seed and workers repeats.
"""
from __future__ import annotations

import os
from typing import Any, List, Mapping, Optional, Union

import numpy as np

__all__ = ["OnlineAugment"]

_OPS = ("random_crop", "flip", "rotate")


def _worker_id() -> int:
    try:
        import torch.utils.data as tud
    except ImportError:
        return 0
    info = tud.get_worker_info()
    return info.id if info is not None else 0


class OnlineAugment:
    """A callable that augments the `field` of a sample (a dict) or an array."""

    def __init__(self, ops: List[Mapping[str, Any]], *, field: str = "image", layout: str = "chw", seed: int = 0):
        if layout not in ("chw", "hwc"):
            raise ValueError(f"layout is chw or hwc, not {layout!r}")
        self.ops = []
        for spec in ops:
            name, params = spec["op"], dict(spec.get("params", {}))
            if name not in _OPS:
                raise ValueError(f"online op {name!r} is not one the loader applies ({', '.join(_OPS)})")
            if name == "rotate" and "angle" not in params:
                raise ValueError("online rotate needs an angle of 90, 180 or 270")
            self.ops.append((name, params))
        self.field, self.layout, self.seed = field, layout, int(seed)
        self._rng: Optional[np.random.Generator] = None
        self._pid = -1

    @classmethod
    def from_manifest(cls, manifest: Union[Mapping[str, Any], str, bytes, os.PathLike]) -> "OnlineAugment":
        """From a transform output's manifest.json (a parsed dict, its text, or a file path)."""
        import json
        if isinstance(manifest, bytes) or (isinstance(manifest, str) and manifest.lstrip().startswith("{")):
            manifest = json.loads(manifest)
        elif not isinstance(manifest, Mapping):
            with open(manifest) as f:
                manifest = json.load(f)
        aug = manifest.get("augment") or {}
        return cls(aug.get("online", []), field=aug.get("field", "image"), layout=aug.get("layout", "chw"),
                   seed=int(aug.get("seed", 0)))

    def _generator(self) -> np.random.Generator:
        if self._rng is None or self._pid != os.getpid():
            self._rng = np.random.default_rng([self.seed, _worker_id()])
            self._pid = os.getpid()
        return self._rng

    def __call__(self, sample):
        if isinstance(sample, dict):
            out = dict(sample)
            out[self.field] = self.apply(sample[self.field])
            return out
        return self.apply(sample)

    def apply(self, x):
        """Augments one sample (rank 3) or each sample of a batch (rank 4)."""
        if x.ndim == 4:
            parts = [self._one(x[i]) for i in range(x.shape[0])]
            return _stack(parts, x)
        if x.ndim != 3:
            raise ValueError(f"{self.field}: expected [C, H, W], [H, W, C] or a batch of them, got shape {tuple(x.shape)}")
        return self._one(x)

    def _one(self, x):
        rng = self._generator()
        h_axis, w_axis = (1, 2) if self.layout == "chw" else (0, 1)
        for name, p in self.ops:
            if name == "random_crop":
                size = p["size"]
                ch, cw = (size, size) if isinstance(size, int) else size
                pad = int(p.get("padding", 0))
                if pad:
                    x = _pad(x, pad, h_axis, w_axis)
                h, w = x.shape[h_axis], x.shape[w_axis]
                if h < ch or w < cw:
                    raise ValueError(f"{self.field}: {h}x{w} is smaller than the crop {ch}x{cw}")
                top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                x = _window(x, h_axis, w_axis, top, left, ch, cw)
            elif name == "flip":
                if rng.random() >= float(p.get("probability", 1.0)):
                    continue
                axis = p.get("axis", "horizontal")
                dims = {"horizontal": (w_axis,), "vertical": (h_axis,), "both": (h_axis, w_axis)}[axis]
                x = _flip(x, dims)
            else:  # rotate, clockwise
                if rng.random() >= float(p.get("probability", 1.0)):
                    continue
                angle = int(p["angle"])
                if angle in (90, 270) and x.shape[h_axis] != x.shape[w_axis]:
                    raise ValueError(f"{self.field}: rotating a {x.shape[h_axis]}x{x.shape[w_axis]} image by {angle} "
                                     "degrees changes its shape; the loader needs square images for it")
                x = _rot90(x, -(angle // 90), h_axis, w_axis)
        return x


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _pad(x, pad, h_axis, w_axis):
    if _is_torch(x):
        import torch
        shape = list(x.shape)
        shape[h_axis] += 2 * pad
        shape[w_axis] += 2 * pad
        out = torch.zeros(shape, dtype=x.dtype, device=x.device)
        _window(out, h_axis, w_axis, pad, pad, x.shape[h_axis], x.shape[w_axis])[...] = x
        return out
    widths = [(0, 0)] * x.ndim
    widths[h_axis] = widths[w_axis] = (pad, pad)
    return np.pad(x, widths)


def _window(x, h_axis, w_axis, top, left, h, w):
    index = [slice(None)] * x.ndim
    index[h_axis] = slice(top, top + h)
    index[w_axis] = slice(left, left + w)
    return x[tuple(index)]


def _flip(x, dims):
    if _is_torch(x):
        import torch
        return torch.flip(x, dims)
    return np.flip(x, dims)


def _rot90(x, k, h_axis, w_axis):
    if _is_torch(x):
        import torch
        return torch.rot90(x, k, (h_axis, w_axis))
    return np.rot90(x, k, (h_axis, w_axis))


def _stack(parts, like):
    if _is_torch(like):
        import torch
        return torch.stack([p.contiguous() for p in parts])
    return np.stack(parts)

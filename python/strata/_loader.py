"""strata.Loader: the C++ training loader (io_uring reads, global shuffle, rank and worker
partition, exact resume), with batches as numpy arrays over the loader's aligned buffers."""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Union

import numpy as np

from . import _strata
from ._shards import PathLike, shard_paths

HAVE_LOADER: bool = bool(getattr(_strata, "HAVE_LOADER", False))


def _need_loader():
    if not HAVE_LOADER:
        raise _strata.UnsupportedError("this build of strata has no loader module")


class Shuffle:
    """The permutation of one epoch (a keyed Feistel bijection, O(1) memory): the same for every
    world size and machine. positions(a, b) gives the records at positions [a, b)."""

    def __init__(self, n: int, seed: int, epoch: int, mode: str = "global", block_records: int = 1024,
                 window_blocks: int = 16):
        _need_loader()
        self._s = _strata._Shuffle(n, seed, epoch, mode, block_records, window_blocks)

    def __len__(self) -> int:
        return len(self._s)

    def positions(self, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        return self._s.positions(start, len(self._s) if stop is None else stop)

    def __array__(self, dtype=None):
        a = self.positions()
        return a if dtype is None else a.astype(dtype)


class Loader:
    """Batches of one rank (and DataLoader worker) in a deterministic global shuffle.

    Positions of the epoch's permutation are dealt in lockstep: rank r of W takes positions
    S+r, S+r+W, ... from the start S; its batch j goes to worker j % num_workers. The resume
    state is {"seed", "epoch", "consumed"} (positions the whole job has consumed), so a job may
    resume with another world size or worker count.

        loader = strata.Loader("/nvme/fm/shards", batch_size=256, seed=17, rank=0, world_size=1)
        loader.start(epoch=0)
        for batch in loader:              # {"image": ndarray[256, 1, 32, 32], "label": ndarray[256]}
            ...
            state = loader.state          # save it; loader.start(state) resumes after this batch

    shared_memory=True puts each batch in a shared-memory file of its own (`last["shared_fd"]`),
    which another process can map instead of copying the batch (strata.torch does so in
    DataLoader workers).
    """

    def __init__(self, source: Union[PathLike, Sequence[PathLike]], *, batch_size: int = 32, seed: int = 0,
                 shuffle: str = "global", block_records: int = 1024, window_blocks: int = 16, rank: int = 0,
                 world_size: int = 1, worker_id: int = 0, num_workers: int = 1, drop_last: bool = False,
                 pad: bool = False, prefetch_bytes: int = 256 << 20, queue_depth: int = 64, direct_io: bool = True,
                 skip_corrupt: bool = False, key: Optional[bytes] = None, shared_memory: bool = False):
        _need_loader()
        self.paths = shard_paths(source)
        self.seed = seed
        self.batch_size = batch_size
        self._l = _strata._Loader(self.paths, batch_size, seed, shuffle, block_records, window_blocks, rank,
                                  world_size, worker_id, num_workers, drop_last, pad, prefetch_bytes, queue_depth,
                                  direct_io, skip_corrupt, key, shared_memory)
        self.state: Dict[str, int] = {"seed": seed, "epoch": 0, "consumed": 0}
        self.last: Optional[Dict[str, Any]] = None  # indices, epoch, batch_index, skipped, state_after
        self._started = False

    @property
    def schema(self):
        return self._l.schema

    @property
    def num_samples(self) -> int:
        return self._l.num_samples

    def __len__(self) -> int:
        """Batches this rank and worker get from the current state to the end of its epoch."""
        return self._l.batches_from(self.state)

    def samples_from(self, state: Optional[Dict[str, int]] = None) -> int:
        return self._l.samples_from(state or self.state)

    def start(self, state: Optional[Dict[str, int]] = None, *, epoch: Optional[int] = None,
              consumed: int = 0) -> None:
        """Begins at `state` (a saved one), or at `consumed` positions into `epoch`."""
        if state is None:
            state = {"seed": self.seed, "epoch": self.state["epoch"] if epoch is None else epoch, "consumed": consumed}
        self.state = {"seed": int(state["seed"]), "epoch": int(state["epoch"]), "consumed": int(state["consumed"])}
        self._l.start(self.state)
        self._started = True

    def next(self) -> Optional[Dict[str, Any]]:
        """The next batch, or None at the end of this rank's share of the epoch."""
        if not self._started:
            self.start()
        got = self._l.next()
        if got is None:
            self._started = False
            return None
        batch, info = got
        self.last = info
        self.state = dict(info["state_after"])
        return batch

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        while True:
            b = self.next()
            if b is None:
                return
            yield b

    def get(self, records) -> Dict[str, Any]:
        """Random access: the records with these numbers, in this order, as one batch."""
        batch, info = self._l.get(np.ascontiguousarray(np.asarray(records, dtype=np.int64).reshape(-1)))
        return batch

    def stats(self) -> Dict[str, Any]:
        return self._l.stats()

    def state_dict(self) -> Dict[str, int]:
        return dict(self.state)

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.start(state)

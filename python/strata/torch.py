"""PyTorch datasets over strata shards.

Two styles, both with a deterministic global shuffle (the loader's keyed Feistel permutation of
(seed, epoch)), DistributedSampler-style ranks built in, and exact resume:

* ShardIterableDataset: the C++ loader (io_uring, aligned batch buffers) runs inside each
  DataLoader worker and yields whole batches; use it with DataLoader(batch_size=None).
* ShardDataset (map-style) with ShuffleSampler: random access by record number, for code that
  wants a classic Dataset and Sampler.
* LakeDataset: a dataset version's files straight from the lake (no transform), through a local
  cache of shards built on first use; then as ShardIterableDataset.

Batches are dicts of tensors made with torch.from_numpy over the loader's buffers: no copy in
the process that reads. In DataLoader workers the loader builds each batch in shared memory of
its own and the tensors map it, so the batch reaches the training process without a copy.

Ranks: `rank`/`world_size` arguments, else torch.distributed when initialised, else the RANK and
WORLD_SIZE environment variables, else a single process. Workers: taken from
torch.utils.data.get_worker_info() inside each worker.

Resume: state_dict() is {"seed", "epoch", "consumed"}: the positions of the epoch's permutation
the whole job has consumed (every rank in lockstep). Wrap the dataset in strata.torch.DataLoader
so the state counts exactly the batches handed to the training loop (workers prefetch ahead);
load_state_dict() continues with exactly the samples not yet seen, for any world size or worker
count.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.utils.data as tud

from . import _strata
from ._loader import HAVE_LOADER, Loader, Shuffle, _need_loader
from ._shards import Dataset as _ShardRecords
from ._shards import PathLike, shard_paths

__all__ = ["ShardIterableDataset", "LakeDataset", "ShardDataset", "ShuffleSampler", "DataLoader", "to_tensors", "rank_and_world",
           "save", "load", "AsyncCheckpointer", "load_weights", "import_torch_file"]

_STATE_KEY = "__strata_state__"


def rank_and_world(rank: Optional[int] = None, world_size: Optional[int] = None):
    """(rank, world_size): the arguments, else torch.distributed, else $RANK/$WORLD_SIZE, else (0, 1)."""
    if rank is not None and world_size is not None:
        r, w = rank, world_size
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        r, w = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        r, w = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if rank is not None:
        r = rank
    if world_size is not None:
        w = world_size
    if not 0 <= r < w:
        raise ValueError(f"rank {r} is not in [0, {w})")
    return r, w


def _shared_tensors(batch: Dict[str, Any], info: Dict[str, Any]) -> Dict[str, Any]:
    """A batch whose buffer is a memfd (Loader(shared_memory=True)) as tensors over a torch storage
    that maps it: already shared memory, so a DataLoader worker hands it to the training process
    by passing the descriptor, without the copy into fresh shared memory it makes of other
    tensors. Ragged columns (lists) go as to_tensors makes them."""
    storage = torch.UntypedStorage._new_shared_fd_cpu(info["shared_fd"], info["nbytes"])  # dups the fd
    whole = torch.empty(0, dtype=torch.uint8).set_(storage)
    out = to_tensors({k: v for k, v in batch.items() if k not in info["offsets"]})
    for name, offset in info["offsets"].items():
        a = batch[name]
        dtype = torch.from_numpy(a[:0]).dtype
        out[name] = whole[offset:offset + a.nbytes].view(dtype).view(a.shape)
    return {k: out[k] for k in batch}  # the batch's column order


def to_tensors(batch: Dict[str, Any]) -> Dict[str, Any]:
    """numpy arrays -> tensors sharing their memory (torch.from_numpy); lists stay lists."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, np.ndarray):
            if v.dtype == np.uint64:  # torch has no uint64
                v = v.astype(np.int64)
            out[k] = torch.from_numpy(v)
        elif isinstance(v, list):
            out[k] = [torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in v]
        else:
            out[k] = v
    return out


def _partition_samples(n: int, start: int, world: int, rank: int, batch: int, drop_last: bool, pad: bool) -> int:
    # The loader's partition rule (include/strata/loader.h): samples of `rank` from `start`.
    _need_loader()
    return _strata._rank_samples(n, start, world, rank, batch, drop_last, pad)


def _consumed_after(n: int, start: int, world: int, batch: int, batches: int) -> int:
    # Positions the whole job has consumed once every rank has consumed `batches` batches.
    _need_loader()
    return _strata._consumed_after(n, start, world, batch, batches)


class _Resumable:
    """Epoch and resume state shared by both dataset styles."""

    seed: int
    _num_samples: int

    def _init_state(self, seed: int):
        self.seed = int(seed)
        self.epoch = 0
        self._state = {"seed": self.seed, "epoch": 0, "consumed": 0}

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch to iterate next (as DistributedSampler.set_epoch). A saved state of
        that epoch is kept; another epoch starts from its beginning."""
        self.epoch = int(epoch)
        if self._state["epoch"] != self.epoch:
            self._state = {"seed": self.seed, "epoch": self.epoch, "consumed": 0}

    def state_dict(self) -> Dict[str, int]:
        return dict(self._state)

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"state is for seed {state['seed']}, this dataset uses seed {self.seed}")
        if not 0 <= int(state["consumed"]) <= self._num_samples:
            raise ValueError(f"state consumed {state['consumed']} is beyond the epoch ({self._num_samples} samples)")
        self._state = {"seed": self.seed, "epoch": int(state["epoch"]), "consumed": int(state["consumed"])}
        self.epoch = self._state["epoch"]

    def _advance(self, state: Dict[str, int]) -> None:
        self._state = dict(state)

    def _finish_epoch(self) -> None:
        # An epoch fully consumed: the next iteration starts the next epoch.
        self.epoch = self._state["epoch"] + 1
        self._state = {"seed": self.seed, "epoch": self.epoch, "consumed": 0}


class ShardIterableDataset(_Resumable, tud.IterableDataset):
    """Batches of `batch_size` records read by the C++ loader, this rank's and worker's share.

        ds = ShardIterableDataset("/nvme/fm/shards", batch_size=256, seed=17)
        loader = strata.torch.DataLoader(ds, num_workers=2)    # batch_size=None is implied
        for epoch in range(3):
            for batch in loader:                               # {"image": Tensor[256, ...], ...}
                ...
            # the next iteration continues with the next epoch

    Options as strata.Loader (shuffle, drop_last, pad, prefetch_bytes, queue_depth, direct_io,
    skip_corrupt, key). `transform`, if given, is called on each batch (a dict of tensors) in
    the worker.

    Workers: the C++ loader already reads and assembles batches on threads of its own while the
    training loop runs, so without a CPU-heavy `transform` num_workers=0 is the faster setting
    (on a 2-core machine, 128 KiB records came at 0.68 of the disk's rate with 2 workers and at
    its full rate with none; docs/PERFORMANCE.md, "Python and the peers"). With workers, each
    batch is built in shared memory and reaches the training process without a copy.
    """

    def __init__(self, source: Union[PathLike, Sequence[PathLike]], *, batch_size: int = 32, seed: int = 0,
                 shuffle: str = "global", rank: Optional[int] = None, world_size: Optional[int] = None,
                 drop_last: bool = False, pad: bool = False, skip_corrupt: bool = False,
                 transform: Optional[Callable[[Dict[str, Any]], Any]] = None, key: Optional[bytes] = None,
                 direct_io: bool = True, prefetch_bytes: int = 64 << 20, queue_depth: int = 64,
                 block_records: int = 1024, window_blocks: int = 16):
        _need_loader()
        super().__init__()
        self.paths = shard_paths(source)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rank, self.world_size = rank_and_world(rank, world_size)
        self.drop_last, self.pad, self.skip_corrupt = drop_last, pad, skip_corrupt
        self.transform = transform
        self.key, self.direct_io = key, direct_io
        self.prefetch_bytes, self.queue_depth = prefetch_bytes, queue_depth
        self.block_records, self.window_blocks = block_records, window_blocks
        self._num_samples = len(_ShardRecords(self.paths, key=key, direct_io=False))
        self._emit_state = False  # set by strata.torch.DataLoader
        self.skipped = 0
        self._init_state(seed)

    @property
    def num_samples(self) -> int:
        """Records in an epoch (all ranks)."""
        return self._num_samples

    def __len__(self) -> int:
        """Batches this rank gets from the current state to the end of the epoch (all workers)."""
        s = self._state
        samples = _partition_samples(self._num_samples, s["consumed"], self.world_size, self.rank, self.batch_size,
                                     self.drop_last, self.pad)
        return (samples + self.batch_size - 1) // self.batch_size

    def _loader(self, worker_id: int, num_workers: int, shared_memory: bool = False) -> Loader:
        return Loader(self.paths, batch_size=self.batch_size, seed=self.seed, shuffle=self.shuffle,
                      block_records=self.block_records, window_blocks=self.window_blocks, rank=self.rank,
                      world_size=self.world_size, worker_id=worker_id, num_workers=num_workers,
                      drop_last=self.drop_last, pad=self.pad, prefetch_bytes=self.prefetch_bytes,
                      queue_depth=self.queue_depth, direct_io=self.direct_io, skip_corrupt=self.skip_corrupt,
                      key=self.key, shared_memory=shared_memory)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        info = tud.get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start = dict(self._state)
        in_main = info is None
        # In a worker, batches go to the training process: built in shared memory, they are
        # handed over without a copy.
        loader = self._loader(worker_id, num_workers, shared_memory=not in_main)
        loader.start(start)
        while True:
            batch = loader.next()
            if batch is None:
                break
            meta = loader.last
            self.skipped += int(meta["skipped"])
            out = _shared_tensors(batch, meta) if "shared_fd" in meta else to_tensors(batch)
            if self.transform is not None:
                out = self.transform(out)
            if self._emit_state:
                out = {**out, _STATE_KEY: dict(meta["state_after"])} if isinstance(out, dict) else (out, meta["state_after"])
            elif in_main:
                self._advance(meta["state_after"])
            yield out
        if in_main and not self._emit_state:
            self._finish_epoch()


class LakeDataset(ShardIterableDataset):
    """The files of a dataset version, read from the lake through a local cache, for training
    on the files themselves (no transform): one sample per file, {"path", "data" (its bytes),
    and each of `columns` from the file's record metadata}.

        repo = strata.Repository.open("/srv/lake")
        ds = strata.torch.LakeDataset(repo, "fmnist@v1:train", "/nvme/strata-cache", columns=["label"],
                                      batch_size=256, seed=17, transform=decode)
        for batch in strata.torch.DataLoader(ds, num_workers=2):
            ...                          # {"path": [str], "data": [bytes], "label": Tensor[256]}

    The first use copies the version's files into shards under `cache_dir` (Repository.cache_version:
    once per commit, whichever process gets there first; the others wait for it), so every epoch
    and every later run reads them with the C++ loader at the local disk's speed, with the same
    shuffle, ranks and exact resume as ShardIterableDataset (whose options it takes). `key` (32
    bytes) seals the cached records; `cache_max_bytes` evicts the least recently used other
    versions beyond it. `entry` says what was cached. For map-style access use
    ShardDataset(ds.entry["shards"]).
    """

    def __init__(self, repo: Any, spec: str, cache_dir: PathLike, *, columns: Sequence[str] = (),
                 key: Optional[bytes] = None, cache_max_bytes: int = 0, shard_size: int = 256 << 20,
                 progress: bool = False, **options: Any):
        _need_loader()
        self.entry = repo.cache_version(spec, cache_dir, columns=columns, key=key, shard_size=shard_size,
                                        max_bytes=cache_max_bytes, progress=progress)
        super().__init__(self.entry["shards"], key=key, **options)


class ShardDataset(_Resumable, tud.Dataset):
    """Map-style: ds[i] is record i (a dict of tensors; labels and ints as 0-d int64 tensors);
    ds[[i, j, ...]] is a batch stacked in one aligned buffer. Pair it with ShuffleSampler.

        ds = ShardDataset("/nvme/fm/shards")
        sampler = ShuffleSampler(ds, seed=17, batch_size=256)          # yields lists of indices
        loader = strata.torch.DataLoader(ds, sampler=sampler, num_workers=2)
    """

    def __init__(self, source: Union[PathLike, Sequence[PathLike]], *, key: Optional[bytes] = None,
                 direct_io: bool = True, on_corrupt: str = "raise",
                 transform: Optional[Callable[[Dict[str, Any]], Any]] = None):
        super().__init__()
        self.records = _ShardRecords(source, key=key, direct_io=direct_io, on_corrupt=on_corrupt)
        self.transform = transform
        self._num_samples = len(self.records)
        self._init_state(0)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def schema(self):
        return self.records.schema

    @property
    def skipped(self) -> int:
        return self.records.skipped

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            rec = self.records.read(int(index))
            out = {k: torch.from_numpy(v) if isinstance(v, np.ndarray)
                   else torch.tensor(v, dtype=torch.int64) if isinstance(v, int)
                   else torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else v
                   for k, v in rec.items()}
        else:
            out = to_tensors(self.records.read_batch(index))
        return self.transform(out) if self.transform is not None else out


class ShuffleSampler(tud.Sampler):
    """This rank's record numbers for a map-style dataset, by the loader's partition rule: the
    epoch's permutation P(seed, epoch) is dealt in lockstep from the start S (rank r takes
    positions S+r, S+r+W, ...), so the whole job sees each record once per epoch, and a saved
    state resumes with another world size. With `batch_size`, yields lists (one batch each:
    use DataLoader(batch_size=None)); otherwise single indices.
    """

    def __init__(self, data_source: Union[int, Any], *, seed: int = 0, shuffle: bool = True,
                 rank: Optional[int] = None, world_size: Optional[int] = None, batch_size: Optional[int] = None,
                 drop_last: bool = False, pad: bool = False):
        self.n = data_source if isinstance(data_source, int) else len(data_source)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank, self.world_size = rank_and_world(rank, world_size)
        self.batch_size = batch_size
        self.drop_last, self.pad = drop_last, pad
        self.epoch = 0
        self.start = 0  # positions of this epoch already consumed by the job

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.start = 0
        self.epoch = int(epoch)

    def _rank_samples(self) -> int:
        return _partition_samples(self.n, self.start, self.world_size, self.rank, self.batch_size or 1,
                                  self.drop_last, self.pad)

    def indices(self) -> np.ndarray:
        """This rank's record numbers from the current start to the end of the epoch."""
        m = self._rank_samples()
        pos = self.start + self.rank + np.arange(m, dtype=np.int64) * self.world_size
        if m and self.n:
            pos = np.where(pos < self.n, pos, pos % self.n)
        if not self.shuffle:
            return pos
        if HAVE_LOADER:
            perm = Shuffle(self.n, self.seed, self.epoch).positions()
        else:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        return perm[pos]

    def __iter__(self):
        idx = self.indices()
        if self.batch_size:
            for b in range(0, len(idx), self.batch_size):
                yield idx[b:b + self.batch_size].tolist()
        else:
            yield from idx.tolist()

    def __len__(self) -> int:
        m = self._rank_samples()
        return (m + self.batch_size - 1) // self.batch_size if self.batch_size else m

    def state_after(self, items: int) -> Dict[str, int]:
        """The job's state once every rank has consumed `items` (batches, or samples without
        batch_size) from the current start."""
        per = self.batch_size or 1
        return {"seed": self.seed, "epoch": self.epoch,
                "consumed": _consumed_after(self.n, self.start, self.world_size, per, items)}

    def state_dict(self) -> Dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "consumed": self.start}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"state is for seed {state['seed']}, this sampler uses seed {self.seed}")
        self.epoch, self.start = int(state["epoch"]), int(state["consumed"])


class DataLoader(tud.DataLoader):
    """torch.utils.data.DataLoader that keeps the resume state exact: it counts what it hands to
    the training loop (workers read ahead), so state_dict() after a batch resumes right after
    it, and an epoch that ran to its end moves the state to the next epoch.

    With a ShardIterableDataset, batch_size defaults to None (the dataset makes batches). With a
    ShardDataset, pass a ShuffleSampler (with batch_size, and batch_size=None here, for batches
    read in one call; or without, and batch_size here, for per-record reads and collation).
    """

    def __init__(self, dataset, *args, **kwargs):
        if isinstance(dataset, ShardIterableDataset):
            kwargs.setdefault("batch_size", None)
            dataset._emit_state = True
        super().__init__(dataset, *args, **kwargs)
        self._strata_sampler = kwargs.get("sampler")
        if self._strata_sampler is None and len(args) >= 3:
            self._strata_sampler = args[2]

    def __iter__(self):
        ds = self.dataset
        if isinstance(ds, ShardIterableDataset):
            for batch in super().__iter__():
                if isinstance(batch, dict):
                    state = batch.pop(_STATE_KEY)
                else:
                    batch, state = batch
                ds._advance({k: int(v) for k, v in state.items()})
                yield batch
            ds._finish_epoch()
            return
        sampler = self._strata_sampler
        if not isinstance(sampler, ShuffleSampler):
            yield from super().__iter__()
            return
        items = 0
        # Batches this loader yields, counted in the sampler's items (batches or samples).
        per_yield = 1 if sampler.batch_size else (self.batch_size or 1)
        for batch in super().__iter__():
            items += per_yield
            self._state = sampler.state_after(items)
            yield batch
        sampler.set_epoch(sampler.epoch + 1)
        self._state = sampler.state_dict()

    def state_dict(self) -> Dict[str, int]:
        if isinstance(self.dataset, ShardIterableDataset):
            return self.dataset.state_dict()
        if isinstance(self._strata_sampler, ShuffleSampler):
            return dict(getattr(self, "_state", self._strata_sampler.state_dict()))
        raise TypeError("state_dict() needs a ShardIterableDataset or a ShuffleSampler")

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if isinstance(self.dataset, ShardIterableDataset):
            self.dataset.load_state_dict(state)
        elif isinstance(self._strata_sampler, ShuffleSampler):
            self._strata_sampler.load_state_dict(state)
            self._state = self._strata_sampler.state_dict()
        else:
            raise TypeError("load_state_dict() needs a ShardIterableDataset or a ShuffleSampler")


# --- checkpoints: nn.Module and optimizer state through strata's checkpoints ---
#
# A checkpoint made here holds every tensor of the model's and the optimizer's state_dict as a
# checkpoint tensor named by its path ("model/layer.weight", "optimizer/state/0/exp_avg"), and
# one state blob, "strata.torch": JSON of everything else (the structure with each tensor
# replaced by its name and torch dtype, param_groups, the step, RNG states, loader state, extra).
# Tensors go to numpy without a copy (.numpy() on CPU tensors; bfloat16 as its int16 bits, with
# the dtype recorded); the checkpointer's staging copy is the only one.

_SKELETON = "strata.torch"
_TORCH_DTYPES = {str(d): d for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                                      torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}


class _Encoder:
    def __init__(self):
        self.arrays: Dict[str, np.ndarray] = {}
        self.dtypes: Dict[str, str] = {}

    def name(self, path: str) -> str:
        name, n = path, 1
        while name in self.arrays:
            n += 1
            name = f"{path}#{n}"
        return name

    def tensor(self, t: "torch.Tensor", path: str) -> Dict[str, Any]:
        name = self.name(path)
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            a = t.view(torch.int16).numpy()
            self.dtypes[name] = "BF16"
        elif str(t.dtype) in _TORCH_DTYPES:
            a = t.numpy()
        else:
            raise TypeError(f"{path}: tensors of {t.dtype} cannot be checkpointed")
        self.arrays[name] = a
        return {"__tensor__": name, "dtype": str(t.dtype)}

    def encode(self, x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            return self.tensor(x, path)
        if isinstance(x, dict):
            return {"__dict__": [[self.encode(k, path), self.encode(v, f"{path}/{k}")] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(x)]
        if isinstance(x, np.ndarray):
            name = self.name(path)
            self.arrays[name] = x if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(x.shape)
            return {"__ndarray__": name}
        if isinstance(x, (np.integer, np.floating, np.bool_)):
            return x.item()
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"{path}: {type(x).__name__} cannot be checkpointed (tensors, arrays, dicts, lists, "
                        "tuples, numbers and strings can)")


def _decode(x: Any, tensor: Callable[[str, str], "torch.Tensor"]) -> Any:
    if isinstance(x, list):
        return [_decode(v, tensor) for v in x]
    if isinstance(x, dict):
        if "__tensor__" in x:
            return tensor(x["__tensor__"], x["dtype"])
        if "__ndarray__" in x:
            return tensor(x["__ndarray__"], "numpy")
        if "__tuple__" in x:
            return tuple(_decode(v, tensor) for v in x["__tuple__"])
        if "__dict__" in x:
            return {_decode(k, tensor): _decode(v, tensor) for k, v in x["__dict__"]}
    return x


def _from_array(a: np.ndarray, dtype: str) -> "torch.Tensor":
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays (mapped weights)
        if dtype == "torch.bfloat16":
            return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(a)


def _rng_state() -> Dict[str, Any]:
    import random

    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    import random

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _request(model, optimizer, step, loader, rng, extra, rank: int = 0, world_size: int = 1):
    """(arrays, dtypes, skeleton JSON, names shared by every rank). In a sharded save the model and
    optimizer are the same on every rank (their tensors are shared out by _shard); the loader
    state, RNG states and `extra` are the rank's own, named under rank<r>/."""
    import json

    enc = _Encoder()
    doc: Dict[str, Any] = {"format": 1, "step": int(step)}
    if model is not None:
        sd = model.state_dict() if hasattr(model, "state_dict") else model
        doc["model"] = enc.encode(dict(sd), "model")
    if optimizer is not None:
        doc["optimizer"] = enc.encode(optimizer.state_dict(), "optimizer")
    shared = set(enc.arrays)
    own = f"rank{rank}/" if world_size > 1 else ""
    if loader is not None:
        doc["loader"] = enc.encode(loader.state_dict() if hasattr(loader, "state_dict") else loader, own + "loader")
    if rng:
        doc["rng"] = enc.encode(_rng_state(), own + "rng")
    if extra is not None:
        doc["extra"] = enc.encode(extra, own + "extra")
    return enc.arrays, enc.dtypes, json.dumps(doc).encode(), shared


# In a sharded save, tensors of at least this size (and as many rows as ranks) are cut along
# dim 0, one slice per rank; smaller ones are written whole by one rank each, in turn.
_SHARD_MIN_BYTES = 1 << 20


def _shard(arrays: Dict[str, np.ndarray], shared: set, rank: int, world_size: int):
    """This rank's part of a sharded save: (arrays, global_shapes, offsets). Every rank computes
    the same plan from the same names and shapes, so the parts cover each tensor exactly once."""
    out: Dict[str, np.ndarray] = {}
    global_shapes: Dict[str, List[int]] = {}
    offsets: Dict[str, List[int]] = {}
    turn = 0
    for name in sorted(arrays):
        a = arrays[name]
        if name not in shared:
            out[name] = a  # the rank's own (rank<r>/...)
            continue
        if a.ndim == 0 or a.nbytes < _SHARD_MIN_BYTES or a.shape[0] < world_size:
            if turn % world_size == rank:
                out[name] = a
            turn += 1
            continue
        rows = a.shape[0]
        lo, hi = rows * rank // world_size, rows * (rank + 1) // world_size
        out[name] = a[lo:hi]
        global_shapes[name] = list(a.shape)
        offsets[name] = [lo] + [0] * (a.ndim - 1)
    return out, global_shapes, offsets


class AsyncCheckpointer:
    """Checkpoints of a model and optimizer into run `run`, saved asynchronously.

        ckpt = strata.torch.AsyncCheckpointer(repo, "exp1")
        start = ckpt.resume(model, optimizer)          # step of the newest valid checkpoint, or None
        for step in ...:
            ...
            if step % 100 == 0:
                ckpt.save(step, model, optimizer, metrics={"loss": loss})   # returns after the copy
        ckpt.close()                                   # waits; raises a failed save's error

    save() returns once the tensors are copied into the staging buffer: the training loop may
    then update them. A save that failed raises on the next save(), wait() or close().

    Sharded (world_size > 1, e.g. data-parallel training): every rank calls save() with the same
    model and optimizer, and writes only its share: a 1/world_size slice (dim 0) of each large
    tensor and, in turn, whole small ones; its loader state, RNG states and `extra` are its own.
    The checkpoint becomes visible when all ranks' parts are durable, and load() reads it with
    any number of ranks. rank defaults to torch.distributed's, else $RANK."""

    def __init__(self, repo: Any, run: str, *, staging_bytes: int = 0, max_in_flight: int = 0, threads: int = 0,
                 on_complete: Optional[Callable] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        from ._checkpoint import Checkpointer

        self.repo = repo
        self.run = run
        self.rank, self.world_size = rank_and_world(rank, world_size) if world_size is not None else (0, 1)
        self._c = Checkpointer(repo, run, staging_bytes=staging_bytes, max_in_flight=max_in_flight, threads=threads,
                               on_complete=on_complete)

    def save(self, step: int, model: Any = None, optimizer: Any = None, *, loader: Any = None, rng: bool = True,
             extra: Any = None, meta: Optional[Dict[str, Any]] = None,
             metrics: Optional[Dict[str, float]] = None) -> None:
        arrays, dtypes, skeleton, shared = _request(model, optimizer, step, loader, rng, extra, self.rank,
                                                    self.world_size)
        global_shapes: Dict[str, List[int]] = {}
        offsets: Dict[str, List[int]] = {}
        if self.world_size > 1:
            arrays, global_shapes, offsets = _shard(arrays, shared, self.rank, self.world_size)
        self._c.save(step, arrays, states={_SKELETON: skeleton}, meta=meta, metrics=metrics, dtypes=dtypes,
                     global_shapes=global_shapes, offsets=offsets, rank=self.rank, world_size=self.world_size)

    def resume(self, model: Any = None, optimizer: Any = None, *, loader: Any = None, rng: bool = True,
               strict: bool = True) -> Optional[int]:
        """Loads the newest valid checkpoint of the run into model/optimizer/loader; its step,
        or None when the run has none."""
        from ._checkpoint import Runs

        if not Runs(self.repo).checkpoints(self.run):
            return None
        return load(model, optimizer, repo=self.repo, run=self.run, loader=loader, rng=rng, strict=strict,
                    rank=self.rank)["step"]

    def wait(self) -> None:
        self._c.wait()

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> "AsyncCheckpointer":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        self._c.__exit__(exc_type, *rest)


def save(model: Any = None, optimizer: Any = None, *, step: int, run: str, repo: Any, loader: Any = None,
         rng: bool = True, extra: Any = None, meta: Optional[Dict[str, Any]] = None,
         metrics: Optional[Dict[str, float]] = None) -> None:
    """Saves model (an nn.Module or a state_dict), optimizer, loader state, RNG states and
    `extra` as checkpoint `step` of run `run` (created if new) and waits until it is durable.
    For saves that overlap training, use AsyncCheckpointer."""
    with AsyncCheckpointer(repo, run) as c:
        c.save(step, model, optimizer, loader=loader, rng=rng, extra=extra, meta=meta, metrics=metrics)


_MODEL_KEYS = ("model", "state_dict", "model_state_dict", "module")
_OPTIMIZER_KEYS = ("optimizer", "optimizer_state_dict", "optim")


def import_torch_file(path: Any, *, repo: Any, run: str, step: int, trusted: bool = False,
                      meta: Optional[Dict[str, Any]] = None, metrics: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
    """Stores a file written by torch.save as checkpoint `step` of run `run` (created if new),
    so that load() and `strata ckpt ...` see it like any other. Unless trusted=True, the file's
    pickle is checked before it is loaded (_check_torch_pickle): it may name only tensors,
    storages and OrderedDict, so a hostile file runs no code; files in the legacy format (before
    PyTorch 1.6) need trusted=True. The file is read into memory once, and that copy is what is
    checked and loaded. A bare state_dict becomes the model; a dict with a model entry
    ("model", "state_dict", "model_state_dict", "module") and an optimizer entry ("optimizer",
    "optimizer_state_dict", "optim") is split into the two, and its other entries go to
    "extra". Returns {"step", "model", "optimizer", "extra"}: the names found in each part."""
    import inspect
    import io

    name = os.fspath(path)
    with open(name, "rb") as f:
        data = f.read()
    if not trusted:
        _check_torch_pickle(data, name)
    kwargs: Dict[str, Any] = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # checked above, the same way for every torch version
    obj = torch.load(io.BytesIO(data), **kwargs)
    del data
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: holds a {type(obj).__name__}, not a dict of tensors")
    model_key = next((k for k in _MODEL_KEYS if isinstance(obj.get(k), dict)), None)
    if model_key is None:
        model_sd, optim_sd, extra = obj, None, None
    else:
        model_sd = obj[model_key]
        optim_key = next((k for k in _OPTIMIZER_KEYS if isinstance(obj.get(k), dict)), None)
        optim_sd = obj[optim_key] if optim_key else None
        extra = {k: v for k, v in obj.items() if k not in (model_key, optim_key)} or None
    if not model_sd or not all(isinstance(v, torch.Tensor) for v in model_sd.values()):
        raise ValueError(f"{name}: no state_dict of tensors in it")
    optimizer = _StateDict(optim_sd) if optim_sd is not None else None
    save(model_sd, optimizer, step=step, run=run, repo=repo, rng=False, extra=extra, meta=meta, metrics=metrics)
    return {"step": int(step), "model": sorted(model_sd), "optimizer": sorted(optim_sd or {}),
            "extra": sorted(extra or {})}


_PICKLE_GLOBALS = frozenset(
    [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")]
    + [("torch", t + "Storage") for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char",
                                          "Byte", "Bool")])
_MAX_PICKLE = 256 << 20


def _check_torch_pickle(data: bytes, name: str) -> None:
    """Raises ValueError unless `data` is a torch.save zip whose pickle calls nothing but the
    tensor and storage constructors and OrderedDict: every GLOBAL is in _PICKLE_GLOBALS, and
    the opcodes that could reach another callable (STACK_GLOBAL, INST, OBJ, EXT*) are absent."""
    import io
    import pickletools
    import zipfile

    untrusted = "; pass trusted=True only for a file you made yourself"
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{name}: not a torch.save zip file (the legacy format cannot be checked){untrusted}")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pickles = [i for i in z.infolist() if i.filename == "data.pkl" or i.filename.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{name}: a torch.save file has one data.pkl, this one has {len(pickles)}")
        if pickles[0].file_size > _MAX_PICKLE:
            raise ValueError(f"{name}: its pickle is {pickles[0].file_size} bytes (at most {_MAX_PICKLE})")
        code = z.read(pickles[0])
    try:
        for op, arg, _ in pickletools.genops(code):
            if op.name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                if (module, attr) not in _PICKLE_GLOBALS:
                    raise ValueError(f"{name}: its pickle refers to {module}.{attr}, which is not a tensor{untrusted}")
            elif op.name in ("STACK_GLOBAL", "OBJ", "EXT1", "EXT2", "EXT4"):
                raise ValueError(f"{name}: its pickle uses {op.name}, which torch.save does not write{untrusted}")
    except ValueError:
        raise
    except Exception as e:  # pickletools' own errors on malformed input
        raise ValueError(f"{name}: a malformed pickle ({e})") from None


def _skeleton_name(states: List[str], rank: Optional[int]) -> str:
    """The skeleton state to read: the only one, or in a sharded checkpoint rank's own (rank 0's
    when it had fewer ranks)."""
    if _SKELETON in states:
        return _SKELETON
    if rank is None:
        rank = rank_and_world()[0]
    own = f"rank{rank}/{_SKELETON}"
    return own if own in states else f"rank0/{_SKELETON}"


class _StateDict:
    """Stands for an optimizer whose state_dict is already at hand."""

    def __init__(self, sd: Dict[str, Any]):
        self._sd = sd

    def state_dict(self) -> Dict[str, Any]:
        return self._sd


def load(model: Any = None, optimizer: Any = None, *, repo: Any, run: str, step: Optional[int] = None,
         latest_valid: bool = True, loader: Any = None, rng: bool = False, strict: bool = True,
         map_location: Any = None, rank: Optional[int] = None) -> Dict[str, Any]:
    """Loads checkpoint `step` of `run` (the newest valid one by default) into `model` and
    `optimizer` (and the loader's state; RNG states with rng=True). Returns {"step", "meta",
    "metrics", "extra", "model", "optimizer"} (the state_dicts as loaded). A sharded checkpoint
    loads whole tensors whatever the number of ranks now; the loader state, RNG states and
    `extra` are those saved by `rank` (default: torch.distributed's, else $RANK), or by rank 0
    when the checkpoint had fewer ranks."""
    import json
    import warnings

    from . import _strata
    from ._checkpoint import CheckpointReader, Runs

    # Every tensor is read (and so authenticated) once, in parallel, before anything is changed;
    # with latest_valid a damaged checkpoint gives way to the next older one.
    steps: List[Optional[int]] = [step]
    if latest_valid:
        listed = [c["step"] for c in Runs(repo).checkpoints(run)]
        if step is not None and step not in listed:
            raise _strata.NotFoundError(f"run {run} has no checkpoint {step}")
        if not listed:
            raise _strata.NotFoundError(f"run {run} has no checkpoint")
        steps = [s for s in listed if step is None or s <= step]
    first: Optional[Exception] = None
    for s in steps:
        try:
            r = CheckpointReader(repo, run, s)
            doc = json.loads(r.state(_skeleton_name(r.states, rank)))
            arrays = r.tensors()
            break
        except (_strata.CorruptionError, _strata.NotFoundError) as e:
            if not latest_valid:
                raise
            warnings.warn(f"skipping damaged checkpoint: {e}")
            first = first or e
    else:
        raise _strata.CorruptionError(f"run {run} has no undamaged checkpoint: {first}")

    def tensor(name: str, dtype: str) -> Any:
        if dtype == "numpy":
            return arrays[name]
        t = _from_array(arrays[name], dtype)
        return t.to(map_location) if map_location is not None else t

    model_sd = _decode(doc.get("model"), tensor)
    optim_sd = _decode(doc.get("optimizer"), tensor)
    if model is not None and model_sd is not None:
        if hasattr(model, "load_state_dict"):
            model.load_state_dict(model_sd, strict=strict)
        else:
            model.update(model_sd)
    if optimizer is not None and optim_sd is not None:
        optimizer.load_state_dict(optim_sd)
    if loader is not None and "loader" in doc:
        loader.load_state_dict(_decode(doc["loader"], tensor))
    if rng and "rng" in doc:
        _set_rng_state(_decode(doc["rng"], tensor))
    return {"step": r.step, "meta": r.info["meta"], "metrics": r.info["metrics"],
            "extra": _decode(doc.get("extra"), tensor), "model": model_sd, "optimizer": optim_sd}


def load_weights(path: Any, *, verify: str = "on_demand", hash_key: Any = None,
                 prefix: str = "") -> Dict[str, "torch.Tensor"]:
    """The tensors of a serving file as torch tensors over the memory mapping (torch.from_numpy:
    no copy; read-only, so copy before changing them). Names starting with `prefix` only, the
    prefix removed (prefix="model/" gives a state_dict saved by strata.torch.save)."""
    from ._checkpoint import load_weights as _load

    w = _load(path, verify=verify, hash_key=hash_key)
    names = [n for n in w if n.startswith(prefix)]
    if verify == "on_demand":
        w.verify(names)  # all of them are about to be returned: checked at once, in parallel
    out = {}
    for name in names:
        a = w[name]
        dtype = "torch.bfloat16" if w._dtypes.get(name) == "BF16" else ""
        out[name[len(prefix):]] = _from_array(a, dtype)
    return out

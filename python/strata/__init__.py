"""strata from Python: repositories of versioned datasets, training-tier shards, the loader.

    import strata
    repo = strata.Repository.open("/srv/lake")          # passphrase as the CLI finds it
    repo.log("fmnist@main")
    ds = strata.Dataset("/nvme/fmnist/shards")           # every *.shard below, in name order
    batch = ds.read_batch([3, 17, 4])                     # {"image": ndarray[3, 1, 32, 32], ...}
    with strata.Checkpointer(repo, "exp1") as ckpt:       # async checkpoints of run exp1
        ckpt.save(100, {"w": w})
    strata.load_checkpoint(repo, "exp1").tensors["w"]
    strata.Models(repo).register("cnn", "exp1")          # model version 1 from run exp1

strata.torch has PyTorch datasets over the same shards (import it only where torch is);
strata.augment applies a pipeline's on-the-fly augmentation (manifest.json) as they read.
"""
from __future__ import annotations

from . import _strata
from ._strata import (  # noqa: F401  (re-exported)
    AbortedError,
    AlreadyExistsError,
    AuthenticationError,
    Commit,
    CorruptionError,
    Entry,
    Error,
    InternalError,
    InvalidArgumentError,
    IOError,
    NoSpaceError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    Ref,
    UnsupportedError,
)
from ._repository import File, Repository
from ._shards import Dataset, ShardReader, ShardWriter, shard_paths
from ._loader import HAVE_LOADER, Loader, Shuffle
from ._checkpoint import (Checkpoint, CheckpointReader, Checkpointer, Runs, Weights, load_checkpoint,
                          load_weights)
from ._registry import Models
from . import augment  # noqa: F401  (strata.augment.OnlineAugment)

__version__ = "0.1.0"

__all__ = [
    "Repository", "File", "Commit", "Ref", "Entry",
    "Dataset", "ShardReader", "ShardWriter", "shard_paths",
    "Loader", "Shuffle", "HAVE_LOADER",
    "Checkpointer", "CheckpointReader", "Checkpoint", "Runs", "Weights", "load_checkpoint", "load_weights",
    "Models",
    "Error", "InvalidArgumentError", "NotFoundError", "AlreadyExistsError", "CorruptionError",
    "IOError", "PermissionDeniedError", "NoSpaceError", "AuthenticationError", "PreconditionError",
    "AbortedError", "UnsupportedError", "InternalError",
]

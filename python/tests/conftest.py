import os

import numpy as np
import pytest

import strata

SCHEMA = [
    {"name": "image", "type": "tensor", "dtype": "float32", "shape": [2, 3]},
    {"name": "label", "type": "label", "num_classes": 10},
    {"name": "name", "type": "string"},
]


def write_shards(directory, n, target_size=64 << 10, key=None):
    """n records whose image holds the record number, in shards of about target_size bytes."""
    w = strata.ShardWriter(directory, SCHEMA, target_size=target_size, key=key)
    for i in range(n):
        w.add({"image": np.full((2, 3), i, np.float32), "label": i % 10, "name": f"r{i}"})
    return w.finish()


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    shards = write_shards(d, 1000, target_size=16 << 10)
    assert len(shards) > 3
    return str(d)


@pytest.fixture
def repo(tmp_path):
    # A cheap key derivation: the tests are about behaviour, not the passphrase's strength.
    r = strata.Repository.init(tmp_path / "repo", passphrase="test passphrase", kdf_mem=8 << 20, kdf_ops=1)
    yield r
    r.close()


def ids_of(batch):
    """Record numbers of a batch (the image's first element holds it)."""
    image = batch["image"]
    image = image.numpy() if hasattr(image, "numpy") else image
    return image.reshape(len(image), -1)[:, 0].astype(np.int64).tolist()

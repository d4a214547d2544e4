import os
import threading

import numpy as np
import pytest

import strata
from conftest import SCHEMA, ids_of, write_shards


def test_reader_zero_copy(shard_dir):
    ds = strata.Dataset(shard_dir)
    assert len(ds) == 1000 and len(ds.paths) > 3
    assert [f["name"] for f in ds.schema] == ["image", "label", "name"]
    rec = ds[417]
    assert rec["label"] == 7 and rec["name"] == "r417"
    img = rec["image"]
    assert img.dtype == np.float32 and img.shape == (2, 3) and (img == 417).all()
    # The array does not own a copy: its base is the decoded record, kept alive by the array.
    assert not img.flags.owndata and img.base is not None
    del rec
    assert (img == 417).all()


def test_batch_in_one_aligned_buffer(shard_dir):
    ds = strata.Dataset(shard_dir)
    idx = [999, 0, 500, 3, 3]
    b = ds.read_batch(idx)
    assert ids_of(b) == idx
    assert b["image"].shape == (5, 2, 3) and b["label"].dtype == np.int64
    assert b["label"].tolist() == [i % 10 for i in idx] and b["name"] == [f"r{i}" for i in idx]
    assert b["image"].ctypes.data % 4096 == 0 and b["label"].ctypes.data % 64 == 0
    assert not b["image"].flags.owndata
    with pytest.raises(IndexError):
        ds.read_batch([1000])


def test_single_shard_reader(tmp_path):
    shards = write_shards(tmp_path, 10)
    r = strata.ShardReader(shards[0]["path"])
    assert len(r) == 10 and r.info["records"] == 10 and not r.info["encrypted"]
    r.verify()


def test_encrypted_shards(tmp_path):
    key = os.urandom(32)
    shards = write_shards(tmp_path, 20, key=key)
    r = strata.ShardReader(shards[0]["path"], key=key)
    assert r.info["encrypted"] and ids_of(r.read_batch(range(20))) == list(range(20))
    with pytest.raises(strata.Error):
        strata.ShardReader(shards[0]["path"], key=os.urandom(32))


def test_writer_checks_the_schema(tmp_path):
    w = strata.ShardWriter(tmp_path, SCHEMA)
    with pytest.raises(strata.InvalidArgumentError):
        w.add({"image": np.zeros((3, 3), np.float32), "label": 1, "name": "x"})
    with pytest.raises(strata.InvalidArgumentError):
        w.add({"image": np.zeros((2, 3), np.float32), "label": 10, "name": "x"})  # num_classes is 10
    w.add({"image": np.zeros((2, 3)), "label": 1, "name": "x"})  # converted to float32
    assert w.finish()[0]["records"] == 1


def corrupt_record(path, reader_index):
    """Flips a byte inside one record's stored bytes."""
    r = strata.ShardReader(path)
    shard_records = r.info["records"]
    assert reader_index < shard_records
    # Find the record's bytes: its name "rN" is stored in it.
    n = r.info["first_record"] + reader_index
    data = bytearray(open(path, "rb").read())
    needle = np.full((2, 3), n, np.float32).tobytes()
    pos = data.find(needle, 4096)
    assert pos > 0
    data[pos] ^= 0x40
    with open(path, "wb") as f:
        f.write(data)


def test_corrupt_record_raise_or_skip(tmp_path):
    shards = write_shards(tmp_path, 50)
    corrupt_record(shards[0]["path"], 7)
    ds = strata.Dataset(tmp_path, direct_io=False)
    with pytest.raises(strata.CorruptionError, match="record 7"):
        ds[7]
    with pytest.raises(strata.CorruptionError):
        ds.read_batch([1, 7, 9])
    assert ds[8]["label"] == 8
    skipping = strata.Dataset(tmp_path, on_corrupt="skip")
    b = skipping.read_batch([1, 7, 9])
    assert ids_of(b) == [1, 9] and skipping.skipped == 1 and skipping.skipped_records == [7]
    with pytest.raises(strata.CorruptionError):
        ds.verify()


def test_reads_release_the_gil(shard_dir):
    ds = strata.Dataset(shard_dir)
    errors = []

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(50):
                idx = rng.integers(0, len(ds), 64)
                assert ids_of(ds.read_batch(idx)) == idx.tolist()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors

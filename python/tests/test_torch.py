import collections
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import strata  # noqa: E402
import strata.torch as st  # noqa: E402
from conftest import ids_of, write_shards  # noqa: E402

pytestmark = pytest.mark.skipif(not strata.HAVE_LOADER, reason="built without the loader")

N = 1000


def epoch_ids(shard_dir, world, workers, *, seed=5, batch=16, ctx=None, state=None, batches=None, **kw):
    """Runs every rank of a job; returns ({rank: ids in order}, state after) — `batches` per rank
    at most (None: to the end of the epoch)."""
    out, states = {}, []
    for rank in range(world):
        ds = st.ShardIterableDataset(shard_dir, batch_size=batch, seed=seed, rank=rank, world_size=world, **kw)
        if state is not None:
            ds.load_state_dict(state)
        loader = st.DataLoader(ds, num_workers=workers, multiprocessing_context=ctx if workers else None)
        ids = []
        for k, b in enumerate(loader):
            assert isinstance(b["image"], torch.Tensor) and b["label"].dtype == torch.int64
            ids += ids_of(b)
            if batches is not None and k + 1 == batches:
                break
        out[rank] = ids
        states.append(loader.state_dict())
    return out, states


def all_ids(per_rank):
    return [i for ids in per_rank.values() for i in ids]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("world,workers", [(1, 0), (2, 2), (3, 1), (4, 3)])
def test_exactly_once_per_epoch(shard_dir, world, workers):
    per_rank, states = epoch_ids(shard_dir, world, workers, ctx="fork")
    ids = all_ids(per_rank)
    assert sorted(ids) == list(range(N))
    # Ranks differ by at most one sample; every rank's state says the epoch is done.
    sizes = [len(v) for v in per_rank.values()]
    assert max(sizes) - min(sizes) <= 1
    assert all(s == {"seed": 5, "epoch": 1, "consumed": 0} for s in states)


def test_drop_last_and_pad(shard_dir):
    per_rank, _ = epoch_ids(shard_dir, 3, 0, drop_last=True)
    assert len({len(v) for v in per_rank.values()}) == 1 and len(per_rank[0]) % 16 == 0
    assert len(set(all_ids(per_rank))) == len(all_ids(per_rank)) >= N - 3 * 16 + 1
    per_rank, _ = epoch_ids(shard_dir, 3, 0, pad=True)
    assert {len(v) for v in per_rank.values()} == {334}
    c = collections.Counter(all_ids(per_rank))
    assert set(c) == set(range(N)) and sum(c.values()) == 1002


def test_order_is_the_global_permutation(shard_dir):
    # Dealt in lockstep from one permutation, whatever the world size.
    perm = strata.Shuffle(N, 5, 0).positions()
    for world in (1, 2, 3):
        per_rank, _ = epoch_ids(shard_dir, world, 0)
        for r, ids in per_rank.items():
            assert ids == perm[r::world].tolist()


def test_determinism_per_seed(shard_dir):
    a, _ = epoch_ids(shard_dir, 2, 2, seed=11, ctx="fork")
    b, _ = epoch_ids(shard_dir, 2, 0, seed=11)
    c, _ = epoch_ids(shard_dir, 2, 0, seed=12)
    assert a == b and a != c
    # Another epoch, another order.
    ds = st.ShardIterableDataset(shard_dir, batch_size=16, seed=11)
    first = [i for b in ds for i in ids_of(b)]
    second = [i for b in ds for i in ids_of(b)]  # the iteration moved the dataset to epoch 1
    assert sorted(first) == sorted(second) == list(range(N)) and first != second
    ds.set_epoch(0)
    assert [i for b in ds for i in ids_of(b)] == first


def test_mid_epoch_resume_is_exact(shard_dir):
    full, _ = epoch_ids(shard_dir, 2, 2, ctx="fork")
    seen, states = epoch_ids(shard_dir, 2, 2, ctx="fork", batches=5)
    assert states[0] == states[1] == {"seed": 5, "epoch": 0, "consumed": 5 * 16 * 2}
    rest, _ = epoch_ids(shard_dir, 2, 2, ctx="fork", state=states[0])
    for r in (0, 1):
        assert seen[r] + rest[r] == full[r]


@pytest.mark.parametrize("before,after", [((2, 2), (3, 1)), ((4, 0), (1, 2)), ((3, 1), (2, 0))])
def test_elastic_resume(shard_dir, before, after):
    seen, states = epoch_ids(shard_dir, before[0], before[1], ctx="fork", batches=3)
    assert len(set(map(str, states))) == 1
    rest, _ = epoch_ids(shard_dir, after[0], after[1], ctx="fork", state=states[0])
    assert sorted(all_ids(seen) + all_ids(rest)) == list(range(N))


def test_resume_in_process_without_workers(shard_dir):
    ds = st.ShardIterableDataset(shard_dir, batch_size=10, seed=1)
    it = iter(ds)
    got = [i for _ in range(4) for i in ids_of(next(it))]
    state = ds.state_dict()
    assert state == {"seed": 1, "epoch": 0, "consumed": 40}
    ds2 = st.ShardIterableDataset(shard_dir, batch_size=10, seed=1)
    ds2.load_state_dict(state)
    rest = [i for b in ds2 for i in ids_of(b)]
    assert sorted(got + rest) == list(range(N))
    assert ds2.state_dict() == {"seed": 1, "epoch": 1, "consumed": 0}


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_dataloader_two_workers(shard_dir, ctx):
    per_rank, _ = epoch_ids(shard_dir, 1, 2, ctx=ctx)
    assert sorted(per_rank[0]) == list(range(N))
    ds = st.ShardDataset(shard_dir)
    sampler = st.ShuffleSampler(ds, seed=3, batch_size=32)
    loader = st.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=2, multiprocessing_context=ctx)
    assert sorted(i for b in loader for i in ids_of(b)) == list(range(N))


def test_zero_copy_tensors(shard_dir):
    ds = st.ShardIterableDataset(shard_dir, batch_size=16, seed=1)
    b = next(iter(ds))
    # The tensor is the loader's 4 KiB-aligned batch buffer, not a copy of it.
    assert b["image"].data_ptr() % 4096 == 0
    arr = strata.Dataset(shard_dir).read_batch([1, 2])["image"]
    t = torch.from_numpy(arr)
    assert t.data_ptr() == arr.ctypes.data


def test_map_style_sampler_ranks_and_resume(shard_dir):
    ds = st.ShardDataset(shard_dir)
    rec = ds[12]
    assert rec["label"].item() == 2 and rec["image"].shape == (2, 3)
    ids = []
    for rank in range(3):
        sampler = st.ShuffleSampler(ds, seed=9, rank=rank, world_size=3)
        loader = st.DataLoader(ds, sampler=sampler, batch_size=8, num_workers=0)
        ids += [i for b in loader for i in ids_of(b)]
    assert sorted(ids) == list(range(N))
    # Resume after 4 batches of 8 on each of 2 ranks, on 3 ranks.
    seen, state = [], None
    for rank in range(2):
        sampler = st.ShuffleSampler(ds, seed=9, rank=rank, world_size=2, batch_size=8)
        loader = st.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=2, multiprocessing_context="fork")
        for k, b in enumerate(loader):
            seen += ids_of(b)
            if k == 3:
                break
        state = loader.state_dict()
    assert state == {"seed": 9, "epoch": 0, "consumed": 64}
    rest = []
    for rank in range(3):
        sampler = st.ShuffleSampler(ds, seed=9, rank=rank, world_size=3, batch_size=8)
        loader = st.DataLoader(ds, sampler=sampler, batch_size=None)
        loader.load_state_dict(state)
        rest += [i for b in loader for i in ids_of(b)]
    assert sorted(seen + rest) == list(range(N))
    # The same positions as the iterable dataset's: one permutation for both styles.
    assert st.ShuffleSampler(ds, seed=9).indices().tolist() == strata.Shuffle(N, 9, 0).positions().tolist()


def corrupt(path, record_number):
    data = bytearray(open(path, "rb").read())
    pos = data.find(np.full((2, 3), record_number, np.float32).tobytes(), 4096)
    assert pos > 0
    data[pos + 1] ^= 0x10
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_record(tmp_path, workers):
    shards = write_shards(tmp_path, 200, target_size=8 << 10)
    corrupt(shards[1]["path"], shards[1]["first_record"] + 2)
    bad = shards[1]["first_record"] + 2
    ds = st.ShardIterableDataset(tmp_path, batch_size=16, seed=2, direct_io=False)
    loader = st.DataLoader(ds, num_workers=workers, multiprocessing_context="fork" if workers else None)
    with pytest.raises(strata.CorruptionError, match=f"record 2"):
        for _ in loader:
            pass
    ds = st.ShardIterableDataset(tmp_path, batch_size=16, seed=2, skip_corrupt=True)
    loader = st.DataLoader(ds, num_workers=workers, multiprocessing_context="fork" if workers else None)
    got = [i for b in loader for i in ids_of(b)]
    assert sorted(got) == [i for i in range(200) if i != bad]


def test_prefetch_memory_bound(shard_dir):
    loader = strata.Loader(shard_dir, batch_size=16, seed=1, prefetch_bytes=1 << 20)
    n = sum(len(b["label"]) for b in loader)
    assert n == N and loader.stats()["peak_buffered_bytes"] <= 1 << 20


def test_rank_from_environment(shard_dir, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    ds = st.ShardIterableDataset(shard_dir, batch_size=16)
    assert (ds.rank, ds.world_size) == (1, 4)
    with pytest.raises(ValueError):
        st.ShardIterableDataset(shard_dir, rank=4, world_size=4)


@pytest.mark.parametrize("workers", [0, 2])
def test_lake_dataset_reads_every_file_once_through_the_cache(repo, tmp_path, workers):
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    contents = {f"train/{i:03d}.bin": os.urandom(50 + 37 * i) for i in range(60)}
    for p, data in contents.items():
        (src / p).write_bytes(data)
    repo.create_dataset("fm")
    repo.commit("fm@main", src, "import")
    repo.set_records("fm@main", {p: {"label": i % 10} for i, p in enumerate(sorted(contents))}, "labels")

    cache = tmp_path / "cache"
    ds = st.LakeDataset(repo, "fm@main:train", cache, columns=["label"], batch_size=8, seed=4, shard_size=8 << 10)
    assert ds.entry["built"] and ds.entry["records"] == 60 and len(ds.entry["shards"]) > 1
    seen = {}
    for batch in st.DataLoader(ds, num_workers=workers, multiprocessing_context="fork" if workers else None):
        assert batch["label"].dtype == torch.int64
        for path, data, label in zip(batch["path"], batch["data"], batch["label"].tolist()):
            assert path not in seen
            seen[path] = (bytes(np.asarray(data)), label)
    assert seen == {p: (contents[p], i % 10) for i, p in enumerate(sorted(contents))}
    # The next use of the same version reads no lake: the entry is found by commit id.
    again = st.LakeDataset(repo, "fm@main:train", cache, columns=["label"], batch_size=8)
    assert not again.entry["built"] and again.entry["shards"] == ds.entry["shards"]
    with pytest.raises(strata.InvalidArgumentError, match="no value for column 'size_class'"):
        st.LakeDataset(repo, "fm@main:train", cache, columns=["size_class"])

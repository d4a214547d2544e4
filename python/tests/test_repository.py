import os

import numpy as np
import pytest

import strata


def make_tree(root, files):
    for path, content in files.items():
        p = os.path.join(root, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content)


def test_round_trip(repo, tmp_path):
    src = tmp_path / "src"
    make_tree(src, {"train/a.bin": os.urandom(100_000), "train/b.txt": b"hello", "labels.csv": b"a,1\n"})
    repo.create_dataset("fm")
    assert repo.datasets() == ["fm"]
    r1 = repo.commit("fm@main", src, message="import", meta={"source": "test"})
    assert not r1["unchanged"] and r1["files"] == 3
    head = repo.resolve("fm@main")
    assert head.id == r1["commit"] and head.message == "import" and head.meta["source"] == "test"

    # Committing the same directory again changes nothing.
    assert repo.commit("fm@main", src, message="again")["unchanged"]

    # Listing, reading (whole and by range), checkout.
    names = sorted(e.path for e in repo.ls("fm@main", recursive=True) if e.type == "file")
    assert names == ["labels.csv", "train/a.bin", "train/b.txt"]
    assert repo.cat("fm@main:train/b.txt") == b"hello"
    with open(src / "train/a.bin", "rb") as f:
        original = f.read()
    f = repo.open_file("fm@main:train/a.bin")
    assert f.size == len(original)
    f.seek(5000)
    assert f.read(10) == original[5000:5010]
    buf = bytearray(1000)
    f.seek(99_500)
    assert f.readinto(buf) == 500 and bytes(buf[:500]) == original[99_500:]
    out = tmp_path / "out"
    repo.checkout("fm@main:train", out)
    assert (out / "train" / "a.bin").read_bytes() == original or (out / "a.bin").read_bytes() == original

    # Branches, tags, log, diff, reset.
    repo.create_tag("fm@v1", "fm@main")
    repo.create_branch("fm@dev", "fm@main")
    assert repo.branches("fm") == ["dev", "main"] and repo.tags("fm") == ["v1"]
    (src / "train/b.txt").write_bytes(b"changed")
    r2 = repo.commit("fm@dev", src, message="edit")
    assert [c.message for c in repo.log("fm@dev")][:2] == ["edit", "import"]
    assert repo.cat("fm@dev:train/b.txt") == b"changed" and repo.cat("fm@v1:train/b.txt") == b"hello"
    diff = repo.diff("fm@v1", "fm@dev")
    assert [(d["kind"], d["path"]) for d in diff] == [("modified", "train/b.txt")]
    assert repo.reset("fm@dev", "fm@v1") == r2["commit"]
    assert repo.resolve("fm@dev").id == head.id

    # Records as dicts and as numpy columns.
    repo.set_records("fm@main", {"train/a.bin": {"label": 3, "w": 1.5}, "train/b.txt": {"label": 7, "w": 2}},
                     message="labels")
    rows = repo.query("fm@main", "SELECT path, label FROM records WHERE label IS NOT NULL ORDER BY path")
    assert rows == [{"path": "train/a.bin", "label": 3}, {"path": "train/b.txt", "label": 7}]
    cols = repo.query_arrays("fm@main", "SELECT path, label, w FROM records WHERE label IS NOT NULL ORDER BY path")
    assert cols["label"].dtype == np.int64 and cols["label"].tolist() == [3, 7]
    assert cols["w"].dtype == np.float64 and cols["w"].tolist() == [1.5, 2.0]
    assert cols["path"].tolist() == ["train/a.bin", "train/b.txt"]
    assert {r["path"]: r.get("label") for r in repo.records("fm@main")}["train/b.txt"] == 7

    assert repo.verify(read_data=True)["ok"]


def test_open_like_the_cli(repo, tmp_path, monkeypatch):
    url = repo.url
    repo.close()
    with pytest.raises(strata.AuthenticationError):
        strata.Repository.open(url, passphrase="wrong")
    pw = tmp_path / "pw"
    pw.write_text("test passphrase\n")
    with strata.Repository.open(url, password_file=pw) as r:
        assert r.datasets() == []
    monkeypatch.setenv("STRATA_REPO", url)
    monkeypatch.setenv("STRATA_PASSWORD", "test passphrase")
    with strata.Repository.open() as r:
        assert r.url.endswith("repo")
    monkeypatch.delenv("STRATA_PASSWORD")
    with pytest.raises(strata.InvalidArgumentError):
        strata.Repository.open(url)  # no passphrase and no terminal


def test_errors_are_typed(repo):
    with pytest.raises(strata.NotFoundError):
        repo.resolve("nope@main")
    with pytest.raises(strata.InvalidArgumentError):
        repo.resolve("not a spec")
    repo.create_dataset("d")
    with pytest.raises(strata.AlreadyExistsError):
        repo.create_dataset("d")
    assert issubclass(strata.NotFoundError, strata.Error) and issubclass(strata.NotFoundError, LookupError)


def test_ingest_csv(repo, tmp_path):
    csv = tmp_path / "prices.csv"
    csv.write_text("item,price,count\napple,1.5,3\npear,2.25,4\n")
    repo.create_dataset("shop")
    report = repo.ingest(csv, "shop@main", prefix="tables")
    assert report["records"] == 2 and report["format"] == "csv" and not report["commit"]["unchanged"]
    cols = repo.query_arrays("shop@main", "SELECT item, price, count FROM records ORDER BY item")
    assert cols["item"].tolist() == ["apple", "pear"]
    assert cols["price"].tolist() == [1.5, 2.25] and cols["count"].dtype == np.int64
    # The same source again: nothing new.
    assert repo.ingest(csv, "shop@main", prefix="tables")["commit"]["unchanged"]

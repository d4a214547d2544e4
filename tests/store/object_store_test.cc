// Tests of the ObjectStore interface the upper layers build on: batches, typed objects,
// unchanged-file reuse, and records.
#include "store/object_store.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "testutil/testutil.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using strata::testing::RandomBytes;
using strata::testing::TempDir;
using strata::testing::WriteFile;

class ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions o = strata::testing::FastInitOptions();
    auto repo = Repository::Create(dir_ / "repo", "pw", o);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
    store_ = repo_->objects();
    src_ = dir_ / "src";
    for (int i = 0; i < 5; ++i) WriteFile(src_ + "/f" + std::to_string(i), RandomBytes(i, 100000 + i));
    WriteFile(src_ + "/sub/g", RandomBytes(99, 300000));
    AgeTree();
  }

  // Puts every mtime well in the past, outside the window where size and mtime prove nothing.
  void AgeTree() {
    for (const auto& e : fs::recursive_directory_iterator(src_)) {
      struct timespec times[2] = {{1600000000, 0}, {1600000000, 0}};
      utimensat(AT_FDCWD, e.path().c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }

  store::TreeEntry PutDir(const store::TreeEntry* reuse, PutStats* stats) {
    auto batch = store_->NewBatch();
    EXPECT_TRUE(batch.ok());
    auto entry = (*batch)->PutPath(src_, "", reuse);
    EXPECT_TRUE(entry.ok()) << entry.status().ToString();
    EXPECT_TRUE((*batch)->Commit().ok());
    *stats = (*batch)->stats();
    return *entry;
  }

  TempDir dir_;
  std::string src_;
  std::unique_ptr<Repository> repo_;
  store::ObjectStore* store_ = nullptr;
};

TEST_F(ObjectStoreTest, PutPathStoresATreeReadableByEveryone) {
  PutStats st;
  store::TreeEntry e = PutDir(nullptr, &st);
  ASSERT_EQ(e.type, store::EntryType::kDirectory);
  EXPECT_EQ(st.files, 6u);
  auto tree = store_->ReadTree(e.subtree);
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(tree->entries.size(), 6u);  // f0..f4 and sub
  EXPECT_NE(tree->Find("sub"), nullptr);
  // The same tree through the public API.
  auto reader = repo_->OpenFile(e.subtree, "sub/g");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->size(), 300000u);
}

TEST_F(ObjectStoreTest, UnchangedFilesAreNotReadAgain) {
  PutStats first, second, third;
  store::TreeEntry a = PutDir(nullptr, &first);
  store::TreeEntry b = PutDir(&a, &second);
  EXPECT_EQ(second.bytes, 0u) << "nothing changed, nothing should be read";
  EXPECT_EQ(second.unchanged_files, 6u);
  EXPECT_EQ(a.subtree, b.subtree);

  WriteFile(src_ + "/sub/g", RandomBytes(100, 300001));  // new size
  AgeTree();
  store::TreeEntry c = PutDir(&b, &third);
  EXPECT_EQ(third.bytes, 300001u);
  EXPECT_EQ(third.unchanged_files, 5u);
  EXPECT_NE(c.subtree, b.subtree);
  auto reader = repo_->OpenFile(c.subtree, "sub/g");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->size(), 300001u);
}

TEST_F(ObjectStoreTest, UnchangedDirectoriesAreReusedWholeAndGiveTheSameTree) {
  WriteFile(src_ + "/a/b/c/h", RandomBytes(7, 5000));
  WriteFile(src_ + "/a/x", RandomBytes(8, 6000));
  WriteFile(src_ + "/other/y", RandomBytes(9, 7000));
  ASSERT_EQ(symlink("../f0", (src_ + "/a/link").c_str()), 0);
  AgeTree();
  PutStats first, second, third, fresh_stats;
  store::TreeEntry a = PutDir(nullptr, &first);
  EXPECT_EQ(first.dirs, 6u);  // root, sub, a, a/b, a/b/c, other
  store::TreeEntry b = PutDir(&a, &second);
  EXPECT_EQ(b.subtree, a.subtree);
  EXPECT_EQ(second.dirs, 0u) << "nothing changed: no tree is built again";
  EXPECT_EQ(second.unchanged_files, 9u);

  WriteFile(src_ + "/a/b/c/h", RandomBytes(10, 5001));  // one change, three levels down
  fs::remove(src_ + "/other/y");                        // a removal
  WriteFile(src_ + "/other/z", RandomBytes(11, 10));    // an addition
  AgeTree();
  store::TreeEntry c = PutDir(&b, &third);
  EXPECT_EQ(third.dirs, 5u) << "root, a, a/b, a/b/c and other are built; sub is reused";
  EXPECT_EQ(third.bytes, 5011u);
  // Exactly the tree a put from scratch makes.
  store::TreeEntry fresh = PutDir(nullptr, &fresh_stats);
  EXPECT_EQ(c.subtree, fresh.subtree);
  EXPECT_EQ(c.size, fresh.size);
  for (const char* path : {"sub/g", "a/x", "a/b/c/h", "other/z"}) {
    auto reader = repo_->OpenFile(c.subtree, path);
    EXPECT_TRUE(reader.ok()) << path;
  }
}

TEST_F(ObjectStoreTest, SubdirectoriesScannedSideBySideGiveTheSameTreeAndSkips) {
  // Enough directories for the scan's helpers to take some: the tree and the list of skipped
  // entries must not depend on which thread scanned what.
  for (int d = 0; d < 40; ++d) {
    std::string dir = src_ + "/d" + std::to_string(d);
    for (int f = 0; f < 3; ++f) WriteFile(dir + "/e" + std::to_string(f) + "/f", RandomBytes(d * 10 + f, 100));
    ASSERT_EQ(mkfifo((dir + "/pipe").c_str(), 0644), 0);
  }
  AgeTree();
  std::vector<std::string> first_skipped;
  ObjectId first_tree;
  for (int round = 0; round < 5; ++round) {
    PutStats st;
    store::TreeEntry e = PutDir(nullptr, &st);
    ASSERT_EQ(st.skipped.size(), 40u);
    EXPECT_TRUE(std::is_sorted(st.skipped.begin(), st.skipped.end()));
    EXPECT_EQ(st.files, 126u);
    if (round == 0) {
      first_skipped = st.skipped;
      first_tree = e.subtree;
    }
    EXPECT_EQ(st.skipped, first_skipped);
    EXPECT_EQ(e.subtree, first_tree);
  }
}

TEST_F(ObjectStoreTest, RecentlyModifiedFilesAreReadAgain) {
  PutStats first, second;
  store::TreeEntry a = PutDir(nullptr, &first);
  // Same size, same mtime as stored, but the mtime is "now": it may hide a second change.
  for (const auto& e : fs::recursive_directory_iterator(src_)) {
    struct timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    utimensat(AT_FDCWD, e.path().c_str(), times, 0);
  }
  store::TreeEntry fresh = PutDir(nullptr, &first);
  store::TreeEntry b = PutDir(&fresh, &second);
  EXPECT_EQ(second.unchanged_files, 0u);
  EXPECT_EQ(second.files, 6u);
  EXPECT_EQ(b.subtree, fresh.subtree);
}

TEST_F(ObjectStoreTest, TypedObjectsRoundTripAndKeepTheirKind) {
  auto batch = store_->NewBatch();
  ASSERT_TRUE(batch.ok());
  ObjectId id = (*batch)->Put(store::ObjectKind::kCommit, "a commit's bytes");
  EXPECT_FALSE(store_->Contains(id)) << "visible before the batch committed";
  ASSERT_TRUE((*batch)->Commit().ok());
  EXPECT_TRUE(store_->Contains(id));
  EXPECT_EQ(id, store_->Hash("a commit's bytes"));
  auto bytes = store_->Read(id, store::ObjectKind::kCommit);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, "a commit's bytes");
  EXPECT_EQ(store_->Read(id, store::ObjectKind::kTree).status().code(), StatusCode::kInvalidArgument);
  // Still there after reopening.
  batch->reset();
  repo_.reset();
  auto repo = Repository::Open(dir_ / "repo", "pw");
  ASSERT_TRUE(repo.ok());
  EXPECT_TRUE((*repo)->objects()->Read(id, store::ObjectKind::kCommit).ok());
}

TEST_F(ObjectStoreTest, RecordsAreDurableAndSealed) {
  ASSERT_TRUE(store_->AppendRecord(R"({"a":1})").ok());
  ASSERT_TRUE(store_->AppendRecord(R"({"b":2})").ok());
  auto records = store_->Records();
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(std::set<std::string>(records->begin(), records->end()),
            (std::set<std::string>{R"({"a":1})", R"({"b":2})"}));
  // On disk they are ciphertext, and a damaged one is reported.
  std::string any;
  for (const auto& e : fs::directory_iterator(dir_ / "repo/records")) any = e.path();
  ASSERT_FALSE(any.empty());
  EXPECT_EQ(strata::testing::ReadFile(any).find("\"a\""), std::string::npos);
  std::string bytes = strata::testing::ReadFile(any);
  bytes[bytes.size() / 2] ^= 1;
  WriteFile(any, bytes);
  EXPECT_EQ(store_->Records().status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace strata

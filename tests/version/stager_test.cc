// Staged commits (files streamed in, metadata rows) and queries over a commit's records.
#include <gtest/gtest.h>

#include "strata/lake.h"
#include "testutil/testutil.h"
#include "version/record_table.h"

namespace strata {
namespace {

using strata::testing::RandomBytes;
using strata::testing::ReadLakeFile;
using strata::testing::TempDir;

class StagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = strata::testing::CreateTestLake(dir_ / "repo", "ds");
    ASSERT_TRUE(t.lake);
    repo_ = std::move(t.repo);
    lake_ = std::move(t.lake);
  }

  std::unique_ptr<StagedCommit> Stage(StageOptions o = {}) {
    auto s = lake_->Stage("ds@main", o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  CommitResult Commit(StagedCommit* s, const std::string& msg = "stage") {
    auto r = s->Commit(CommitOptions{.message = msg});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommitResult{};
  }

  std::vector<std::string> Paths(const std::string& spec) {
    auto rows = lake_->Records(spec);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<std::string> out;
    if (rows.ok()) {
      for (auto& r : *rows) out.push_back(std::get<std::string>(r.at("path")));
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
};

TEST_F(StagerTest, StreamsFilesIntoOneCommit) {
  auto s = Stage();
  std::string big = RandomBytes(7, 3 << 20);  // several chunks
  ASSERT_TRUE(s->AddBytes("img/cat/1.bin", big).ok());
  ASSERT_TRUE(s->AddBytes("img/dog/2.bin", "woof").ok());
  ASSERT_TRUE(s->AddBytes("empty", "").ok());
  EXPECT_EQ(s->files_added(), 3u);
  EXPECT_EQ(s->bytes_added(), big.size() + 4);
  CommitResult r = Commit(s.get());
  EXPECT_FALSE(r.unchanged);
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@main:img/cat/1.bin"), big);
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@main:img/dog/2.bin"), "woof");
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@main:empty"), "");
  auto log = lake_->Log("ds@main", 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].message, "stage");
  // A stage cannot be committed twice.
  EXPECT_EQ(s->AddBytes("x", "y").code(), StatusCode::kFailedPrecondition);
}

TEST_F(StagerTest, SameContentAgainIsUnchangedAndStoresNothingNew) {
  std::string data = RandomBytes(9, 1 << 20);
  auto stage_once = [&](int64_t mtime) {
    auto s = Stage();
    EXPECT_TRUE(s->AddBytes("a/x", data, FileAttrs{.mtime_ns = mtime}).ok());
    EXPECT_TRUE(s->SetRecord("a/x", {{"label", std::string("cat")}}).ok());
    return Commit(s.get());
  };
  CommitResult first = stage_once(1000);
  EXPECT_FALSE(first.unchanged);
  EXPECT_GT(first.put.new_chunks, 0u);
  // The same files and records again: nothing new is stored and no commit is made.
  CommitResult second = stage_once(1000);
  EXPECT_TRUE(second.unchanged);
  EXPECT_EQ(second.commit, first.commit);
  EXPECT_EQ(second.put.new_bytes, 0u);
  // Another mtime: a new tree and commit, but the content is deduplicated.
  CommitResult third = stage_once(2000);
  EXPECT_FALSE(third.unchanged);
  EXPECT_LT(third.put.new_bytes, 4096u);
}

TEST_F(StagerTest, ReplaceStartsFromEmptyAndRemoveDropsRecords) {
  auto s = Stage();
  ASSERT_TRUE(s->AddBytes("keep/a", "1").ok());
  ASSERT_TRUE(s->AddBytes("drop/b", "2").ok());
  ASSERT_TRUE(s->SetRecord("drop/b", {{"label", std::string("x")}}).ok());
  ASSERT_TRUE(s->SetRecord("keep/a", {{"label", std::string("y")}}).ok());
  Commit(s.get());
  EXPECT_EQ(Paths("ds@main"), (std::vector<std::string>{"drop/b", "keep/a"}));

  auto rm = Stage();
  ASSERT_TRUE(rm->Remove("drop").ok());
  Commit(rm.get());
  auto rows = lake_->Records("ds@main");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(std::get<std::string>((*rows)[0].at("label")), "y");

  auto rep = Stage(StageOptions{.replace = true});
  ASSERT_TRUE(rep->AddBytes("only", "z").ok());
  Commit(rep.get());
  EXPECT_EQ(Paths("ds@main"), (std::vector<std::string>{"only"}));
  auto ls = lake_->List("ds@main", true);
  ASSERT_TRUE(ls.ok());
  ASSERT_EQ(ls->size(), 1u);  // no records file left behind
}

TEST_F(StagerTest, MoveAndStartFromAnotherVersion) {
  auto s = Stage();
  std::string big = RandomBytes(3, 2 << 20);
  ASSERT_TRUE(s->AddBytes("in/a", big).ok());
  ASSERT_TRUE(s->AddBytes("in/b", "bee").ok());
  ASSERT_TRUE(s->SetRecord("in/a", {{"label", std::string("x")}}).ok());
  Commit(s.get());
  ASSERT_TRUE(lake_->CreateRef("ds@curated", "ds@main", RefType::kBranch).ok());
  // main moves on; curated is rebuilt from main's latest tree, with one file set aside.
  auto more = Stage();
  ASSERT_TRUE(more->AddBytes("in/c", "sea").ok());
  Commit(more.get());
  auto c = lake_->Stage("ds@curated", StageOptions{.from = "ds@main"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE((*c)->Move("in/a", ".quarantine/in/a").ok());
  EXPECT_EQ((*c)->Move("in/nope", "x").code(), StatusCode::kNotFound);
  auto r = (*c)->Commit(CommitOptions{.message = "curate"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@curated:.quarantine/in/a"), big);
  EXPECT_EQ(ReadLakeFile(*lake_, "ds@curated:in/c"), "sea");
  EXPECT_FALSE(lake_->OpenFile("ds@curated:in/a").ok());
  auto rows = lake_->Records("ds@curated:.quarantine");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(std::get<std::string>((*rows)[0].at("label")), "x");
  EXPECT_EQ(r->put.new_bytes < 4096, true);  // a move reads and stores no content
}

TEST_F(StagerTest, RejectsReservedAndBadPaths) {
  auto s = Stage();
  EXPECT_EQ(s->AddBytes(".strata/records.jsonl", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->AddBytes("../up", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->AddBytes("", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->SetRecord("a", {{"size", int64_t(1)}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->SetRecord("", {{"l", int64_t(1)}}).code(), StatusCode::kInvalidArgument);
}

TEST_F(StagerTest, ConcurrentMoveOfTheBranchAborts) {
  auto s = Stage();
  ASSERT_TRUE(s->AddBytes("a", "1").ok());
  auto other = Stage();
  ASSERT_TRUE(other->AddBytes("b", "2").ok());
  Commit(other.get());
  auto r = s->Commit(CommitOptions{.message = "late"});
  EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status().ToString();
}

TEST_F(StagerTest, RecordsJoinFilesWithMetadataAndQueryRunsSql) {
  auto s = Stage();
  ASSERT_TRUE(s->AddBytes("img/1.png", "aaaa").ok());
  ASSERT_TRUE(s->AddBytes("img/2.png", "bbbbbb").ok());
  ASSERT_TRUE(s->AddBytes("img/3.png", "aaaa").ok());  // same content as 1
  ASSERT_TRUE(s->SetRecord("img/1.png", {{"label", std::string("cat")}, {"width", int64_t(28)}}).ok());
  ASSERT_TRUE(s->SetRecord("img/2.png", {{"label", std::string("dog")}, {"width", int64_t(32)}}).ok());
  ASSERT_TRUE(s->SetRecord("table.csv#1", {{"price", 2.5}, {"ok", true}}).ok());
  Commit(s.get());

  auto rows = lake_->Records("ds@main");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ(std::get<std::string>((*rows)[0].at("content")), std::get<std::string>((*rows)[2].at("content")));
  EXPECT_NE(std::get<std::string>((*rows)[0].at("content")), std::get<std::string>((*rows)[1].at("content")));
  EXPECT_EQ(std::get<int64_t>((*rows)[1].at("size")), 6);
  EXPECT_EQ((*rows)[3].count("size"), 0u);  // a metadata-only row
  EXPECT_EQ(Paths("ds@main:img"), (std::vector<std::string>{"img/1.png", "img/2.png", "img/3.png"}));

  auto q = lake_->Query("ds@main", "SELECT label, count(*) AS n, sum(size) FROM records WHERE label IS NOT NULL "
                                   "GROUP BY label ORDER BY label");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->columns, (std::vector<std::string>{"label", "n", "sum(size)"}));
  ASSERT_EQ(q->rows.size(), 2u);
  EXPECT_EQ(std::get<std::string>(q->rows[0][0]), "cat");
  EXPECT_EQ(std::get<int64_t>(q->rows[0][2]), 4);
  auto dup = lake_->Query("ds@main", "SELECT count(*) FROM records GROUP BY content HAVING count(*) > 1");
  ASSERT_TRUE(dup.ok());
  ASSERT_EQ(dup->rows.size(), 1u);
  EXPECT_EQ(std::get<int64_t>(dup->rows[0][0]), 2);

  // Labels corrected later: a commit that changes metadata only.
  auto fix = Stage();
  ASSERT_TRUE(fix->SetRecord("img/2.png", {{"label", std::string("wolf")}, {"width", MetaValue{}}}).ok());
  Commit(fix.get(), "relabel");
  auto after = lake_->Query("ds@main", "SELECT label, width FROM records WHERE path = 'img/2.png'");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(std::get<std::string>(after->rows[0][0]), "wolf");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(after->rows[0][1]));
  auto log = lake_->Log("ds@main", 2);
  ASSERT_TRUE(log.ok());
  auto d = lake_->Diff("ds@" + (*log)[1].id.ToHex(), "ds@main");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->entries.size(), 1u);
  EXPECT_EQ(d->entries[0].path, ".strata/records.jsonl");
}

TEST_F(StagerTest, QueriesAreReadOnly) {
  auto s = Stage();
  ASSERT_TRUE(s->AddBytes("a", "1").ok());
  Commit(s.get());
  for (const char* sql : {"DELETE FROM records", "DROP TABLE records", "ATTACH DATABASE '/tmp/x.db' AS x",
                          "PRAGMA writable_schema = 1", "SELECT 1; DELETE FROM records", "CREATE TABLE t(x)"}) {
    auto q = lake_->Query("ds@main", sql);
    EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument) << sql;
  }
  auto q = lake_->Query("ds@main", "SELECT nosuchcolumn FROM records");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("columns: path, size, content"), std::string::npos) << q.status().message();
}

TEST(RecordTable, ParseRejectsMalformedLines) {
  EXPECT_TRUE(version::ParseRecordsFile("{\"path\":\"a\",\"l\":1}\n").ok());
  EXPECT_EQ(version::ParseRecordsFile("{\"path\":\"a\"}\nnot json\n").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(version::ParseRecordsFile("{\"l\":1}\n").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(version::ParseRecordsFile("{\"path\":\"a\",\"l\":[1]}\n").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(version::ParseRecordsFile("{\"path\":\"a\"}\n{\"path\":\"a\"}\n").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(version::ParseRecordsFile("{\"path\":\"a\",\"size\":1}\n").status().code(), StatusCode::kCorruption);
  version::RecordRows rows;
  rows["b"] = {{"x", int64_t(1)}, {"y", std::string("q\"\n")}};
  rows["a"] = {{"z", 1.5}, {"t", true}};
  auto back = version::ParseRecordsFile(version::SerializeRecordsFile(rows));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, rows);
}

}  // namespace
}  // namespace strata

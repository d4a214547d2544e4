// Directories, IDX, the labels join, SQLite queries and the image header probe.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ingest/directory_reader.h"
#include "ingest/idx_reader.h"
#include "ingest/image_probe.h"
#include "ingest/labels.h"
#include "ingest/query_reader.h"
#include "test_sink.h"
#include "testutil/testutil.h"

namespace strata::ingest {
namespace {

using strata::testing::TempDir;
using strata::testing::WriteFile;
using testing::CollectingSink;
using ::testing::ElementsAre;

// ---- directories ----

TEST(DirectoryReader, WalksInSortedOrderWithAttributes) {
  TempDir d;
  WriteFile(d / "b.txt", "bee");
  WriteFile(d / "a/z.bin", "zed");
  WriteFile(d / "a/y.bin", "why");
  WriteFile(d / "a.txt", "a");
  ASSERT_EQ(::chmod((d / "b.txt").c_str(), 0600), 0);
  CollectingSink sink;
  ASSERT_TRUE(ReadDirectory(Env::Default(), d.path(), {}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("a/y.bin", "a/z.bin", "a.txt", "b.txt"));
  EXPECT_EQ(sink.files[3].content, "bee");
  EXPECT_EQ(sink.files[3].item.size, 3u);
  EXPECT_EQ(sink.files[3].item.mode, 0600u);
  EXPECT_GT(sink.files[3].item.mtime_ns, 0);
  EXPECT_TRUE(sink.rejects.empty());
}

TEST(DirectoryReader, ImageFolderLabelsByClassFolder) {
  TempDir d;
  WriteFile(d / "cat/1.png", "c1");
  WriteFile(d / "cat/sub/2.png", "c2");
  WriteFile(d / "dog/3.png", "d3");
  WriteFile(d / "README", "stray");
  CollectingSink sink;
  ASSERT_TRUE(ReadDirectory(Env::Default(), d.path(), {.image_folder = true, .name = "imgs"}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("cat/1.png", "cat/sub/2.png", "dog/3.png"));
  EXPECT_EQ(sink.files[0].item.meta.at("label"), "cat");
  EXPECT_EQ(sink.files[1].item.meta.at("label"), "cat");
  EXPECT_EQ(sink.files[2].item.meta.at("label"), "dog");
  EXPECT_THAT(sink.RejectRules(), ElementsAre("image-folder-layout"));
  EXPECT_EQ(sink.rejects[0].where, "imgs:README");
}

TEST(DirectoryReader, SymlinksInsideAreFollowedOthersRejected) {
  TempDir outside;
  WriteFile(outside / "secret", "s");
  TempDir d;
  WriteFile(d / "data/real.txt", "real");
  WriteFile(d / "real.txt", "top");
  ASSERT_EQ(::symlink("data/real.txt", (d / "inside").c_str()), 0);
  ASSERT_EQ(::symlink("../real.txt", (d / "data/up.txt").c_str()), 0);  // inside, via ".."
  ASSERT_EQ(::symlink((outside / "secret").c_str(), (d / "abs").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../etc/passwd", (d / "up").c_str()), 0);
  ASSERT_EQ(::symlink("data", (d / "dirlink").c_str()), 0);
  ASSERT_EQ(::symlink("nothing", (d / "dangling").c_str()), 0);
  // A chain through a symlinked directory that leads out: hop -> dirlink/../.. (outside).
  ASSERT_EQ(::symlink("dirlink/../..", (d / "hop").c_str()), 0);
  ASSERT_EQ(::symlink("loop", (d / "loop").c_str()), 0);
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0);
  CollectingSink sink;
  ASSERT_TRUE(ReadDirectory(Env::Default(), d.path(), {.name = "src"}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("data/real.txt", "data/up.txt", "inside", "real.txt"));
  EXPECT_EQ(sink.files[1].content, "top");
  EXPECT_EQ(sink.files[2].content, "real");
  EXPECT_EQ(sink.files[2].item.size, 4u);
  EXPECT_THAT(sink.RejectWheres(), ElementsAre("src:abs", "src:dangling", "src:dirlink", "src:fifo", "src:hop",
                                               "src:loop", "src:up"));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("symlink-outside", "symlink-dangling", "symlink-directory",
                                              "special-file", "symlink-outside", "symlink-dangling",
                                              "symlink-outside"));

  CollectingSink strict;
  ASSERT_TRUE(ReadDirectory(Env::Default(), d.path(), {.follow_symlinks = false}, &strict).ok());
  EXPECT_THAT(strict.Paths(), ElementsAre("data/real.txt", "real.txt"));
}

TEST(DirectoryReader, NotADirectoryIsAnError) {
  TempDir d;
  WriteFile(d / "f", "x");
  CollectingSink sink;
  EXPECT_EQ(ReadDirectory(Env::Default(), d / "f", {}, &sink).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ReadDirectory(Env::Default(), d / "missing", {}, &sink).IsNotFound());
}

// ---- IDX ----

std::string Idx(uint8_t type, std::vector<uint32_t> dims, const std::string& data) {
  std::string out = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) out += static_cast<char>(d >> s);
  }
  return out + data;
}

TEST(IdxReader, ReadsFashionMnistTestSet) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (::access((dir + "t10k-images-idx3-ubyte.gz").c_str(), R_OK) != 0) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  struct Counting : ItemSink {
    uint64_t files = 0, ankle_boots = 0;
    std::vector<FileItem> first;
    std::string first_content;
    Status AddFile(const FileItem& item, SequentialFile* content) override {
      if (files < 3) first.push_back(item);
      if (files == 0) {
        char buf[1024];
        size_t got = 0;
        STRATA_RETURN_IF_ERROR(content->Read(sizeof buf, reinterpret_cast<uint8_t*>(buf), &got));
        first_content.assign(buf, got);
      }
      ++files;
      if (item.meta.at("label") == "Ankle boot") ++ankle_boots;
      return Status::OK();
    }
    Status StartTable(std::string_view, const Schema&) override { return Status::OK(); }
    Status AddRecord(const Record&) override { return Status::OK(); }
    void Reject(std::string_view, std::string_view, std::string_view) override { ADD_FAILURE(); }
  } sink;
  IdxOptions options;
  options.prefix = "test/";
  options.label_names = FashionMnistLabels();
  ASSERT_TRUE(ReadIdx(Env::Default(), dir + "t10k-images-idx3-ubyte.gz", dir + "t10k-labels-idx1-ubyte.gz", options,
                      &sink).ok());
  EXPECT_EQ(sink.files, 10000u);
  EXPECT_EQ(sink.ankle_boots, 1000u);
  ASSERT_EQ(sink.first.size(), 3u);
  EXPECT_EQ(sink.first[0].path, "test/0000.pgm");
  EXPECT_EQ(sink.first[0].meta.at("label"), "Ankle boot");
  EXPECT_EQ(sink.first[1].meta.at("label"), "Pullover");
  EXPECT_EQ(sink.first[2].meta.at("index"), "2");
  EXPECT_EQ(sink.first[0].size, 13 + 784u);
  ASSERT_EQ(sink.first_content.size(), 13 + 784u);
  EXPECT_EQ(sink.first_content.substr(0, 13), "P5\n28 28\n255\n");
  uint64_t sum = 0;
  for (size_t i = 13; i < sink.first_content.size(); ++i) sum += static_cast<uint8_t>(sink.first_content[i]);
  EXPECT_EQ(sum, 33456u);  // the first image's pixels, as Python's gzip module reads them
}

TEST(IdxReader, SyntheticFilesAndTheirErrors) {
  TempDir d;
  std::string pixels = "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c";  // 3 images of 2x2
  WriteFile(d / "img", Idx(8, {3, 2, 2}, pixels));
  WriteFile(d / "lab", Idx(8, {3}, std::string("\x00\x05\x02", 3)));
  CollectingSink sink;
  IdxOptions options;
  options.label_names = {"zero", "one", "two"};
  ASSERT_TRUE(ReadIdx(Env::Default(), d / "img", d / "lab", options, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("0.pgm", "2.pgm"));
  EXPECT_EQ(sink.files[1].content, std::string("P5\n2 2\n255\n\x09\x0a\x0b\x0c"));
  EXPECT_EQ(sink.files[1].item.meta.at("label"), "two");
  EXPECT_THAT(sink.RejectRules(), ElementsAre("idx-label"));

  CollectingSink no_labels;
  ASSERT_TRUE(ReadIdx(Env::Default(), d / "img", "", {}, &no_labels).ok());
  EXPECT_EQ(no_labels.files.size(), 3u);
  EXPECT_EQ(no_labels.files[0].item.meta.count("label"), 0u);

  auto code = [&](const std::string& images, const std::string& labels) {
    WriteFile(d / "i2", images);
    WriteFile(d / "l2", labels);
    CollectingSink s;
    return ReadIdx(Env::Default(), d / "i2", d / "l2", {}, &s).code();
  };
  EXPECT_EQ(code(Idx(8, {3, 2, 2}, pixels), Idx(8, {2}, "\x01\x01")), StatusCode::kInvalidArgument);  // counts
  EXPECT_EQ(code(Idx(8, {3, 2, 2}, pixels.substr(0, 10)), Idx(8, {3}, "\x01\x01\x01")), StatusCode::kCorruption);
  EXPECT_EQ(code(Idx(8, {3, 2, 2}, pixels + "x"), Idx(8, {3}, "\x01\x01\x01")), StatusCode::kCorruption);
  EXPECT_EQ(code(Idx(8, {3, 2, 2}, pixels), Idx(8, {3}, "\x01\x01")), StatusCode::kCorruption);
  EXPECT_EQ(code(Idx(0x0D, {3, 2, 2}, pixels), Idx(8, {3}, "\x01\x01\x01")), StatusCode::kUnsupported);
  EXPECT_EQ(code(Idx(8, {3, 4}, pixels), Idx(8, {3}, "\x01\x01\x01")), StatusCode::kInvalidArgument);  // dims
  EXPECT_EQ(code("GIF89a", Idx(8, {3}, "\x01\x01\x01")), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Idx(8, {1, 0, 5}, ""), Idx(8, {1}, "\x01")), StatusCode::kInvalidArgument);
}

// ---- labels ----

TEST(Labels, JoinsByPathThenBaseNameAndReportsMisses) {
  TempDir d;
  WriteFile(d / "labels.csv",
            "file,label,extra\n"
            "cat/1.png,kitten,x\n"
            "007.png,bond,x\n"
            "007.png,bond,x\n"
            "007.png,spy,x\n"
            "../x.png,bad,x\n"
            "unused.png,none,x\n");
  CollectingSink rejects;
  auto map = LoadLabels(Env::Default(), d / "labels.csv", {}, &rejects);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->entries.size(), 3u);
  EXPECT_THAT(rejects.RejectRules(), ElementsAre("label-conflict", "path-traversal"));
  EXPECT_EQ(rejects.rejects[0].where, d / "labels.csv:5");

  CollectingSink out;
  LabelJoinSink join(&*map, &out);
  std::string data = "d";
  for (const char* p : {"cat/1.png", "dog/007.png", "dog/8.png"}) {
    MemorySequentialFile content(data);
    FileItem item;
    item.path = p;
    item.meta["label"] = "folder";
    ASSERT_TRUE(join.AddFile(item, &content).ok());
  }
  ASSERT_THAT(out.Paths(), ElementsAre("cat/1.png", "dog/007.png", "dog/8.png"));
  EXPECT_EQ(out.files[0].item.meta.at("label"), "kitten");
  EXPECT_EQ(out.files[1].item.meta.at("label"), "bond");
  EXPECT_EQ(out.files[2].item.meta.at("label"), "folder");
  EXPECT_EQ(out.files[1].content, "d");
  EXPECT_EQ(join.matched(), 2u);
  EXPECT_EQ(join.unmatched(), 1u);
  EXPECT_THAT(join.unmatched_examples(), ElementsAre("dog/8.png"));
  EXPECT_THAT(join.UnusedNames(), ElementsAre("unused.png"));

  CollectingSink strict_out;
  LabelJoinSink strict(&*map, &strict_out, /*reject_unmatched=*/true);
  MemorySequentialFile content(data);
  ASSERT_TRUE(strict.AddFile({.path = "nope.png"}, &content).ok());
  EXPECT_TRUE(strict_out.files.empty());
  EXPECT_THAT(strict_out.RejectRules(), ElementsAre("label-missing"));
}

TEST(Labels, MissingColumnIsAnError) {
  TempDir d;
  WriteFile(d / "l.csv", "name,label\na,b\n");
  CollectingSink rejects;
  auto map = LoadLabels(Env::Default(), d / "l.csv", {}, &rejects);
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(map.status().message().find("'file'"), std::string::npos);
}

// ---- SQLite ----

void Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

class SqliteQuery : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "db.sqlite";
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    Exec(db,
         "CREATE TABLE t (id INTEGER, name TEXT, score REAL, ok BOOLEAN, raw BLOB, any);"
         "INSERT INTO t VALUES (1, 'ann', 2.5, 1, NULL, 7);"
         "INSERT INTO t VALUES (2, NULL, 3, 0, NULL, 12);"
         "INSERT INTO t VALUES ('two', 'bob', 1.0, 1, NULL, 8);"
         "INSERT INTO t VALUES (4, 'eve', 1.0, 5, NULL, 9);"
         "INSERT INTO t VALUES (5, 'bin', 1.0, 1, x'00ff', 10);"
         "INSERT INTO t VALUES (6, 'bad' || char(55357), 1.0, 1, NULL, 11);"
         "INSERT INTO t VALUES (7, 'z', 1.0, 1, NULL, 'x');");
    sqlite3_close(db);
  }
  TempDir dir_;
  std::string path_;
};

TEST_F(SqliteQuery, StreamsTypedRowsAndRejectsMisfits) {
  CollectingSink sink;
  QueryOptions options;
  options.query = "SELECT id, name, score, ok, raw, any, id * 2 AS twice FROM t ORDER BY rowid";
  options.name = "db";
  ASSERT_TRUE(ReadSqliteQuery(Env::Default(), path_, options, &sink).ok());
  Schema want;
  want.columns = {{"id", ColumnType::kInt64},   {"name", ColumnType::kString}, {"score", ColumnType::kDouble},
                  {"ok", ColumnType::kBool},    {"raw", ColumnType::kString},  {"any", ColumnType::kInt64},
                  {"twice", ColumnType::kInt64}};
  EXPECT_EQ(sink.schema, want);
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[0].fields[1].second, Value(std::string("ann")));
  EXPECT_EQ(sink.records[0].fields[2].second, Value(2.5));
  EXPECT_EQ(sink.records[0].fields[3].second, Value(true));
  EXPECT_EQ(sink.records[0].fields[6].second, Value(int64_t{2}));
  EXPECT_TRUE(IsNull(sink.records[1].fields[1].second));
  EXPECT_EQ(sink.records[1].fields[2].second, Value(3.0));
  EXPECT_EQ(sink.records[1].fields[5].second, Value(int64_t{12}));
  EXPECT_EQ(sink.records[1].line, 2u);
  // Row 7's "any" is 'x' in a column the first row made int64.
  EXPECT_THAT(sink.RejectWheres(), ElementsAre("db:3", "db:4", "db:5", "db:6", "db:7"));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("type", "type", "blob", "encoding", "type"));
}

TEST_F(SqliteQuery, ErrorsAreClear) {
  CollectingSink sink;
  auto run = [&](const std::string& q) {
    QueryOptions o;
    o.query = q;
    return ReadSqliteQuery(Env::Default(), path_, o, &sink);
  };
  EXPECT_TRUE(ReadSqliteQuery(Env::Default(), dir_ / "none.db", {.query = "SELECT 1"}, &sink).IsNotFound());
  Status st = run("SELECT nope FROM t");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("no such column: nope"), std::string::npos) << st.message();
  EXPECT_EQ(run("DELETE FROM t").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run("ATTACH DATABASE '/tmp/other.db' AS o").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run("PRAGMA journal_mode=DELETE").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run("SELECT 1; DELETE FROM t").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run("SELECT id, id FROM t").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run("").code(), StatusCode::kInvalidArgument);
  // Nothing was changed.
  CollectingSink count;
  ASSERT_TRUE(ReadSqliteQuery(Env::Default(), path_, {.query = "SELECT count(*) AS n FROM t"}, &count).ok());
  EXPECT_EQ(count.records[0].fields[0].second, Value(int64_t{7}));

  WriteFile(dir_ / "junk.db", std::string(4096, 'j'));
  CollectingSink junk;
  EXPECT_EQ(ReadSqliteQuery(Env::Default(), dir_ / "junk.db", {.query = "SELECT * FROM t"}, &junk).code(),
            StatusCode::kCorruption);
}

TEST_F(SqliteQuery, MaxRowsAndEmptyResults) {
  CollectingSink sink;
  ASSERT_TRUE(ReadSqliteQuery(Env::Default(), path_, {.query = "SELECT id FROM t WHERE id > 100"}, &sink).ok());
  EXPECT_EQ(sink.tables.size(), 1u);
  EXPECT_TRUE(sink.records.empty());
  CollectingSink some;
  ASSERT_TRUE(ReadSqliteQuery(Env::Default(), path_, {.query = "SELECT rowid AS r FROM t", .max_rows = 3}, &some).ok());
  EXPECT_EQ(some.records.size(), 3u);
}

// ---- image headers ----

std::span<const uint8_t> Bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(ImageProbe, ReadsDimensionsFromHeaders) {
  auto pgm = ProbeImage(Bytes("P5\n# comment\n28 14\n255\n"));
  ASSERT_TRUE(pgm.ok());
  EXPECT_EQ(pgm->format, "pgm");
  EXPECT_EQ(pgm->width, 28u);
  EXPECT_EQ(pgm->height, 14u);
  EXPECT_EQ(pgm->channels, 1u);

  std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00\x00\x00\x00\x80\x08\x06", 26);
  auto p = ProbeImage(Bytes(png));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->format, "png");
  EXPECT_EQ(p->width, 256u);
  EXPECT_EQ(p->height, 128u);
  EXPECT_EQ(p->channels, 4u);

  // SOI, an APP0 segment of 16 bytes, SOF0 with height 480, width 640, 3 components.
  std::string jpg("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                  "\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03",
                  30);
  auto j = ProbeImage(Bytes(jpg));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->format, "jpeg");
  EXPECT_EQ(j->width, 640u);
  EXPECT_EQ(j->height, 480u);
  EXPECT_EQ(j->channels, 3u);

  FileItem item;
  AddImageMeta(Bytes(png), &item);
  EXPECT_EQ(item.meta.at("width"), "256");
}

TEST(ImageProbe, TruncatedOrDamagedHeadersAreErrorsNotCrashes) {
  std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00\x00\x00\x00\x80\x08\x06", 26);
  for (size_t n = 0; n < png.size(); ++n) EXPECT_FALSE(ProbeImage(Bytes(png.substr(0, n))).ok()) << n;
  EXPECT_EQ(ProbeImage(Bytes("P5\n0 5\n255\n")).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ProbeImage(Bytes("P5\n99999999999 5\n")).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ProbeImage(Bytes("\xff\xd8\xff\xd9")).status().code(), StatusCode::kNotFound);  // too short
  EXPECT_EQ(ProbeImage(Bytes(std::string("\xff\xd8\xff\xda\x00\x02\x00\x00", 8))).status().code(),
            StatusCode::kCorruption);
  EXPECT_TRUE(ProbeImage(Bytes("hello")).status().IsNotFound());
}

}  // namespace
}  // namespace strata::ingest

#include "ingest/archive_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "archive_test_util.h"
#include "test_sink.h"
#include "testutil/testutil.h"

namespace strata::ingest {
namespace {

using testing::CollectingSink;
using testing::Container;
using testing::Filter;
using testing::Gzip;
using testing::Member;
using testing::WriteArchive;
using ::testing::ElementsAre;

// Reads from a file and from memory, and expects both walks to agree.
Status ReadBoth(const std::string& bytes, const ArchiveOptions& options, CollectingSink* sink) {
  strata::testing::TempDir dir;
  strata::testing::WriteFile(dir / "a", bytes);
  Status from_file = ReadArchive(Env::Default(), dir / "a", options, sink);
  CollectingSink mem;
  mem.read_content = sink->read_content;
  Status from_memory = ReadArchiveFromMemory(bytes, options, &mem);
  EXPECT_EQ(from_file.code(), from_memory.code()) << from_file.ToString() << " / " << from_memory.ToString();
  EXPECT_EQ(sink->Paths(), mem.Paths());
  EXPECT_EQ(sink->RejectRules(), mem.RejectRules());
  return from_file;
}

class ArchiveFormats : public ::testing::TestWithParam<std::pair<Container, Filter>> {};

TEST_P(ArchiveFormats, YieldsEveryRegularFileWithContentAndAttributes) {
  auto [container, filter] = GetParam();
  std::string big = strata::testing::RandomBytes(7, 300'000);
  std::string bytes = WriteArchive({{.path = "dir/", .type = 'd', .mode = 0755},
                                    {.path = "dir/big.bin", .data = big, .mode = 0640},
                                    {.path = "./top.txt", .data = "hello\n", .mode = 04755, .mtime = 1234},
                                    {.path = "empty", .data = ""}},
                                   container, filter);
  CollectingSink sink;
  ASSERT_TRUE(ReadBoth(bytes, {}, &sink).ok());
  ASSERT_THAT(sink.Paths(), ElementsAre("dir/big.bin", "top.txt", "empty"));
  EXPECT_TRUE(sink.rejects.empty());
  EXPECT_EQ(sink.files[0].content, big);
  EXPECT_EQ(sink.files[0].item.size, big.size());
  EXPECT_EQ(sink.files[0].item.mode, 0640u);
  EXPECT_EQ(sink.files[1].content, "hello\n");
  EXPECT_EQ(sink.files[1].item.mode, 0755u);  // setuid dropped
  EXPECT_EQ(sink.files[1].item.mtime_ns, 1234 * 1'000'000'000LL);
  EXPECT_EQ(sink.files[2].content, "");
}

INSTANTIATE_TEST_SUITE_P(All, ArchiveFormats,
                         ::testing::Values(std::pair{Container::kTar, Filter::kNone},
                                           std::pair{Container::kTar, Filter::kGzip},
                                           std::pair{Container::kTar, Filter::kZstd},
                                           std::pair{Container::kZip, Filter::kNone}));

TEST(ArchiveReader, RejectsTraversalAndAbsolutePathsWithoutRewriting) {
  std::string bytes = WriteArchive({{.path = "../evil", .data = "x"},
                                    {.path = "/etc/passwd", .data = "x"},
                                    {.path = "a/../../b", .data = "x"},
                                    {.path = "a/b/..", .data = "x"},
                                    {.path = "C:/win", .data = "x"},
                                    {.path = "back\\slash", .data = "x"},
                                    {.path = "ok.txt", .data = "fine"}});
  CollectingSink sink;
  ASSERT_TRUE(ReadBoth(bytes, {.name = "t.tar"}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("ok.txt"));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("path-traversal", "path-absolute", "path-traversal", "path-traversal",
                                              "path-absolute", "path-backslash"));
  EXPECT_EQ(sink.rejects[0].where, "t.tar:../evil");
  EXPECT_EQ(sink.rejects[5].where, "t.tar:back\\x5cslash");
}

TEST(ArchiveReader, RejectsLinksAndSpecialFiles) {
  std::string bytes = WriteArchive({{.path = "target", .data = "secret"},
                                    {.path = "link", .type = 'l', .link = "/etc/shadow"},
                                    {.path = "hard", .type = 'h', .link = "target"},
                                    {.path = "null", .type = 'c'},
                                    {.path = "pipe", .type = 'p'}});
  CollectingSink sink;
  ASSERT_TRUE(ReadBoth(bytes, {}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("target"));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("symlink", "hardlink", "special-file", "special-file"));
  EXPECT_NE(sink.rejects[0].reason.find("/etc/shadow"), std::string::npos);
}

TEST(ArchiveReader, RejectsSymlinksInZip) {
  std::string bytes = WriteArchive({{.path = "l", .type = 'l', .link = "../../x"}, {.path = "f", .data = "1"}},
                                   Container::kZip);
  CollectingSink sink;
  ASSERT_TRUE(ReadBoth(bytes, {}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("f"));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("symlink"));
}

TEST(ArchiveReader, RejectsControlBytesInvalidUtf8AndDuplicates) {
  std::string bytes = WriteArchive({{.path = "bad\nname", .data = "x"},
                                    {.path = "esc\x1b[31mred", .data = "x"},
                                    {.path = "del\x7f", .data = "x"},
                                    {.path = "latin1-\xe9.txt", .data = "x"},
                                    {.path = "caf\xc3\xa9.txt", .data = "utf8"},
                                    {.path = "./caf\xc3\xa9.txt", .data = "again"}});
  CollectingSink sink;
  ASSERT_TRUE(ReadBoth(bytes, {.name = "n.tar"}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("caf\xc3\xa9.txt"));
  EXPECT_EQ(sink.files[0].content, "utf8");
  EXPECT_THAT(sink.RejectRules(), ElementsAre("path-control-byte", "path-control-byte", "path-control-byte",
                                              "path-encoding", "duplicate-path"));
  // Names in reports are printable: the escape byte cannot drive a terminal.
  EXPECT_EQ(sink.rejects[1].where, "n.tar:esc\\x1b[31mred");
  EXPECT_EQ(sink.rejects[0].reason, "name contains the control byte 0x0a");
}

TEST(ArchiveReader, StoresNestedArchivesAsFiles) {
  std::string inner = WriteArchive({{.path = "../escape", .data = "x"}});
  std::string bytes = WriteArchive({{.path = "inner.tar", .data = inner}}, Container::kTar, Filter::kGzip);
  CollectingSink sink;
  ASSERT_TRUE(ReadBoth(bytes, {}, &sink).ok());
  EXPECT_THAT(sink.Paths(), ElementsAre("inner.tar"));
  EXPECT_EQ(sink.files[0].content, inner);
  EXPECT_TRUE(sink.rejects.empty());
}

// One GiB of zeros compresses to about 30 KiB with zstd.
const std::string& ZeroBomb() {
  static const std::string bomb = WriteArchive({{.path = "a.txt", .data = "first"}, {.path = "zeros", .zeros = 1ull << 30}},
                                               Container::kTar, Filter::kZstd);
  return bomb;
}

TEST(ArchiveReader, StopsACompressionBombByRatio) {
  ASSERT_LT(ZeroBomb().size(), 1u << 20);
  for (bool read_content : {true, false}) {
    CollectingSink sink;
    sink.read_content = read_content;
    Status st = ReadBoth(ZeroBomb(), {.name = "bomb.tar.zst"}, &sink);
    ASSERT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
    EXPECT_NE(st.message().find("max_ratio"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("'zeros'"), std::string::npos) << st.message();
  }
}

TEST(ArchiveReader, StopsAtTheTotalAndPerMemberLimits) {
  ArchiveOptions total;
  total.limits.max_ratio = 1e12;
  total.limits.max_total_bytes = 10 << 20;
  CollectingSink sink;
  Status st = ReadBoth(ZeroBomb(), total, &sink);
  ASSERT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("max_total_bytes"), std::string::npos) << st.message();

  // The tar header declares the size, so the member is refused before a byte is read.
  ArchiveOptions entry;
  entry.limits.max_entry_bytes = 1 << 20;
  CollectingSink sink2;
  st = ReadBoth(ZeroBomb(), entry, &sink2);
  ASSERT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("declares 1073741824 bytes"), std::string::npos) << st.message();
  EXPECT_THAT(sink2.Paths(), ElementsAre("a.txt"));
}

TEST(ArchiveReader, StopsAtTheMemberCount) {
  std::vector<Member> members;
  for (int i = 0; i < 5; ++i) members.push_back({.path = "f" + std::to_string(i), .data = "x"});
  members.push_back({.path = "l", .type = 'l', .link = "x"});
  ArchiveOptions options;
  options.limits.max_entries = 6;
  CollectingSink ok_sink;
  EXPECT_TRUE(ReadBoth(WriteArchive(members), options, &ok_sink).ok());
  options.limits.max_entries = 5;  // rejected members count too
  CollectingSink sink;
  Status st = ReadBoth(WriteArchive(members), options, &sink);
  ASSERT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("more than 5 members"), std::string::npos) << st.message();
}

TEST(ArchiveReader, TruncatedArchiveIsCorruptionNamingTheMember) {
  std::string data = strata::testing::RandomBytes(3, 200'000);
  for (Filter filter : {Filter::kNone, Filter::kGzip}) {
    std::string bytes = WriteArchive({{.path = "one", .data = "1"}, {.path = "two.bin", .data = data}},
                                     Container::kTar, filter);
    bytes.resize(bytes.size() / 2);
    CollectingSink sink;
    Status st = ReadBoth(bytes, {.name = "cut.tar"}, &sink);
    ASSERT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
    EXPECT_NE(st.message().find("'two.bin'"), std::string::npos) << st.message();
  }
}

// Gzip streams are inflated by strata itself (ISA-L), not by libarchive's filter: concatenated
// members read as one stream, bytes after the last member are ignored, damage is corruption.
TEST(ArchiveReader, GzipMembersReadAsOneStream) {
  std::string data = strata::testing::RandomBytes(5, 700'000);
  std::string tar = WriteArchive({{.path = "a.bin", .data = data}, {.path = "b.txt", .data = "bee"}});
  size_t cut = tar.size() / 3;
  std::string two = Gzip(tar.substr(0, cut)) + Gzip(tar.substr(cut));
  for (const std::string& bytes : {two, two + "trailing bytes, not a gzip header", Gzip(tar) + std::string(1024, '\0')}) {
    CollectingSink sink;
    ASSERT_TRUE(ReadBoth(bytes, {.name = "two.tar.gz"}, &sink).ok());
    ASSERT_THAT(sink.Paths(), ElementsAre("a.bin", "b.txt"));
    EXPECT_EQ(sink.files[0].content, data);
    EXPECT_EQ(sink.files[1].content, "bee");
  }
}

TEST(ArchiveReader, DamagedGzipIsCorruptionNamingTheMember) {
  std::string data = strata::testing::RandomBytes(6, 300'000);
  std::string gz = WriteArchive({{.path = "one", .data = "1"}, {.path = "two.bin", .data = data}}, Container::kTar,
                                Filter::kGzip);
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 1;  // the trailer's CRC-32 of the inflated bytes
  std::string flipped = gz;
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 64; ++i) flipped[i] ^= 0x5a;
  for (const std::string& bytes : {bad_crc, flipped}) {
    CollectingSink sink;
    Status st = ReadBoth(bytes, {.name = "bad.tar.gz"}, &sink);
    ASSERT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
    EXPECT_NE(st.message().find("gzip"), std::string::npos) << st.message();
  }
}

TEST(ArchiveReader, StopsAGzipBombByRatio) {
  std::string bomb = WriteArchive({{.path = "zeros", .zeros = 256ull << 20}}, Container::kTar, Filter::kGzip);
  CollectingSink sink;
  Status st = ReadBoth(bomb, {.name = "bomb.tar.gz"}, &sink);
  ASSERT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("max_ratio"), std::string::npos) << st.message();
}

TEST(ArchiveReader, DamagedZipMemberIsCorruption) {
  std::string data(100'000, 'a');
  for (size_t i = 0; i < data.size(); i += 7) data[i] = static_cast<char>('a' + i % 13);
  std::string bytes = WriteArchive({{.path = "z.txt", .data = data}}, Container::kZip);
  // Flip bytes inside the deflated data (after the 30-byte local header and the name).
  for (size_t i = 200; i < 260; ++i) bytes[i] ^= 0x55;
  CollectingSink sink;
  Status st = ReadBoth(bytes, {.name = "z.zip"}, &sink);
  ASSERT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("'z.txt'"), std::string::npos) << st.message();
}

TEST(ArchiveReader, NotAnArchiveIsInvalidArgument) {
  CollectingSink sink;
  Status st = ReadBoth(std::string(5000, 'x'), {.name = "x.bin"}, &sink);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  strata::testing::TempDir dir;
  EXPECT_TRUE(ReadArchive(Env::Default(), dir / "missing.tar", {}, &sink).IsNotFound());
}

TEST(ArchiveReader, SinkErrorEndsTheWalk) {
  struct Failing : CollectingSink {
    Status AddFile(const FileItem& item, SequentialFile* content) override {
      if (item.path == "b") return Status::NoSpace("full");
      return CollectingSink::AddFile(item, content);
    }
  } sink;
  std::string bytes = WriteArchive({{.path = "a", .data = "1"}, {.path = "b", .data = "2"}, {.path = "c", .data = "3"}});
  Status st = ReadArchiveFromMemory(bytes, {}, &sink);
  EXPECT_EQ(st.code(), StatusCode::kNoSpace);
  EXPECT_THAT(sink.Paths(), ElementsAre("a"));
}

TEST(CheckItemPath, NormalisesOnlyHarmlessSpellings) {
  EXPECT_EQ(CheckItemPath("./a//b/").path, "a/b");
  EXPECT_EQ(CheckItemPath("a/./b").path, "a/b");
  EXPECT_EQ(CheckItemPath("..a/b..").path, "..a/b..");
  EXPECT_EQ(CheckItemPath("").rule, "path-empty");
  EXPECT_EQ(CheckItemPath("./").rule, "path-empty");
  EXPECT_EQ(CheckItemPath("a/..").rule, "path-traversal");
  EXPECT_EQ(CheckItemPath(std::string("a\0b", 3)).rule, "path-control-byte");
  EXPECT_EQ(CheckItemPath("\xed\xa0\x80").rule, "path-encoding");  // a UTF-16 surrogate
  EXPECT_EQ(CheckItemPath(std::string(5000, 'a')).rule, "path-too-long");
}

}  // namespace
}  // namespace strata::ingest

// `strata ingest`, `strata query` and `strata meta set` end to end: the real binary on real
// archives and tables, checking what lands in the dataset, what is rejected, and that a broken
// source leaves the branch where it was.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ingest/postgres_server.h"
#include "testutil/cli_testutil.h"

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class IngestCliTest : public CliTest {
 protected:
  void SetUp() override {
    InitRepo({});
    if (HasFatalFailure()) return;
    ASSERT_EQ(S({"dataset", "create", "pets"}).exit_code, 0);
  }

  std::string Head() { return J({"show", "pets@main"})["id"].get<std::string>(); }

  // An ImageFolder tree of small "images" (PGM headers, so width/height are probed).
  std::string MakeImageFolder() {
    std::string root = dir_ / "imgs";
    for (int i = 0; i < 6; ++i) {
      std::string cls = i % 2 ? "dog" : "cat";
      WriteFile(root + "/" + cls + "/" + std::to_string(i) + ".pgm",
                "P5\n" + std::to_string(4 + i) + " 3\n255\n" + RandomBytes(i, (4 + i) * 3));
    }
    return root;
  }
};

TEST_F(IngestCliTest, ArchiveWithImageFolderLabelsQueryAndIdempotence) {
  std::string root = MakeImageFolder();
  ASSERT_EQ(symlink("/etc/passwd", (root + "/cat/escape.pgm").c_str()), 0);
  std::string tgz = dir_ / "pets.tar.gz";
  ASSERT_EQ(RunCommand("tar -czf " + tgz + " -C " + root + " cat dog"), 0);

  json r = J({"ingest", tgz, "pets@main", "--image-folder", "--prefix", "raw"});
  EXPECT_EQ(r["format"], "archive");
  EXPECT_EQ(r["files"], 6);
  EXPECT_EQ(r["labelled"], 6);
  EXPECT_EQ(r["rejected"], 1);
  EXPECT_EQ(r["rejects"][0]["rule"], "symlink") << r.dump();
  EXPECT_EQ(r["source_sha256"].get<std::string>().size(), 64u);
  EXPECT_FALSE(r["commit"]["unchanged"].get<bool>());

  json q = J({"query", "pets@main", "SELECT label, count(*) AS n, max(width) AS w FROM records "
                                    "WHERE path LIKE 'raw/%' GROUP BY label ORDER BY label"});
  ASSERT_EQ(q["rows"].size(), 2u) << q.dump();
  EXPECT_EQ(q["rows"][0]["label"], "cat");
  EXPECT_EQ(q["rows"][0]["n"], 3);
  EXPECT_EQ(q["rows"][1]["w"], 9);  // dog/5.pgm is 9 pixels wide

  json show = J({"show", "pets@main"});
  EXPECT_EQ(show["meta"]["source.format"], "archive");
  EXPECT_EQ(show["meta"]["source.rejected"], "1");

  // The same archive again: nothing new, no commit.
  std::string head = Head();
  json again = J({"ingest", tgz, "pets@main", "--image-folder", "--prefix", "raw"});
  EXPECT_TRUE(again["commit"]["unchanged"].get<bool>()) << again.dump();
  EXPECT_EQ(Head(), head);

  // A label corrected later: a commit that changes metadata only.
  json m = J({"meta", "set", "pets@main:raw/cat/0.pgm", "label=lynx", "reviewed=true"});
  EXPECT_FALSE(m["unchanged"].get<bool>());
  json q2 = J({"query", "pets@main", "SELECT label, reviewed FROM records WHERE path = 'raw/cat/0.pgm'"});
  EXPECT_EQ(q2["rows"][0]["label"], "lynx");
  EXPECT_EQ(q2["rows"][0]["reviewed"], 1);
  json d = J({"diff", "pets@" + head, "pets@main"});
  ASSERT_EQ(d["changes"].size(), 1u) << d.dump();
  EXPECT_EQ(d["changes"][0]["path"], ".strata/records.jsonl");
}

TEST_F(IngestCliTest, CsvRowsBecomeRecords) {
  std::string csv = dir_ / "prices.csv";
  WriteFile(csv, "name,price,path\nwidget,2.5,a\n\"big, gadget\",10,b\nbroken\n");
  json r = J({"ingest", csv, "pets@main", "--prefix", "tables"});
  EXPECT_EQ(r["format"], "csv");
  EXPECT_EQ(r["records"], 2);
  EXPECT_EQ(r["rejected"], 1);  // the row with one field
  json q = J({"query", "pets@main", "SELECT name, price, _path FROM records WHERE price IS NOT NULL ORDER BY price"});
  ASSERT_EQ(q["rows"].size(), 2u) << q.dump();
  EXPECT_EQ(q["rows"][1]["name"], "big, gadget");
  EXPECT_EQ(q["rows"][0]["price"], 2.5);
  EXPECT_EQ(q["rows"][0]["_path"], "a");
  auto csv_out = S({"query", "pets@main", "--csv", "SELECT name FROM records WHERE name IS NOT NULL ORDER BY name"});
  EXPECT_EQ(csv_out.out, "name\r\n\"big, gadget\"\r\nwidget\r\n");
}

TEST_F(IngestCliTest, BrokenSourcesFailAndLeaveTheBranch) {
  std::string root = MakeImageFolder();
  std::string tgz = dir_ / "pets.tar.gz";
  ASSERT_EQ(RunCommand("tar -czf " + tgz + " -C " + root + " cat dog"), 0);
  std::string head = Head();
  // Truncated archive.
  std::string data = ReadFile(tgz);
  std::string cut = dir_ / "cut.tar.gz";
  WriteFile(cut, data.substr(0, data.size() / 2));
  auto r = S({"ingest", cut, "pets@main"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("the branch did not move"), std::string::npos) << r.err;
  // A bomb by the limits: more uncompressed bytes than allowed.
  r = S({"ingest", tgz, "pets@main", "--max-total-bytes", "20"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  // Missing source, unknown format, sqlite without a query, a bad query.
  EXPECT_NE(S({"ingest", dir_ / "nope.tar", "pets@main"}).exit_code, 0);
  EXPECT_NE(S({"ingest", tgz, "pets@main", "--format", "rar"}).exit_code, 0);
  std::string db = dir_ / "x.sqlite";
  EXPECT_NE(S({"ingest", "sqlite:" + db, "pets@main"}).exit_code, 0);
  EXPECT_EQ(Head(), head);
  // Read-only queries.
  auto q = S({"query", "pets@main", "DELETE FROM records"});
  EXPECT_EQ(q.exit_code, 2) << Describe(q);
}

TEST_F(IngestCliTest, PostgresQueryRowsBecomeRecordsWithoutThePassword) {
  PostgresServer server;
  if (!server.Start()) GTEST_SKIP() << "no PostgreSQL server: " << server.skip_reason();
  auto made = server.Psql("CREATE TABLE orders (id int8, item text, qty int4, price float8);"
                          "INSERT INTO orders VALUES (1, 'bolt', 10, 0.25), (2, 'nut', NULL, 0.1);");
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  json r = J({"ingest", server.Uri(), "pets@main", "--query", "SELECT * FROM orders ORDER BY id"});
  EXPECT_EQ(r["format"], "postgres");
  EXPECT_EQ(r["records"], 2);
  EXPECT_EQ(r["source"].get<std::string>().find(PostgresServer::kPassword), std::string::npos) << r.dump();
  json show = J({"show", "pets@main"});
  EXPECT_EQ(show.dump().find(PostgresServer::kPassword), std::string::npos);
  json q = J({"query", "pets@main", "SELECT item, qty, price FROM records WHERE item IS NOT NULL ORDER BY price"});
  ASSERT_EQ(q["rows"].size(), 2u) << q.dump();
  EXPECT_EQ(q["rows"][0]["item"], "nut");
  EXPECT_TRUE(q["rows"][0]["qty"].is_null());
  EXPECT_EQ(q["rows"][1]["qty"], 10);
  // A write is refused by the read-only transaction; the branch does not move.
  std::string head = Head();
  auto bad = S({"ingest", server.Uri(), "pets@main", "--query", "DELETE FROM orders RETURNING id"});
  EXPECT_NE(bad.exit_code, 0) << Describe(bad);
  EXPECT_EQ(bad.err.find(PostgresServer::kPassword), std::string::npos) << bad.err;
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(server.Psql("SELECT count(*) FROM orders").out, "2\n");
}

}  // namespace
}  // namespace strata::testing

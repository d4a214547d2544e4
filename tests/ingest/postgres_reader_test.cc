// The PostgreSQL query reader against a real server started on loopback for this suite.
#include "ingest/postgres_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "ingest/postgres_server.h"
#include "ingest/test_sink.h"
#include "testutil/testutil.h"

namespace strata::ingest {
namespace {

using strata::ingest::testing::CollectingSink;
using strata::testing::PostgresServer;

class PostgresQuery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = std::make_unique<PostgresServer>();
    if (!server_->Start()) return;
    auto r = server_->Psql(R"sql(
      CREATE TABLE items (id int4, big int8, small int2, score float8, ratio float4, price numeric(30,2),
                          ok bool, name text, tag varchar(8), code char(3), born date, raw bytea);
      INSERT INTO items VALUES
        (1, 9007199254740993, -3, 2.5, 0.25, 12.34, true, 'ann', 'a', 'abc', '2024-01-02', NULL),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, -9223372036854775808, 32767, 'NaN', '-Infinity', 1234567890123456789012.99, false,
         'ünïcødé 🎉 "q" ''s''', '', 'x', '1999-12-31', NULL),
        (4, 4, 4, 0.1, 1, 0, true, 'bin', 'b', 'b', NULL, '\x00ff');
      CREATE TABLE many AS SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 25000) g;
      CREATE SEQUENCE seq;
      CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO items (id) VALUES (100) RETURNING id';
    )sql");
    if (r.exit_code != 0) setup_error_ = "creating the tables failed: " + strata::testing::Describe(r);
  }
  static void TearDownTestSuite() { server_.reset(); }  // pg_ctl stop -m immediate; the directory goes

  void SetUp() override {
    if (!server_->skip_reason().empty()) GTEST_SKIP() << "no PostgreSQL server: " << server_->skip_reason();
    ASSERT_EQ(setup_error_, "");
  }

  static Status Read(const std::string& query, CollectingSink* sink, const PostgresOptions& pg = {},
                     uint64_t max_rows = 0) {
    QueryOptions o;
    o.query = query;
    o.name = "db";
    o.max_rows = max_rows;
    return ReadPostgresQuery(server_->Uri(), o, sink, pg);
  }

  static std::unique_ptr<PostgresServer> server_;
  static std::string setup_error_;
};
std::unique_ptr<PostgresServer> PostgresQuery::server_;
std::string PostgresQuery::setup_error_;

TEST_F(PostgresQuery, TypedRowsWithExactValues) {
  CollectingSink sink;
  Status s = Read("SELECT *, id * 2 AS twice FROM items ORDER BY id;", &sink);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(sink.tables, std::vector<std::string>{"db"});
  Schema want{{{"id", ColumnType::kInt64}, {"big", ColumnType::kInt64}, {"small", ColumnType::kInt64},
               {"score", ColumnType::kDouble}, {"ratio", ColumnType::kDouble}, {"price", ColumnType::kString},
               {"ok", ColumnType::kBool}, {"name", ColumnType::kString}, {"tag", ColumnType::kString},
               {"code", ColumnType::kString}, {"born", ColumnType::kString}, {"raw", ColumnType::kString},
               {"twice", ColumnType::kInt64}}};
  EXPECT_EQ(sink.schema, want);
  ASSERT_EQ(sink.records.size(), 3u);  // row 4 holds bytea

  const auto& a = sink.records[0];
  EXPECT_EQ(a.line, 1u);
  EXPECT_EQ(a.fields[0], (std::pair<std::string, Value>{"id", int64_t{1}}));
  EXPECT_EQ(a.fields[1].second, Value(int64_t{9007199254740993}));  // not rounded through a double
  EXPECT_EQ(a.fields[2].second, Value(int64_t{-3}));
  EXPECT_EQ(a.fields[3].second, Value(2.5));
  EXPECT_EQ(a.fields[4].second, Value(0.25));
  EXPECT_EQ(a.fields[5].second, Value(std::string("12.34")));
  EXPECT_EQ(a.fields[6].second, Value(true));
  EXPECT_EQ(a.fields[7].second, Value(std::string("ann")));
  EXPECT_EQ(a.fields[9].second, Value(std::string("abc")));
  EXPECT_EQ(a.fields[10].second, Value(std::string("2024-01-02")));
  EXPECT_TRUE(IsNull(a.fields[11].second));
  EXPECT_EQ(a.fields[12].second, Value(int64_t{2}));

  const auto& b = sink.records[1];
  EXPECT_EQ(b.line, 2u);
  for (size_t i = 1; i < 12; ++i) EXPECT_TRUE(IsNull(b.fields[i].second)) << b.fields[i].first;

  const auto& c = sink.records[2];
  EXPECT_EQ(c.line, 3u);
  EXPECT_EQ(c.fields[1].second, Value(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(c.fields[2].second, Value(int64_t{32767}));
  EXPECT_TRUE(std::isnan(std::get<double>(c.fields[3].second)));
  EXPECT_EQ(c.fields[4].second, Value(-std::numeric_limits<double>::infinity()));
  EXPECT_EQ(c.fields[5].second, Value(std::string("1234567890123456789012.99")));  // exact
  EXPECT_EQ(c.fields[6].second, Value(false));
  EXPECT_EQ(c.fields[7].second, Value(std::string("ünïcødé 🎉 \"q\" 's'")));
  EXPECT_EQ(c.fields[8].second, Value(std::string("")));  // empty, not null
  EXPECT_EQ(c.fields[9].second, Value(std::string("x  ")));  // char(3) pads

  ASSERT_EQ(sink.rejects.size(), 1u);
  EXPECT_EQ(sink.rejects[0].where, "db:4");
  EXPECT_EQ(sink.rejects[0].rule, "blob");
}

TEST_F(PostgresQuery, StreamsManyRowsInBatches) {
  CollectingSink sink;
  PostgresOptions pg;
  pg.fetch_rows = 1000;
  Status s = Read("SELECT n, h FROM many ORDER BY n", &sink, pg);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(sink.records.size(), 25000u);
  for (size_t i = 0; i < sink.records.size(); ++i) {
    ASSERT_EQ(sink.records[i].line, i + 1);
    ASSERT_EQ(sink.records[i].fields[0].second, Value(static_cast<int64_t>(i + 1)));
  }
  EXPECT_EQ(std::get<std::string>(sink.records[0].fields[1].second), "c4ca4238a0b923820dcc509a6f75849b");  // md5('1')

  CollectingSink some;
  ASSERT_TRUE(Read("SELECT n FROM many ORDER BY n", &some, pg, 1500).ok());
  EXPECT_EQ(some.records.size(), 1500u);

  CollectingSink none;
  ASSERT_TRUE(Read("SELECT n, h FROM many WHERE n < 0", &none).ok());
  EXPECT_EQ(none.tables.size(), 1u);  // the table starts even with no rows
  EXPECT_EQ(none.schema.columns.size(), 2u);
  EXPECT_TRUE(none.records.empty());
}

TEST_F(PostgresQuery, WritesAreRefused) {
  for (const char* q : {"INSERT INTO items (id) VALUES (99)", "DELETE FROM items",
                        "WITH d AS (DELETE FROM items RETURNING id) SELECT id FROM d", "SELECT nextval('seq')",
                        "SELECT sneaky()", "SELECT id FROM items FOR UPDATE", "SELECT 1; DELETE FROM items",
                        "COMMIT; DELETE FROM items", "SELECT 1) ; DELETE FROM items; SELECT (1"}) {
    CollectingSink sink;
    Status s = Read(q, &sink);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << q << ": " << s.ToString();
    EXPECT_TRUE(sink.records.empty()) << q;
  }
  CollectingSink sink;
  Status s = Read("SELECT sneaky()", &sink);
  EXPECT_NE(s.message().find("only reads"), std::string::npos) << s.ToString();
  s = Read("SELECT 1; SELECT 2", &sink);
  EXPECT_NE(s.message().find("one statement"), std::string::npos) << s.ToString();
  auto count = server_->Psql("SELECT count(*) FROM items");
  EXPECT_EQ(count.out, "4\n") << strata::testing::Describe(count);
}

TEST_F(PostgresQuery, QueryErrorsAreClear) {
  CollectingSink sink;
  Status s = Read("SELECT * FROM nope", &sink);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("\"nope\" does not exist"), std::string::npos) << s.ToString();
  s = Read("SELEC 1", &sink);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("syntax error"), std::string::npos) << s.ToString();
  s = Read("SELECT 1 / (id - id) FROM items", &sink);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("division by zero"), std::string::npos) << s.ToString();
  s = Read("SELECT 1 AS a, 2 AS a", &sink);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("two columns named 'a'"), std::string::npos) << s.ToString();
  s = Read("  ;  ", &sink);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  PostgresOptions quick;
  quick.statement_timeout_ms = 200;
  s = Read("SELECT pg_sleep(5)", &sink, quick);
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("statement_timeout"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find(PostgresServer::kPassword), std::string::npos);
}

TEST_F(PostgresQuery, ConnectionErrorsNeverShowThePassword) {
  CollectingSink sink;
  QueryOptions o{.query = "SELECT 1"};
  const std::string secret = "Wr0ng-pa55";
  Status s = ReadPostgresQuery("postgresql://strata:" + secret + "@127.0.0.1:" + std::to_string(server_->port()) +
                                   "/postgres", o, &sink);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
  EXPECT_EQ(s.ToString().find(secret), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("postgresql://strata@127.0.0.1"), std::string::npos) << s.ToString();

  s = ReadPostgresQuery("host=127.0.0.1 port=" + std::to_string(server_->port()) + " user=nobody password='" + secret +
                            "' dbname=postgres", o, &sink);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
  EXPECT_EQ(s.ToString().find(secret), std::string::npos) << s.ToString();

  int closed = PostgresServer::FreePort();
  s = ReadPostgresQuery("postgresql://strata:" + secret + "@127.0.0.1:" + std::to_string(closed) + "/postgres", o,
                        &sink);
  EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
  EXPECT_TRUE(s.retryable());
  EXPECT_NE(s.message().find("cannot connect"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.ToString().find(secret), std::string::npos) << s.ToString();

  s = ReadPostgresQuery(server_->Uri("nodb"), o, &sink);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_EQ(s.ToString().find(PostgresServer::kPassword), std::string::npos) << s.ToString();

  s = ReadPostgresQuery("host=127.0.0.1 password " + secret, o, &sink);  // does not parse
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_TRUE(sink.records.empty());
}

TEST(PostgresConninfo, PasswordsAreRemoved) {
  EXPECT_TRUE(IsPostgresUri("postgresql://h/db"));
  EXPECT_TRUE(IsPostgresUri("postgres://h/db"));
  EXPECT_FALSE(IsPostgresUri("sqlite:x.db"));
  EXPECT_FALSE(IsPostgresUri("host=h"));
  EXPECT_EQ(RedactConninfo("postgresql://ann:p%40ss@db.example:5433/sales?sslmode=require&password=x&connect_timeout=3"),
            "postgresql://ann@db.example:5433/sales?sslmode=require&connect_timeout=3");
  EXPECT_EQ(RedactConninfo("postgres://ann@h/db"), "postgres://ann@h/db");
  EXPECT_EQ(RedactConninfo("postgresql://h1,h2/db?password=secret"), "postgresql://h1,h2/db");
  EXPECT_EQ(RedactConninfo("host=h password='a b\\' c' dbname=d"), "host=h dbname=d");
  EXPECT_EQ(RedactConninfo("password = s3 host=h"), "host=h");
  EXPECT_EQ(ConninfoDatabase("postgresql://ann:pw@h/sales"), "sales");
  EXPECT_EQ(ConninfoDatabase("host=h dbname=d"), "d");
  EXPECT_EQ(ConninfoDatabase("host=h"), "");
}

}  // namespace
}  // namespace strata::ingest

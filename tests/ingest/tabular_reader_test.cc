#include "ingest/tabular_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_sink.h"
#include "testutil/testutil.h"

namespace strata::ingest {
namespace {

using testing::CollectingSink;
using ::testing::ElementsAre;

// Hands out one byte per Read, so every token boundary (CRLF, "" escapes) falls between reads.
class OneByteFile final : public SequentialFile {
 public:
  explicit OneByteFile(std::string data) : data_(std::move(data)) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    *got = 0;
    if (pos_ < data_.size() && n > 0) {
      dst[0] = static_cast<uint8_t>(data_[pos_++]);
      *got = 1;
    }
    return Status::OK();
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

Status Csv(const std::string& text, CollectingSink* sink, CsvOptions options = {}) {
  if (options.name.empty()) options.name = "t.csv";
  // Whole blocks and one byte at a time must agree.
  CollectingSink bytewise;
  OneByteFile slow(text);
  Status slow_status = ReadCsv(&slow, options, &bytewise);
  MemorySequentialFile in(text);
  Status st = ReadCsv(&in, options, sink);
  EXPECT_EQ(st.code(), slow_status.code());
  EXPECT_EQ(sink->records.size(), bytewise.records.size());
  EXPECT_EQ(sink->RejectWheres(), bytewise.RejectWheres());
  return st;
}

Status Jsonl(const std::string& text, CollectingSink* sink, JsonlOptions options = {}) {
  if (options.name.empty()) options.name = "t.jsonl";
  MemorySequentialFile in(text);
  return ReadJsonl(&in, options, sink);
}

Value I(int64_t v) { return Value(v); }
Value D(double v) { return Value(v); }
Value B(bool v) { return Value(v); }
Value S(const char* v) { return Value(std::string(v)); }
const Value kNull{};

std::vector<Value> Values(const Record& r) {
  std::vector<Value> out;
  for (const auto& [name, v] : r.fields) out.push_back(v);
  return out;
}

Schema MakeSchema(std::vector<std::pair<std::string, ColumnType>> cols) {
  Schema s;
  for (auto& [n, t] : cols) s.columns.push_back({n, t});
  return s;
}

TEST(CsvReader, InfersTypesAndReadsValues) {
  CollectingSink sink;
  ASSERT_TRUE(Csv("id,name,score,ok,ratio\n1,ann,2.5,true,3\n-2,bob,-1e3,FALSE,4.5\n+3,,7,,\n", &sink).ok());
  EXPECT_THAT(sink.tables, ElementsAre("t.csv"));
  EXPECT_EQ(sink.schema, MakeSchema({{"id", ColumnType::kInt64},
                                     {"name", ColumnType::kString},
                                     {"score", ColumnType::kDouble},
                                     {"ok", ColumnType::kBool},
                                     {"ratio", ColumnType::kDouble}}));
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{I(1), S("ann"), D(2.5), B(true), D(3)}));
  EXPECT_EQ(Values(sink.records[1]), (std::vector<Value>{I(-2), S("bob"), D(-1000), B(false), D(4.5)}));
  EXPECT_EQ(Values(sink.records[2]), (std::vector<Value>{I(3), kNull, D(7), kNull, kNull}));
  EXPECT_EQ(sink.records[2].fields[1].first, "name");
  EXPECT_EQ(sink.records[0].line, 2u);
  EXPECT_EQ(sink.records[2].line, 4u);
  EXPECT_TRUE(sink.rejects.empty());
}

TEST(CsvReader, QuotedFieldsEscapesCrlfAndEmbeddedNewlines) {
  CollectingSink sink;
  std::string text =
      "\xEF\xBB\xBF" "a,b\r\n"
      "\"x,y\",\"say \"\"hi\"\"\"\r\n"
      "\"two\r\nlines\",\"\"\r\n"
      "\r\n"
      "007,last\r\n";
  ASSERT_TRUE(Csv(text, &sink).ok());
  EXPECT_EQ(sink.schema.columns[0].name, "a");  // the byte order mark is not part of the name
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{S("x,y"), S("say \"hi\"")}));
  // A quoted empty field is an empty string, not null.
  EXPECT_EQ(Values(sink.records[1]), (std::vector<Value>{S("two\r\nlines"), S("")}));
  // "007" in a string column keeps its zeros.
  EXPECT_EQ(Values(sink.records[2]), (std::vector<Value>{S("007"), S("last")}));
  EXPECT_EQ(sink.records[1].line, 3u);
  EXPECT_EQ(sink.records[2].line, 6u);  // after a two-line record and an empty line
}

TEST(CsvReader, MalformedRowsAreRejectedAndTheRestIsRead) {
  CollectingSink sink;
  std::string text =
      "a,b\n"
      "1,2\n"
      "1,2,3\n"
      "x\"y,2\n"
      "\"q\"z,2\n"
      "3,\xff\xfe\n"
      "4,5\n"
      "\"open,6\n";
  ASSERT_TRUE(Csv(text, &sink).ok());
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{I(1), I(2)}));
  EXPECT_EQ(Values(sink.records[1]), (std::vector<Value>{I(4), I(5)}));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("csv-field-count", "csv-quote", "csv-quote", "encoding", "csv-quote"));
  EXPECT_THAT(sink.RejectWheres(), ElementsAre("t.csv:3", "t.csv:4", "t.csv:5", "t.csv:6", "t.csv:8"));
  EXPECT_EQ(sink.rejects[0].reason, "the row has 3 fields, the table has 2 columns");
  EXPECT_EQ(sink.rejects[4].reason, "unterminated quoted field at the end of the input");
}

TEST(CsvReader, OverlongFieldsAndRecordsAreRejected) {
  CsvOptions options;
  options.max_field_bytes = 10;
  options.max_line_bytes = 40;
  CollectingSink sink;
  std::string text = "a,b\n" + std::string(11, 'x') + ",1\n\"" + std::string(100, 'y') + "\n\",2\nok,3\n";
  ASSERT_TRUE(Csv(text, &sink, options).ok());
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{S("ok"), I(3)}));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("too-long", "too-long"));
  EXPECT_THAT(sink.RejectWheres(), ElementsAre("t.csv:2", "t.csv:3"));
  EXPECT_EQ(sink.records[0].line, 5u);
}

TEST(CsvReader, ValuesThatDoNotFitTheInferredTypeAreRejected) {
  CsvOptions options;
  options.infer_rows = 2;
  CollectingSink sink;
  ASSERT_TRUE(Csv("n,f\n1,true\n2,false\nthree,true\n4,maybe\n5,true\n", &sink, options).ok());
  EXPECT_EQ(sink.schema, MakeSchema({{"n", ColumnType::kInt64}, {"f", ColumnType::kBool}}));
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(Values(sink.records[2]), (std::vector<Value>{I(5), B(true)}));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("type", "type"));
  EXPECT_EQ(sink.rejects[0].reason, "column 'n': \"three\" is not a int64");
  EXPECT_THAT(sink.RejectWheres(), ElementsAre("t.csv:4", "t.csv:5"));
}

TEST(CsvReader, MixedColumnsWidenToStringAndAllNullColumnsAreStrings) {
  CollectingSink sink;
  ASSERT_TRUE(Csv("a,b,c\n1,true,\n2.5,3,\n", &sink).ok());
  EXPECT_EQ(sink.schema, MakeSchema({{"a", ColumnType::kDouble}, {"b", ColumnType::kString}, {"c", ColumnType::kString}}));
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{D(1), S("true"), kNull}));
}

TEST(CsvReader, GivenSchemaDelimiterAndNoHeader) {
  CsvOptions options;
  options.delimiter = ';';
  options.header = false;
  CollectingSink sink;
  ASSERT_TRUE(Csv("1;a\n2;b\n", &sink, options).ok());
  EXPECT_EQ(sink.schema, MakeSchema({{"c1", ColumnType::kInt64}, {"c2", ColumnType::kString}}));
  EXPECT_EQ(sink.records[1].line, 2u);

  options.header = true;
  options.schema = MakeSchema({{"x", ColumnType::kDouble}, {"y", ColumnType::kString}});
  CollectingSink given;
  ASSERT_TRUE(Csv("x;y\n1;2\n", &given, options).ok());
  EXPECT_EQ(given.schema, *options.schema);
  EXPECT_EQ(Values(given.records[0]), (std::vector<Value>{D(1), S("2")}));

  CollectingSink wrong;
  EXPECT_EQ(Csv("y;x\n1;2\n", &wrong, options).code(), StatusCode::kInvalidArgument);
}

TEST(CsvReader, BadHeadersAndEmptyInputAreErrors) {
  for (const char* text : {"", "a,a\n1,2\n", "a,,c\n", "\"a\n"}) {
    CollectingSink sink;
    EXPECT_EQ(Csv(text, &sink).code(), StatusCode::kInvalidArgument) << text;
    EXPECT_TRUE(sink.records.empty());
  }
  CollectingSink sink;
  ASSERT_TRUE(Csv("a,b\n", &sink).ok());  // a header alone is an empty table
  EXPECT_THAT(sink.tables, ElementsAre("t.csv"));
  EXPECT_TRUE(sink.records.empty());
}

TEST(CsvReader, ReadsAFileThroughEnv) {
  strata::testing::TempDir dir;
  strata::testing::WriteFile(dir / "d.csv", "k\n5\n");
  CollectingSink sink;
  ASSERT_TRUE(ReadCsvFile(Env::Default(), dir / "d.csv", {}, &sink).ok());
  EXPECT_THAT(sink.tables, ElementsAre(dir / "d.csv"));
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{I(5)}));
  EXPECT_TRUE(ReadCsvFile(Env::Default(), dir / "none.csv", {}, &sink).IsNotFound());
}

TEST(JsonlReader, InfersColumnsFromKeysInOrderOfFirstAppearance) {
  CollectingSink sink;
  std::string text =
      "{\"id\": 1, \"name\": \"a\", \"tags\": [1, 2]}\n"
      "\n"
      "{\"id\": 2, \"score\": 0.5, \"ok\": true, \"name\": null}\r\n"
      "{\"id\": 18446744073709551615, \"score\": 3, \"meta\": {\"k\": \"v\"}}";
  ASSERT_TRUE(Jsonl(text, &sink).ok());
  EXPECT_EQ(sink.schema, MakeSchema({{"id", ColumnType::kDouble},
                                     {"name", ColumnType::kString},
                                     {"tags", ColumnType::kString},
                                     {"score", ColumnType::kDouble},
                                     {"ok", ColumnType::kBool},
                                     {"meta", ColumnType::kString}}));
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(Values(sink.records[0]), (std::vector<Value>{D(1), S("a"), S("[1,2]"), kNull, kNull, kNull}));
  EXPECT_EQ(Values(sink.records[1]), (std::vector<Value>{D(2), kNull, kNull, D(0.5), B(true), kNull}));
  EXPECT_EQ(Values(sink.records[2]),
            (std::vector<Value>{D(18446744073709551615.0), kNull, kNull, D(3), kNull, S("{\"k\":\"v\"}")}));
  EXPECT_EQ(sink.records[1].line, 3u);
  EXPECT_EQ(sink.records[2].line, 4u);
}

TEST(JsonlReader, MalformedLinesAreRejectedAndTheRestIsRead) {
  JsonlOptions options;
  options.max_depth = 8;
  options.max_line_bytes = 100;
  CollectingSink sink;
  std::string text =
      "{\"a\": 1}\n"
      "{\"a\": \n"
      "[1, 2]\n"
      "{\"a\": \"\xc3\x28\"}\n"
      "{\"a\": " + std::string(20, '[') + std::string(20, ']') + "}\n"
      "{\"a\": \"" + std::string(200, 'x') + "\"}\n"
      "{\"\": 1}\n"
      "{\"a\": 2}\n";
  ASSERT_TRUE(Jsonl(text, &sink, options).ok());
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(Values(sink.records[1]), (std::vector<Value>{I(2)}));
  EXPECT_THAT(sink.RejectRules(),
              ElementsAre("json-syntax", "json-not-object", "encoding", "json-depth", "too-long", "json-empty-key"));
  EXPECT_THAT(sink.RejectWheres(),
              ElementsAre("t.jsonl:2", "t.jsonl:3", "t.jsonl:4", "t.jsonl:5", "t.jsonl:6", "t.jsonl:7"));
}

TEST(JsonlReader, AfterInferenceUnknownKeysAndWrongTypesAreRejected) {
  JsonlOptions options;
  options.infer_rows = 1;
  CollectingSink sink;
  ASSERT_TRUE(Jsonl("{\"a\": 1}\n{\"a\": 2, \"b\": 3}\n{\"a\": \"x\"}\n{\"a\": 2.5}\n{\"a\": 4}\n", &sink, options).ok());
  EXPECT_EQ(sink.schema, MakeSchema({{"a", ColumnType::kInt64}}));
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(Values(sink.records[1]), (std::vector<Value>{I(4)}));
  EXPECT_THAT(sink.RejectRules(), ElementsAre("json-unknown-column", "type", "type"));
}

TEST(JsonlReader, DeepNestingDoesNotReachTheParser) {
  CollectingSink sink;
  std::string deep = "{\"a\": " + std::string(1'000'000, '[') + "}\n{\"a\": 1}\n";
  ASSERT_TRUE(Jsonl(deep, &sink).ok());
  EXPECT_THAT(sink.RejectRules(), ElementsAre("json-depth"));
  EXPECT_EQ(sink.records.size(), 1u);
}

TEST(JsonlReader, EmptyInputIsAnEmptyTable) {
  CollectingSink sink;
  ASSERT_TRUE(Jsonl("", &sink).ok());
  EXPECT_THAT(sink.tables, ElementsAre("t.jsonl"));
  EXPECT_TRUE(sink.schema.columns.empty());
}

}  // namespace
}  // namespace strata::ingest

// The string ops of text pipelines on non-ASCII text, and UTF-8 validation.
#include <gtest/gtest.h>

#include "ingest/source.h"
#include "transform/pipeline.h"
#include "transform/text_ops.h"

namespace strata::transform {
namespace {

std::string Apply(const std::string& yaml_op, std::string text) {
  auto p = ParsePipeline("ops: [text, " + yaml_op + "]\n", "p");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return "";
  std::string error;
  EXPECT_TRUE(ApplyTextOp(p->ops[1], text, &error)) << error;
  return text;
}

TEST(TextOpsTest, UnicodeFormsLowercaseAndWhitespace) {
  const std::string decomposed = "Cafe\xcc\x81";  // e + combining acute
  EXPECT_EQ(Apply("{unicode: {form: NFC}}", decomposed), "Caf\xc3\xa9");
  EXPECT_EQ(Apply("{unicode: {form: NFD}}", "Caf\xc3\xa9"), decomposed);
  EXPECT_EQ(Apply("{unicode: {form: NFKC}}", "\xef\xac\x81le \xe2\x91\xa0"), "file 1");  // ligature fi, circled 1
  EXPECT_EQ(Apply("lowercase", "\xc3\x80GE \xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91 ABC"),
            "\xc3\xa0ge \xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1 abc");  // Àge ΣΟΦΙΑ
  // Tabs, newlines and a no-break space are white space; none is left at the ends.
  EXPECT_EQ(Apply("whitespace", " \t a\n\n b\xc2\xa0\xc2\xa0" "c  "), "a b c");
  EXPECT_EQ(Apply("whitespace", "   "), "");
}

TEST(TextOpsTest, StopwordsIgnorePunctuationAtTheEndsOfAWord) {
  EXPECT_EQ(Apply("{stopwords: {words: [the, of]}}", "The end of the line, the."), "The end line,");
  EXPECT_EQ(Apply("{stopwords: {words: english}}", "\xc2\xabthe\xc2\xbb river and (a) stone"), "river stone");
  EXPECT_EQ(Apply("{stopwords: {words: [x]}}", "x-ray x"), "x-ray");
}

TEST(TextOpsTest, Utf8Validation) {
  EXPECT_TRUE(ingest::IsValidUtf8(""));
  EXPECT_TRUE(ingest::IsValidUtf8("plain ascii"));
  EXPECT_TRUE(ingest::IsValidUtf8("caf\xc3\xa9 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(ingest::IsValidUtf8("caf\xc3"));            // truncated
  EXPECT_FALSE(ingest::IsValidUtf8("\xc0\xaf"));           // overlong '/'
  EXPECT_FALSE(ingest::IsValidUtf8("\xed\xa0\x80"));       // a surrogate
  EXPECT_FALSE(ingest::IsValidUtf8("\xf4\x90\x80\x80"));   // past U+10FFFF
  EXPECT_FALSE(ingest::IsValidUtf8("\xff"));
}

TEST(TextOpsTest, TrainedModelsAreDeterministicAndPaddingTruncates) {
  auto p = ParsePipeline("ops: [text, {tokenize: {vocab_size: 30, model_type: bpe}}, {pad: {length: 4}}]\n", "p");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("alpha beta gamma delta " + std::to_string(i % 7));
  auto a = Tokenizer::Train(p->ops[1], texts, 1);
  auto b = Tokenizer::Train(p->ops[1], texts, 1);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  auto tok = Tokenizer::Load(*a, "m");
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ((*tok)->pad_id(), 0);
  auto ids = (*tok)->Encode("alpha beta gamma delta 3", p->ops[1]);
  ASSERT_TRUE(ids.ok());
  ASSERT_GT(ids->size(), 4u);
  shard::Tensor t = TokensToTensor(*ids, &p->ops[2], 0);
  EXPECT_EQ(t.shape, (std::vector<uint64_t>{4}));
  shard::Tensor padded = TokensToTensor({5}, &p->ops[2], 0);
  EXPECT_EQ(padded.data, std::string("\x05\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16));
  EXPECT_EQ(Tokenizer::Load("not a model", "m.model").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Tokenizer::Train(p->ops[1], {}, 1).ok());
}

}  // namespace
}  // namespace strata::transform

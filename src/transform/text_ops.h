// The text ops of a pipeline: Unicode normalisation, case folding, whitespace, stop words, and
// SentencePiece tokenisation into token ids with padding or truncation. Text is UTF-8 throughout;
// every op is a pure function of its input and parameters, so a record's output never depends on
// the thread that ran it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "strata/shard.h"
#include "strata/status.h"
#include "transform/pipeline.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace strata::transform {

// Applies one of the string ops (unicode, lowercase, whitespace, stopwords) to valid UTF-8 text
// (ingest::IsValidUtf8 checks it first).
// Returns false and sets `error` when it cannot (an invalid byte sequence).
bool ApplyTextOp(const Op& op, std::string& text, std::string* error);

// The built-in stop-word list `name` ("english"), or nullptr.
const std::vector<std::string>* BuiltinStopwords(std::string_view name);

// A SentencePiece model, loaded from its serialized form, shared by the workers (encoding is
// const and thread-safe).
class Tokenizer {
 public:
  ~Tokenizer();
  // kInvalidArgument when `model` is not a SentencePiece model.
  static Result<std::unique_ptr<Tokenizer>> Load(std::string_view model, std::string_view where);
  // Trains a model on `texts` as the tokenize op says (vocab_size, model_type, character
  // coverage; ids: pad 0, unk 1, bos 2, eos 3). Deterministic: one training thread and a fixed
  // seed, so the same texts give the same model bytes.
  static Result<std::string> Train(const Op& op, const std::vector<std::string>& texts, uint64_t seed);

  // Token ids of `text`, with bos/eos when the op asks for them.
  Result<std::vector<int32_t>> Encode(std::string_view text, const Op& op) const;
  int vocab_size() const;
  int pad_id() const;  // -1 when the model has none

 private:
  Tokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

// Token ids as an int32 tensor; with a pad op, truncated or padded to its length.
shard::Tensor TokensToTensor(std::vector<int32_t> ids, const Op* pad, int32_t pad_id);

}  // namespace strata::transform

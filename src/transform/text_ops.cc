#include "transform/text_ops.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <utf8proc.h>

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

namespace strata::transform {
namespace {

// Decodes the code point at text[*i] (valid UTF-8 assumed) and advances *i.
utf8proc_int32_t Next(std::string_view text, size_t* i) {
  utf8proc_int32_t cp = 0;
  utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + *i),
                                        static_cast<utf8proc_ssize_t>(text.size() - *i), &cp);
  *i += n > 0 ? static_cast<size_t>(n) : 1;
  return n > 0 ? cp : 0xFFFD;
}

void Append(utf8proc_int32_t cp, std::string* out) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(cp, buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

bool IsSpace(utf8proc_int32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;
  auto cat = utf8proc_category(cp);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

bool IsPunct(utf8proc_int32_t cp) {
  auto cat = utf8proc_category(cp);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool Normalize(const std::string& form, std::string& text, std::string* error) {
  utf8proc_option_t options = UTF8PROC_STABLE;
  if (form == "NFC") options = utf8proc_option_t(options | UTF8PROC_COMPOSE);
  else if (form == "NFD") options = utf8proc_option_t(options | UTF8PROC_DECOMPOSE);
  else if (form == "NFKC") options = utf8proc_option_t(options | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  else options = utf8proc_option_t(options | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &out, options);
  if (n < 0) {
    *error = utf8proc_errmsg(n);
    return false;
  }
  text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return true;
}

void Lowercase(std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {  // ASCII: the common case, without a table lookup
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      ++i;
      continue;
    }
    Append(utf8proc_tolower(Next(text, &i)), &out);
  }
  text.swap(out);
}

// Runs of white space become one space; none at either end.
void CollapseWhitespace(std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    utf8proc_int32_t cp = static_cast<unsigned char>(text[i]) < 0x80 ? text[i++] : Next(text, &i);
    if (IsSpace(cp)) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.append(text, start, i - start);
  }
  text.swap(out);
}

// Words are runs between white space; a word is dropped when, without the punctuation at its
// ends, it is one of the stop words. What is kept is joined by single spaces.
void RemoveStopwords(const std::unordered_set<std::string>& words, std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    utf8proc_int32_t cp = Next(text, &i);
    if (IsSpace(cp)) continue;
    size_t end = i;
    while (end < text.size()) {
      size_t at = end;
      if (IsSpace(Next(text, &end))) {
        end = at;
        break;
      }
    }
    i = end;
    std::string_view word(text.data() + start, end - start);
    // Trim punctuation at both ends for the comparison only.
    size_t a = 0, b = word.size();
    while (a < b) {
      size_t k = a;
      if (!IsPunct(Next(word, &k))) break;
      a = k;
    }
    while (b > a) {
      size_t k = b - 1;
      while (k > a && (static_cast<unsigned char>(word[k]) & 0xC0) == 0x80) --k;
      size_t probe = k;
      if (!IsPunct(Next(word, &probe))) break;
      b = k;
    }
    if (a < b && words.count(std::string(word.substr(a, b - a)))) continue;
    if (!out.empty()) out.push_back(' ');
    out.append(word);
  }
  text.swap(out);
}

}  // namespace

bool ApplyTextOp(const Op& op, std::string& text, std::string* error) {
  switch (op.kind) {
    case OpKind::kUnicode: return Normalize(op.mode, text, error);
    case OpKind::kLowercase: Lowercase(text); return true;
    case OpKind::kWhitespace: CollapseWhitespace(text); return true;
    case OpKind::kStopwords: RemoveStopwords(*op.word_set, text); return true;
    default:
      *error = fmt::format("op '{}' is not a text op", op.name);
      return false;
  }
}

const std::vector<std::string>* BuiltinStopwords(std::string_view name) {
  // Function words of English: articles, pronouns, auxiliaries, prepositions and conjunctions.
  static const std::vector<std::string> kEnglish = {
      "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at",
      "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could",
      "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has",
      "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if",
      "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor",
      "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out",
      "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
      "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to",
      "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
      "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
      "yourselves"};
  if (name == "english") return &kEnglish;
  return nullptr;
}

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::Load(std::string_view model, std::string_view where) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  auto s = t->sp_->LoadFromSerializedProto(model);
  if (!s.ok()) {
    return Status::InvalidArgument(fmt::format("{} is not a SentencePiece model: {}", where, s.ToString()));
  }
  return t;
}

namespace {

// Feeds the training texts to SentencePiece without a file.
class Texts : public sentencepiece::SentenceIterator {
 public:
  explicit Texts(const std::vector<std::string>& texts) : texts_(texts) {}
  bool done() const override { return i_ >= texts_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return texts_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& texts_;
  size_t i_ = 0;
};

}  // namespace

Result<std::string> Tokenizer::Train(const Op& op, const std::vector<std::string>& texts, uint64_t seed) {
  if (texts.empty()) return Status::InvalidArgument("tokenize: no text to train the model on");
  // SentencePiece's trainer has process-wide state (its random generator, its log level).
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(seed ^ (seed >> 32)));
  std::unordered_map<std::string, std::string> args = {
      {"vocab_size", std::to_string(op.vocab_size)},
      {"model_type", op.model_type},
      {"character_coverage", fmt::format("{}", op.character_coverage)},
      {"pad_id", "0"}, {"unk_id", "1"}, {"bos_id", "2"}, {"eos_id", "3"},
      {"num_threads", "1"},
      {"shuffle_input_sentence", "false"},
      {"input_sentence_size", "0"},
      {"max_sentence_length", "1048576"},
      {"minloglevel", "2"},
  };
  // A vocabulary larger than the text allows is an error for unigram; "hard_vocab_limit=false"
  // makes it a maximum instead.
  args["hard_vocab_limit"] = "false";
  Texts it(texts);
  std::string model;
  auto s = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!s.ok()) return Status::InvalidArgument(fmt::format("tokenize: training the model failed: {}", s.ToString()));
  return model;
}

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, const Op& op) const {
  std::vector<int> ids;
  auto s = sp_->Encode(text, &ids);
  if (!s.ok()) return Status::InvalidArgument(fmt::format("tokenize: {}", s.ToString()));
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (op.add_bos && sp_->bos_id() >= 0) out.push_back(sp_->bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  if (op.add_eos && sp_->eos_id() >= 0) out.push_back(sp_->eos_id());
  return out;
}

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int Tokenizer::pad_id() const { return sp_->pad_id(); }

shard::Tensor TokensToTensor(std::vector<int32_t> ids, const Op* pad, int32_t pad_id) {
  if (pad) ids.resize(static_cast<size_t>(pad->length), pad_id);
  shard::Tensor t;
  t.dtype = shard::DType::kInt32;
  t.shape = {ids.size()};
  t.data.resize(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t v = static_cast<uint32_t>(ids[i]);
    for (int b = 0; b < 4; ++b) t.data[4 * i + b] = static_cast<char>(v >> (8 * b));
  }
  return t;
}

}  // namespace strata::transform

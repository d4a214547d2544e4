// The transform driver: selects the input records, fits statistics (first pass), runs the ops
// on a thread pool and writes the results in path order into a shard set (second pass), then
// stores the shards, the manifest and the error report as one commit of the output branch.
#include "strata/transform.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <utf8proc.h>

#include "base/progress.h"
#include "base/thread_pool.h"
#include "ingest/source.h"
#include "strata/shard.h"
#include "transform/image_ops.h"
#include "transform/pipeline.h"
#include "transform/tabular_ops.h"
#include "transform/text_ops.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "unknown"
#endif
#ifndef STRATA_YAMLCPP_VERSION
#define STRATA_YAMLCPP_VERSION "unknown"
#endif
#ifndef STRATA_SENTENCEPIECE_VERSION
#define STRATA_SENTENCEPIECE_VERSION "unknown"
#endif

namespace strata {

using nlohmann::json;
using transform::ChannelSums;
using transform::Op;
using transform::OpKind;
using transform::Pipeline;

namespace {

constexpr uint64_t kMaxInputBytes = uint64_t{256} << 20;
constexpr std::string_view kErrorsPath = ".strata/transform-errors.jsonl";
constexpr std::string_view kTokenizerPath = "tokenizer.model";
constexpr std::string_view kInputsPath = ".strata/transform-inputs.jsonl";
// Kept only in the partial output (OUT@BRANCH.partial) of a run that has not finished.
constexpr std::string_view kProgressPath = ".strata/transform-progress.json";
constexpr std::string_view kFitPath = ".strata/transform-fit.json";
constexpr std::string_view kPartialSuffix = ".partial";
constexpr std::string_view kPartialMeta = "transform.partial";

// One selected input record.
struct Item {
  std::string path;
  const RecordMeta* row = nullptr;  // its row of the records file
  std::string content;              // content id (hex) of a file; empty for a table row
  uint64_t size = 0;
  int64_t reuse_from = -1;          // set-wide index of its first record in the previous output
  uint32_t written = 0;             // records written for it (0: it failed)
  int64_t label = -1;        // class index; -1: none
  std::string label_error;   // why the record has no usable label
};

// What a worker made of one record.
struct ItemResult {
  Status fatal;              // the input could not be read: the whole transform fails
  std::string error_op, error;
  std::string raw;           // image: the encoded bytes (first pass), kept for the second when they fit
  ChannelSums sums;
  bool sums_reused = false;  // taken from the previous output, nothing read
  std::string text;          // text: after the string ops (the tokenizer's training pass)
  // Per variant, the values of the fields the pipeline makes (the record less label, path and
  // variant, which the writer adds). An image's tensor comes without data: the writer makes it
  // from `images` straight into the shard's write buffer.
  std::vector<shard::Record> values;
  std::vector<cv::Mat> images;
  uint64_t bytes = 0;        // memory the result holds
};

// Wall seconds and CPU seconds (every thread of the process) since it was made.
class Stopwatch {
 public:
  double Wall() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count(); }
  double Cpu() const { return ProcessCpu() - cpu_; }

 private:
  static double ProcessCpu() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  std::chrono::steady_clock::time_point wall_ = std::chrono::steady_clock::now();
  double cpu_ = ProcessCpu();
};

// Runs produce(i) for i in [first_index, n) on `pool` and consume(i, result) on the calling thread in
// index order. Results wait in memory until consumed; how many run ahead is set from the
// average result size so that they stay below `budget`. A task produces a run of consecutive
// records, as many as a worker's share of that window allows (up to 64), so that small records
// (a line of text, a 28x28 image) do not cost a hand-off between threads each.
template <class R, class Produce, class Consume>
Status RunOrdered(ThreadPool& pool, size_t first_index, size_t n, uint64_t budget, Produce produce, Consume consume) {
  std::mutex mu;
  std::condition_variable ready;
  std::map<size_t, R> done;
  size_t next = first_index;
  const size_t min_window = 2 * pool.size() + 2;
  size_t window = min_window;
  uint64_t seen_bytes = 0;
  Status status;
  for (size_t i = first_index; i < n; ++i) {
    while (next < n && next < i + window) {
      size_t run = std::clamp<size_t>(window / (2 * pool.size()), 1, 64);
      size_t first = next, last = std::min({n, i + window, first + run});
      next = last;
      pool.Submit([&, first, last] {
        for (size_t j = first; j < last; ++j) {
          R r = produce(j);
          std::lock_guard<std::mutex> lock(mu);
          done.emplace(j, std::move(r));
          if (j == first || j + 1 == last) ready.notify_all();
        }
      });
    }
    R r;
    {
      std::unique_lock<std::mutex> lock(mu);
      ready.wait(lock, [&] { return done.count(i) > 0; });
      auto it = done.find(i);
      r = std::move(it->second);
      done.erase(it);
    }
    seen_bytes += r.bytes + 256;
    uint64_t avg = seen_bytes / (i - first_index + 1);
    window = static_cast<size_t>(std::clamp<uint64_t>(budget / avg, min_window, 65536));
    status = consume(i, r);
    if (!status.ok()) break;
  }
  pool.Wait();  // tasks still running refer to this frame
  return status;
}

Result<std::string> ReadInput(Repository* repo, const ObjectId& tree, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto reader, repo->OpenFile(tree, path));
  if (reader->size() > kMaxInputBytes) {
    return Status::InvalidArgument(fmt::format("{}: {} bytes is over the {} byte limit for one record", path,
                                               reader->size(), kMaxInputBytes));
  }
  std::string data(reader->size(), '\0');
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(reader->ReadAt(0, data.size(), reinterpret_cast<uint8_t*>(data.data()), &got));
  data.resize(got);
  return data;
}

std::string ExtensionOf(std::string_view path) {
  std::string_view base = Basename(path);
  size_t dot = base.rfind('.');
  if (dot == std::string_view::npos) return "";
  std::string ext(base.substr(dot));
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Keeps OpenCV from starting threads of its own inside our workers (one pool, sized by us).
class OpenCvThreadsGuard {
 public:
  OpenCvThreadsGuard() : old_(cv::getNumThreads()) { cv::setNumThreads(0); }
  ~OpenCvThreadsGuard() { cv::setNumThreads(old_); }

 private:
  int old_;
};

// A directory for the shards while they are built, removed with everything in it.
class WorkDir {
 public:
  ~WorkDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  Status Create(const std::string& parent) {
    std::string base = parent;
    if (base.empty()) {
      const char* tmp = getenv("TMPDIR");
      base = tmp && *tmp ? tmp : "/tmp";
    }
    std::string tmpl = JoinPath(base, "strata-transform-XXXXXX");
    if (!mkdtemp(tmpl.data())) return Status::FromErrno(errno, tmpl);
    path_ = tmpl;
    return Status::OK();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Driver {
 public:
  Driver(Repository* repo, Lake* lake, const TransformOptions& o) : repo_(repo), lake_(lake), o_(o) {}

  Result<TransformReport> Run(std::string_view input, std::string_view output) {
    auto start = std::chrono::steady_clock::now();
    STRATA_ASSIGN_OR_RETURN(pipeline_, transform::ParsePipeline(o_.pipeline, o_.pipeline_name));
    report_.pipeline_hash = pipeline_.hash;
    STRATA_ASSIGN_OR_RETURN(in_, lake_->Resolve(input));
    STRATA_ASSIGN_OR_RETURN(out_, ParseRefSpec(output));
    if (!out_.path.empty()) return Status::InvalidArgument(fmt::format("--out is NAME@BRANCH, without a path (got '{}')", output));
    report_.input_commit = in_.commit.id.ToHex();
    report_.input_tree = in_.commit.tree.ToHex();
    key_ = fmt::format("{}:{}:{}", report_.input_tree, in_.spec.path, pipeline_.hash);

    if (!o_.force) {
      auto head = lake_->Resolve(out_.ToString());
      if (head.ok()) {
        auto k = head->commit.meta.find("transform.key");
        if (k != head->commit.meta.end() && k->second == key_) {
          report_.up_to_date = true;
          report_.commit.commit = report_.commit.parent = head->commit.id;
          report_.commit.tree = head->commit.tree;
          report_.commit.unchanged = true;
          auto rec = head->commit.meta.find("transform.records");
          if (rec != head->commit.meta.end()) report_.records_out = std::stoull(rec->second);
          // A run killed after it moved the branch and before it removed its partial output.
          auto partial = lake_->Resolve(PartialName());
          if (partial.ok() && partial->commit.meta.count(std::string(kPartialMeta))) (void)lake_->DeleteRef(PartialName());
          report_.seconds = Seconds(start);
          return report_;
        }
      } else if (!head.status().IsNotFound()) {
        return head.status();
      }
    }

    STRATA_RETURN_IF_ERROR(Select());
    // Nothing is visible until the final commit; a branch made for the output goes again if
    // anything fails, and so does the partial output unless it holds finished shards.
    STRATA_ASSIGN_OR_RETURN(bool created, EnsureOutputBranch());
    Status s = Compute();
    stage_.reset();
    if (!s.ok()) {
      if (created) (void)lake_->DeleteRef(out_.dataset + "@" + out_.ref);
      if (partial_made_ && report_.checkpoints == 0 && !resumed_) {
        (void)lake_->DeleteRef(PartialName());
      } else if (partial_made_) {
        s = s.WithContext(fmt::format("the {} records in {} shard(s) finished so far are kept on {}; the same command "
                                      "resumes from them",
                                      kept_records_, kept_shards_, PartialName()));
      }
      return s;
    }
    report_.seconds = Seconds(start);
    return report_;
  }

 private:
  Status Compute() {
    OpenCvThreadsGuard cv_threads;
    size_t threads = ThreadsOrCores(o_.threads);
    ThreadPool pool(threads, 4 * threads);
    // Dated like the input commit, so that the same output has the same entries.
    attrs_ = FileAttrs{.mode = 0644, .mtime_ns = in_.commit.time_ns > 0 ? in_.commit.time_ns : 1};
    STRATA_RETURN_IF_ERROR(OpenPartial());
    if (!o_.force) STRATA_RETURN_IF_ERROR(LoadPrevious());
    auto phase = std::chrono::steady_clock::now();
    last_checkpoint_ = phase;
    if (pipeline_.normalize_index >= 0 && pipeline_.ops[pipeline_.normalize_index].fit) {
      if (!resumed_) {
        STRATA_RETURN_IF_ERROR(Fit(pool));
        if (CheckpointDue()) STRATA_RETURN_IF_ERROR(Checkpoint(0, 0));
      }
    } else if (pipeline_.tokenize_index >= 0) {
      STRATA_RETURN_IF_ERROR(PrepareTokenizer(pool));
    } else if (pipeline_.kind == transform::PipelineKind::kTabular) {
      STRATA_RETURN_IF_ERROR(FitTable());
    }
    report_.fit_seconds = Seconds(phase);
    if (previous_) PlanReuse();
    Stopwatch write;
    WorkDir work;
    STRATA_RETURN_IF_ERROR(work.Create(o_.work_dir));
    dir_ = work.path();
    return WriteAndCommit(pool, write);
  }

  static double Seconds(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
  }
  void AddStoreTime(const Stopwatch& store) {
    report_.store_seconds += store.Wall();
    report_.store_cpu_seconds += store.Cpu();
  }

  // The input records the pipeline takes, in path order, with their labels: files (rows with
  // content) or, for tables and text columns, any rows.
  Status Select() {
    STRATA_ASSIGN_OR_RETURN(rows_, lake_->Records(in_.spec.ToString()));
    std::string prefix = in_.spec.path.empty() ? pipeline_.prefix
                         : pipeline_.prefix.empty() ? in_.spec.path + "/"
                                                    : JoinPath(in_.spec.path, pipeline_.prefix);
    std::vector<const RecordMeta*> chosen;
    for (const auto& row : rows_) {
      auto path = row.find("path");
      auto content = row.find("content");
      if (path == row.end()) continue;
      bool has_content = content != row.end() && !std::holds_alternative<std::monostate>(content->second);
      if (!has_content && !pipeline_.reads_rows) continue;
      const auto* p = std::get_if<std::string>(&path->second);
      if (!p || p->starts_with(".strata/") || p->starts_with(kQuarantineDir) || !p->starts_with(prefix)) continue;
      if (!pipeline_.extensions.empty() &&
          !std::binary_search(pipeline_.extensions.begin(), pipeline_.extensions.end(), ExtensionOf(*p))) {
        continue;
      }
      chosen.push_back(&row);
    }
    // Lake::Records returns rows in path order; sorting is only a guard.
    auto by_path = [](const RecordMeta* a, const RecordMeta* b) {
      return std::get<std::string>(a->at("path")) < std::get<std::string>(b->at("path"));
    };
    if (!std::is_sorted(chosen.begin(), chosen.end(), by_path)) std::sort(chosen.begin(), chosen.end(), by_path);

    // Classes: as listed, else integer labels as they are, else the sorted distinct names.
    classes_ = pipeline_.classes;
    bool all_int = true;
    std::set<std::string> names;
    if (pipeline_.has_label && classes_.empty()) {
      for (const auto* row : chosen) {
        auto l = row->find(pipeline_.label_column);
        if (l == row->end()) continue;
        if (const auto* s = std::get_if<std::string>(&l->second)) {
          all_int = false;
          names.insert(*s);
        }
      }
      if (!all_int) classes_.assign(names.begin(), names.end());
    }
    std::map<std::string, int64_t> index;
    for (size_t i = 0; i < classes_.size(); ++i) index[classes_[i]] = static_cast<int64_t>(i);

    for (const auto* row : chosen) {
      Item item;
      item.row = row;
      item.path = std::get<std::string>(row->at("path"));
      if (auto c = row->find("content"); c != row->end()) {
        if (const auto* hex = std::get_if<std::string>(&c->second)) item.content = *hex;
      }
      if (auto s = row->find("size"); s != row->end()) {
        if (const auto* v = std::get_if<int64_t>(&s->second)) item.size = static_cast<uint64_t>(*v);
      }
      if (pipeline_.has_label) {
        auto l = row->find(pipeline_.label_column);
        if (l == row->end() || std::holds_alternative<std::monostate>(l->second)) {
          item.label_error = fmt::format("no '{}' column", pipeline_.label_column);
        } else if (const auto* s = std::get_if<std::string>(&l->second)) {
          auto it = index.find(*s);
          if (it != index.end()) item.label = it->second;
          else item.label_error = fmt::format("label '{}' is not one of the {} classes", *s, classes_.size());
        } else if (const auto* v = std::get_if<int64_t>(&l->second)) {
          if (*v < 0 || *v > UINT32_MAX || (!classes_.empty() && *v >= static_cast<int64_t>(classes_.size()))) {
            item.label_error = fmt::format("label {} is out of range", *v);
          } else {
            item.label = *v;
            max_label_ = std::max(max_label_, *v);
          }
        } else {
          item.label_error = "label is neither text nor an integer";
        }
      }
      items_.push_back(std::move(item));
    }
    report_.records_in = items_.size();
    raw_.resize(items_.size());
    return Status::OK();
  }

  // Reads (or takes from the first pass) and decodes record i. An empty matrix: `r` says why.
  cv::Mat Load(size_t i, ItemResult& r) {
    const Item& item = items_[i];
    if (!item.label_error.empty()) {
      r.error_op = "label";
      r.error = item.label_error;
      return {};
    }
    std::string_view bytes = raw_[i];
    if (bytes.empty()) {
      auto data = ReadInput(repo_, in_.commit.tree, item.path);
      if (!data.ok()) {
        if (data.status().code() == StatusCode::kInvalidArgument) {
          r.error_op = "read";
          r.error = data.status().message();
        } else {
          r.fatal = data.status().WithContext(fmt::format("reading {}", item.path));
        }
        return {};
      }
      r.raw = std::move(*data);
      bytes = r.raw;
    }
    std::string error;
    cv::Mat img = transform::DecodeImage({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
                                         pipeline_.ops[0], &error);
    if (img.empty()) {
      r.error_op = "decode";
      r.error = error;
    }
    return img;
  }

  // Runs ops [1, end) on `img` with the random stream of (record i, variant).
  bool RunOps(size_t i, size_t end, uint32_t variant, cv::Mat& img, ItemResult& r) {
    transform::Rng rng = transform::RecordRng(pipeline_.seed, items_[i].path, variant);
    std::string error;
    for (size_t k = 1; k < end; ++k) {
      const Op& op = pipeline_.ops[k];
      bool ok = false;
      try {
        ok = transform::ApplyImageOp(op, img, rng, &error);
      } catch (const cv::Exception& e) {
        error = e.what();
      }
      if (!ok) {
        r.error_op = op.name;
        r.error = error;
        return false;
      }
    }
    return true;
  }

  size_t ImageOpsEnd() const {
    size_t end = pipeline_.ops.size();
    while (end > 0 && (pipeline_.ops[end - 1].kind == OpKind::kTensor || pipeline_.ops[end - 1].kind == OpKind::kNormalize)) --end;
    return end;
  }

  // --- text ---

  // Reads record i's text (its file, or its column) and runs the string ops on it; false (and
  // `r` says why) when it cannot.
  bool LoadText(size_t i, ItemResult& r) {
    const Item& item = items_[i];
    auto fail = [&](std::string op, std::string error) {
      r.error_op = std::move(op);
      r.error = std::move(error);
      return false;
    };
    if (!item.label_error.empty()) return fail("label", item.label_error);
    const Op& first = pipeline_.ops[0];
    if (first.column.empty()) {
      auto data = ReadInput(repo_, in_.commit.tree, item.path);
      if (!data.ok()) {
        if (data.status().code() == StatusCode::kInvalidArgument) return fail("read", data.status().message());
        r.fatal = data.status().WithContext(fmt::format("reading {}", item.path));
        return false;
      }
      r.text = std::move(*data);
    } else {
      auto v = item.row->find(first.column);
      if (v == item.row->end() || std::holds_alternative<std::monostate>(v->second)) {
        return fail("text", fmt::format("no '{}' column", first.column));
      }
      const auto* s = std::get_if<std::string>(&v->second);
      if (!s) return fail("text", fmt::format("column '{}' is not text", first.column));
      r.text = *s;
    }
    if (!ingest::IsValidUtf8(r.text)) return fail("text", "not valid UTF-8");
    const size_t end = pipeline_.tokenize_index >= 0 ? pipeline_.tokenize_index : pipeline_.ops.size();
    std::string error;
    for (size_t k = 1; k < end; ++k) {
      if (!transform::ApplyTextOp(pipeline_.ops[k], r.text, &error)) return fail(pipeline_.ops[k].name, error);
    }
    return true;
  }

  // A tokenizer given as a file of the input version is read from it; otherwise one is trained
  // on the records' text after the string ops (in path order, up to half the memory budget).
  // Either way its model is stored with the output as tokenizer.model.
  Status PrepareTokenizer(ThreadPool& pool) {
    const Op& op = pipeline_.ops[pipeline_.tokenize_index];
    uint64_t trained_on = 0;
    if (op.model == "train" && resumed_) {
      // Trained by the interrupted run: the model is in its partial output.
      auto model = ReadInput(repo_, partial_tree_, std::string(kTokenizerPath));
      if (!model.ok()) return model.status().WithContext(fmt::format("reading the trained tokenizer of {}", PartialName()));
      tokenizer_model_ = std::move(*model);
      trained_on = stats_.value("tokenizer", json::object()).value("trained_on", uint64_t{0});
    } else if (op.model != "train") {
      auto model = ReadInput(repo_, in_.commit.tree, op.model);
      if (!model.ok()) {
        return model.status().WithContext(fmt::format("tokenize: reading the model {} of {}", op.model, in_.spec.dataset));
      }
      tokenizer_model_ = std::move(*model);
    } else {
      Progress progress("transform: reading text for the tokenizer", 0, o_.progress);
      std::vector<std::string> texts;
      uint64_t bytes = 0;
      bool full = false;
      STRATA_RETURN_IF_ERROR(RunOrdered<ItemResult>(
          pool, 0, items_.size(), o_.memory_budget,
          [&](size_t i) {
            ItemResult r;
            if (!LoadText(i, r)) r.text.clear();
            r.bytes = r.text.size();
            return r;
          },
          [&](size_t, ItemResult& r) -> Status {
            if (!r.fatal.ok()) return r.fatal;
            progress.Add(r.text.size(), 1);
            if (r.text.empty() || full) return Status::OK();
            if (bytes + r.text.size() > o_.memory_budget / 2) {
              full = true;
              return Status::OK();
            }
            bytes += r.text.size();
            texts.push_back(std::move(r.text));
            return Status::OK();
          }));
      progress.Finish();
      trained_on = texts.size();
      STRATA_ASSIGN_OR_RETURN(tokenizer_model_, transform::Tokenizer::Train(op, texts, pipeline_.seed));
    }
    STRATA_ASSIGN_OR_RETURN(tokenizer_, transform::Tokenizer::Load(tokenizer_model_, op.model == "train" ? "the trained model" : op.model));
    std::string digest = transform::Sha256(tokenizer_model_);
    json t = {{"model", kTokenizerPath},
              {"source", op.model},
              {"sha256", ToHex(reinterpret_cast<const uint8_t*>(digest.data()), digest.size())},
              {"vocab_size", tokenizer_->vocab_size()},
              {"pad_id", PadId()}};
    if (op.model == "train") t["trained_on"] = trained_on;
    stats_["tokenizer"] = t;
    return stage_->AddBytes(std::string(kTokenizerPath), tokenizer_model_, attrs_);
  }

  int32_t PadId() const {
    if (pipeline_.pad_index >= 0 && pipeline_.ops[pipeline_.pad_index].pad_id >= 0) {
      return pipeline_.ops[pipeline_.pad_index].pad_id;
    }
    return tokenizer_ && tokenizer_->pad_id() >= 0 ? tokenizer_->pad_id() : 0;
  }

  // The values of text record i: its token ids (and their count before padding), or its text.
  void MakeText(size_t i, ItemResult& r) {
    if (!LoadText(i, r)) return;
    shard::Record values;
    if (!tokenizer_) {
      values.emplace_back(std::move(r.text));
    } else {
      auto ids = tokenizer_->Encode(r.text, pipeline_.ops[pipeline_.tokenize_index]);
      if (!ids.ok()) {
        r.error_op = "tokenize";
        r.error = ids.status().message();
        return;
      }
      int64_t n = static_cast<int64_t>(ids->size());
      const Op* pad = pipeline_.pad_index >= 0 ? &pipeline_.ops[pipeline_.pad_index] : nullptr;
      values.emplace_back(transform::TokensToTensor(std::move(*ids), pad, PadId()));
      if (pad) values.emplace_back(std::min<int64_t>(n, pad->length));
    }
    r.text.clear();
    r.bytes = 64;
    for (const auto& v : values) {
      if (const auto* t = std::get_if<shard::Tensor>(&v)) r.bytes += t->data.size();
      if (const auto* s = std::get_if<std::string>(&v)) r.bytes += s->size();
    }
    r.values.push_back(std::move(values));
  }

  // --- tables ---

  // The selected rows as a table of the columns op, then every op fitted and applied in order.
  Status FitTable() {
    const Op& first = pipeline_.ops[0];
    table_.columns = first.columns;
    table_.rows.resize(items_.size());
    table_.errors.resize(items_.size());
    table_.error_ops.resize(items_.size());
    for (size_t i = 0; i < items_.size(); ++i) {
      if (!items_[i].label_error.empty()) {
        table_.errors[i] = items_[i].label_error;
        table_.error_ops[i] = "label";
      }
      auto& row = table_.rows[i];
      row.reserve(first.columns.size());
      for (const auto& name : first.columns) {
        auto v = items_[i].row->find(name);
        transform::Cell cell;
        if (v != items_[i].row->end()) {
          if (const auto* x = std::get_if<int64_t>(&v->second)) cell = static_cast<double>(*x);
          else if (const auto* d = std::get_if<double>(&v->second)) cell = *d;
          else if (const auto* b = std::get_if<bool>(&v->second)) cell = *b ? 1.0 : 0.0;
          else if (const auto* s = std::get_if<std::string>(&v->second)) cell = *s;
        }
        row.push_back(std::move(cell));
      }
    }
    json fitted = json::array();
    for (size_t k = 1; k < pipeline_.ops.size(); ++k) {
      const Op& op = pipeline_.ops[k];
      if (op.kind == OpKind::kTensor) continue;
      STRATA_ASSIGN_OR_RETURN(json st, transform::FitAndApply(op, &table_));
      if (!st.empty()) fitted.push_back({{"op", op.name}, {"index", k}, {"fitted", std::move(st)}});
    }
    stats_["tabular"] = std::move(fitted);
    stats_["features"] = table_.columns;
    return Status::OK();
  }

  void MakeRow(size_t i, ItemResult& r) {
    shard::Tensor t;
    if (table_.errors[i].empty()) transform::RowToTensor(&table_, i, pipeline_.out_dtype, &t);
    if (!table_.errors[i].empty()) {
      r.error_op = table_.error_ops[i];
      r.error = table_.errors[i];
      return;
    }
    r.bytes = t.data.size() + 64;
    shard::Record values;
    values.emplace_back(std::move(t));
    r.values.push_back(std::move(values));
  }

  void RecordError(size_t i, const ItemResult& r) {
    report_.errors.push_back({items_[i].path, r.error_op, r.error});
    ++report_.failed;
  }

  // First pass: exact per-channel sums over the image ops' output (variant 0 of each record).
  Status Fit(ThreadPool& pool) {
    Progress progress("transform: fitting", 0, o_.progress);
    item_sums_.assign(items_.size(), ChannelSums{});
    ChannelSums total;
    uint64_t kept = 0;
    const size_t end = ImageOpsEnd();
    Status s = RunOrdered<ItemResult>(
        pool, 0, items_.size(), o_.memory_budget,
        [&](size_t i) {
          ItemResult r;
          if (const ChannelSums* cached = PreviousSums(i)) {
            r.sums = *cached;  // an unchanged input: its sums from the previous output, nothing read
            r.sums_reused = true;
            return r;
          }
          cv::Mat img = Load(i, r);
          if (!img.empty() && RunOps(i, end, 0, img, r)) r.sums.Add(img);
          r.bytes = r.raw.size();
          return r;
        },
        [&](size_t i, ItemResult& r) -> Status {
          if (!r.fatal.ok()) return r.fatal;
          progress.Add(r.raw.size(), 1);
          if (!r.error.empty()) return Status::OK();  // reported by the second pass
          item_sums_[i] = r.sums;
          report_.fit_reused += r.sums_reused;
          if (!total.Merge(r.sums)) {
            fit_errors_[i] = fmt::format("{} channels where the others have {}: add a grayscale or rgb op",
                                         r.sums.channels, total.channels);
            return Status::OK();
          }
          // Encoded bytes are read once when they fit in half the budget.
          if (kept + r.raw.size() <= o_.memory_budget / 2) {
            kept += r.raw.size();
            raw_[i] = std::move(r.raw);
          }
          return Status::OK();
        });
    STRATA_RETURN_IF_ERROR(s);
    const Op& norm = pipeline_.ops[pipeline_.normalize_index];
    total.Finish(norm.scale, &mean_, &std_);
    report_.stats["mean"] = mean_;
    report_.stats["std"] = std_;
    fitted_pixels_ = total.pixels;
    // Each input's sums go with the output (the inputs file), so that the next run over a changed
    // input reads only what changed; until then they wait in the partial output.
    json sums = json::array();
    for (const auto& one : item_sums_) sums.push_back(SumsJson(one));
    return stage_->AddBytes(std::string(kFitPath), sums.dump(), attrs_);
  }

  static json SumsJson(const ChannelSums& s) {
    if (s.pixels == 0) return nullptr;
    json j{{"c", s.channels}, {"n", s.pixels}, {"s", json::array()}, {"q", json::array()}};
    for (int k = 0; k < s.channels; ++k) {
      j["s"].push_back(s.sum[k]);
      j["q"].push_back(s.sum_sq[k]);
    }
    return j;
  }

  // Throws (json::exception, std::invalid_argument) on a malformed entry.
  static ChannelSums SumsFromJson(const json& j) {
    ChannelSums s;
    if (j.is_null()) return s;
    s.channels = j.at("c").get<int>();
    if (s.channels < 1 || s.channels > 4 || j.at("s").size() != size_t(s.channels) || j.at("q").size() != size_t(s.channels)) {
      throw std::invalid_argument("bad channel sums");
    }
    s.pixels = j.at("n").get<uint64_t>();
    for (int k = 0; k < s.channels; ++k) {
      s.sum[k] = j.at("s")[k].get<uint64_t>();
      s.sum_sq[k] = j.at("q")[k].get<uint64_t>();
    }
    return s;
  }

  // The sums of input i recorded by the previous output, when its content and its usable label
  // are the same (an input whose label failed contributed nothing there and here).
  const ChannelSums* PreviousSums(size_t i) const {
    const Item& item = items_[i];
    if (!previous_ || item.content.empty() || !item.label_error.empty()) return nullptr;
    auto it = previous_inputs_.find(item.path);
    if (it == previous_inputs_.end() || it->second.content != item.content || !it->second.sums) return nullptr;
    return &*it->second.sums;
  }

  shard::Schema MakeSchema() const {
    shard::Schema schema;
    auto field = [](std::string name, shard::FieldType type) {
      shard::Field f;
      f.name = std::move(name);
      f.type = type;
      return f;
    };
    if (pipeline_.kind == transform::PipelineKind::kImage) {
      shard::Field image = field(pipeline_.field, shard::FieldType::kTensor);
      image.dtype = pipeline_.out_dtype;
      int64_t c = pipeline_.channels ? pipeline_.channels : -1;
      int64_t h = pipeline_.out_height ? pipeline_.out_height : -1;
      int64_t w = pipeline_.out_width ? pipeline_.out_width : -1;
      image.shape = pipeline_.out_chw ? std::vector<int64_t>{c, h, w} : std::vector<int64_t>{h, w, c};
      schema.fields.push_back(image);
    } else if (pipeline_.kind == transform::PipelineKind::kTabular) {
      shard::Field features = field(pipeline_.field, shard::FieldType::kTensor);
      features.dtype = pipeline_.out_dtype;
      features.shape = {static_cast<int64_t>(table_.columns.size())};
      schema.fields.push_back(features);
    } else if (pipeline_.tokenize_index < 0) {
      schema.fields.push_back(field(pipeline_.field, shard::FieldType::kString));
    } else {
      shard::Field tokens = field(pipeline_.field, shard::FieldType::kTensor);
      tokens.dtype = shard::DType::kInt32;
      tokens.shape = {pipeline_.pad_index >= 0 ? pipeline_.ops[pipeline_.pad_index].length : -1};
      schema.fields.push_back(tokens);
      if (pipeline_.pad_index >= 0) schema.fields.push_back(field("length", shard::FieldType::kInt));
    }
    if (pipeline_.has_label) {
      uint32_t n = classes_.empty() ? static_cast<uint32_t>(max_label_ + 1) : static_cast<uint32_t>(classes_.size());
      schema.fields.push_back(field("label", shard::FieldType::kLabel));
      schema.fields.back().num_classes = n;
    }
    if (pipeline_.keep_path) schema.fields.push_back(field("path", shard::FieldType::kString));
    if (pipeline_.variants > 1) schema.fields.push_back(field("variant", shard::FieldType::kInt));
    return schema;
  }

  // Second pass: every variant of every record through all ops, written in order.
  // Shards roll as ShardSetWriter rolls them (a new one before a record would take the current
  // one past shard_size), but each finished shard goes into the stage at once and its file is
  // deleted, so the temporary space is one shard.
  // With `fill`, the record's first field is a tensor given without data, which fill writes.
  Status AddRecord(const shard::Record& rec, const shard::ShardWriter::FillTensor& fill = nullptr) {
    STRATA_ASSIGN_OR_RETURN(size_t size, shard::EncodedSize(schema_, rec, fill ? 0 : shard::kNoOpenField));
    STRATA_RETURN_IF_ERROR(RollIfFull(size));
    return fill ? shard_->Add(rec, 0, fill) : shard_->Add(rec);
  }

  Status AddPayload(std::string_view payload) {
    STRATA_RETURN_IF_ERROR(RollIfFull(payload.size()));
    return shard_->AddEncoded({reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  }

  Status RollIfFull(size_t payload_size) {
    if (!shard_ || (shard_->record_count() > 0 && shard_->SizeWith(payload_size) > pipeline_.shard_size)) {
      return RollShard();
    }
    return Status::OK();
  }

  Status RollShard() {
    if (shard_) {
      STRATA_RETURN_IF_ERROR(FinishShard());
      // Every record so far is in finished shards: the run can resume from here.
      if (CheckpointDue()) STRATA_RETURN_IF_ERROR(Checkpoint(current_item_, items_[current_item_].written));
    }
    shard::WriterOptions w;
    // Ids from the content's inputs, so equal inputs give equal bytes (shard N: N XORed into
    // the last four bytes, as ShardSetWriter derives them).
    std::string seed = transform::Sha256(fmt::format("strata.transform.shard-id:{}", key_));
    shard::ShardId id;
    std::copy_n(seed.begin(), id.size(), id.begin());
    for (int i = 0; i < 4; ++i) id[12 + i] ^= static_cast<uint8_t>(shard_number_ >> (24 - 8 * i));
    w.id = id;
    std::string path = JoinPath(dir_, fmt::format("shard-{:05d}.shard", shard_number_));
    STRATA_ASSIGN_OR_RETURN(shard_, shard::ShardWriter::Create(path, schema_, w, shard_number_, next_record_));
    return Status::OK();
  }

  Status FinishShard() {
    STRATA_ASSIGN_OR_RETURN(shard::ShardInfo info, shard_->Finish());
    shard_.reset();
    ++shard_number_;
    next_record_ += info.record_count;
    Stopwatch store;
    TransformShard t;
    t.path = "shards/" + std::string(Basename(info.path));
    t.id = ToHex(info.id.data(), info.id.size());
    t.first_record = info.first_record;
    t.records = info.record_count;
    t.bytes = info.bytes;
    Env* env = Env::Default();
    {
      STRATA_ASSIGN_OR_RETURN(auto file, env->NewSequentialFile(info.path));
      STRATA_RETURN_IF_ERROR(stage_->AddFile(t.path, file.get(), attrs_));
    }
    STRATA_RETURN_IF_ERROR(stage_->SetRecord(t.path, {{"first_record", static_cast<int64_t>(t.first_record)},
                                                      {"records", static_cast<int64_t>(t.records)},
                                                      {"shard_id", t.id}}));
    STRATA_RETURN_IF_ERROR(env->DeleteFile(info.path));
    report_.shards.push_back(std::move(t));
    AddStoreTime(store);
    return Status::OK();
  }

  // `phase`: started with the write phase, whose time is the phase's less the stores in it.
  Status WriteAndCommit(ThreadPool& pool, const Stopwatch& phase) {
    STRATA_RETURN_IF_ERROR(Write(pool));
    if (!shard_) STRATA_RETURN_IF_ERROR(RollShard());  // no records: one empty shard holds the schema
    STRATA_RETURN_IF_ERROR(FinishShard());
    report_.write_seconds = phase.Wall() - report_.store_seconds;
    report_.write_cpu_seconds = phase.Cpu() - report_.store_cpu_seconds;
    Stopwatch commit;
    Status s = Commit();
    AddStoreTime(commit);
    stage_.reset();
    return s;
  }

  Status Write(ThreadPool& pool) {
    schema_ = MakeSchema();

    std::vector<double> mean = mean_, std = std_;
    if (pipeline_.normalize_index >= 0 && !pipeline_.ops[pipeline_.normalize_index].fit) {
      mean = pipeline_.ops[pipeline_.normalize_index].mean;
      std = pipeline_.ops[pipeline_.normalize_index].std;
    }
    const double scale = pipeline_.normalize_index >= 0 ? pipeline_.ops[pipeline_.normalize_index].scale : 1.0;
    const size_t end = ImageOpsEnd();
    Progress progress("transform", 0, o_.progress);
    Status s = RunOrdered<ItemResult>(
        pool, resume_item_, items_.size(), o_.memory_budget,
        [&](size_t i) {
          ItemResult r;
          if (items_[i].reuse_from >= 0) return r;  // copied by the writer from the previous output
          if (pipeline_.kind == transform::PipelineKind::kText) {
            MakeText(i, r);
            return r;
          }
          if (pipeline_.kind == transform::PipelineKind::kTabular) {
            MakeRow(i, r);
            return r;
          }
          if (auto f = fit_errors_.find(i); f != fit_errors_.end()) {
            r.error_op = "normalize";
            r.error = f->second;
            return r;
          }
          cv::Mat decoded = Load(i, r);
          r.raw.clear();  // not needed after this pass
          if (decoded.empty()) return r;
          for (uint32_t v = 0; v < pipeline_.variants; ++v) {
            cv::Mat img = v + 1 < pipeline_.variants ? decoded.clone() : decoded;
            if (!RunOps(i, end, v, img, r)) {
              r.values.clear();
              r.images.clear();
              return r;
            }
            if (!mean.empty() && mean.size() != 1 && static_cast<int>(mean.size()) != img.channels()) {
              r.error_op = "normalize";
              r.error = fmt::format("{} mean/std values for an image of {} channels", mean.size(), img.channels());
              r.values.clear();
              r.images.clear();
              return r;
            }
            r.values.emplace_back().emplace_back(transform::TensorOf(img, pipeline_.out_dtype, pipeline_.out_chw));
            r.bytes += img.total() * img.elemSize();
            r.images.push_back(std::move(img));
          }
          return r;
        },
        [&](size_t i, ItemResult& r) -> Status {
          if (!r.fatal.ok()) return r.fatal;
          progress.Add(items_[i].size, 1);
          raw_[i].clear();
          raw_[i].shrink_to_fit();
          current_item_ = i;
          if (items_[i].reuse_from >= 0) return CopyPrevious(i);
          if (!r.error.empty()) {
            RecordError(i, r);
            return Status::OK();
          }
          // Records of it already in the shards of an interrupted run are not added again.
          for (uint32_t v = items_[i].written; v < r.values.size(); ++v) {
            shard::Record& rec = r.values[v];
            rec.reserve(rec.size() + 3);
            if (pipeline_.has_label) rec.push_back(shard::Label{static_cast<uint32_t>(items_[i].label)});
            if (pipeline_.keep_path) rec.push_back(items_[i].path);
            if (pipeline_.variants > 1) rec.push_back(static_cast<int64_t>(v));
            // An image's float tensor (~600 KB) is made here, straight into the write buffer:
            // one pass over it instead of being made, encoded and copied.
            Status added = r.images.empty() ? AddRecord(rec) : AddRecord(rec, [&](uint8_t* dst) {
              transform::WriteTensor(r.images[v], pipeline_.out_dtype, pipeline_.out_chw, scale, mean, std, dst);
            });
            if (!added.ok()) return added.WithContext(fmt::format("record {}", items_[i].path));
            ++report_.records_out;
            ++items_[i].written;
          }
          return Status::OK();
        });
    return s;
  }

  json SchemaJson() const {
    json fields = json::array();
    for (const auto& f : schema_.fields) {
      json j{{"name", f.name}};
      switch (f.type) {
        case shard::FieldType::kTensor:
          j["type"] = "tensor";
          j["dtype"] = DTypeName(f.dtype);
          j["shape"] = f.shape;
          if (pipeline_.kind == transform::PipelineKind::kImage) j["layout"] = pipeline_.out_chw ? "chw" : "hwc";
          break;
        case shard::FieldType::kLabel:
          j["type"] = "label";
          j["num_classes"] = f.num_classes;
          break;
        case shard::FieldType::kString: j["type"] = "string"; break;
        case shard::FieldType::kInt: j["type"] = "int"; break;
        default: j["type"] = "other"; break;
      }
      fields.push_back(std::move(j));
    }
    return fields;
  }

  static std::string_view DTypeName(shard::DType dtype) {
    switch (dtype) {
      case shard::DType::kFloat32: return "float32";
      case shard::DType::kFloat64: return "float64";
      case shard::DType::kInt32: return "int32";
      case shard::DType::kUint8: return "uint8";
      default: return "other";
    }
  }

  std::string ToolVersions() const {
    return fmt::format("strata {}; opencv {}; yaml-cpp {}; sentencepiece {}; utf8proc {}", STRATA_VERSION, CV_VERSION,
                       STRATA_YAMLCPP_VERSION, STRATA_SENTENCEPIECE_VERSION, utf8proc_version());
  }

  // Creates the output branch when it is missing; returns whether it did.
  Result<bool> EnsureOutputBranch() {
    auto head = lake_->Resolve(out_.dataset + "@" + out_.ref);
    if (head.ok()) {
      if (!head->ref || head->ref->type != RefType::kBranch) {
        return Status::InvalidArgument(fmt::format("--out {} is not a branch", out_.ToString()));
      }
      return false;
    }
    if (!head.status().IsNotFound()) return head.status();
    STRATA_ASSIGN_OR_RETURN(auto datasets, lake_->ListDatasets());
    std::string from;
    if (out_.dataset == in_.spec.dataset) {
      from = fmt::format("{}@{}", in_.spec.dataset, in_.commit.id.ToHex());
    } else {
      if (std::find(datasets.begin(), datasets.end(), out_.dataset) == datasets.end()) {
        STRATA_RETURN_IF_ERROR(lake_->CreateDataset(out_.dataset));
        if (out_.ref == "main") return true;
      }
      from = out_.dataset + "@main";
    }
    STRATA_RETURN_IF_ERROR(lake_->CreateRef(out_.dataset + "@" + out_.ref, from, RefType::kBranch));
    return true;
  }

  // What was fitted on the data (the manifest's "stats").
  json StatsJson() const {
    json stats = stats_;
    if (!mean_.empty()) stats["normalize"] = {{"mean", mean_}, {"std", std_}, {"pixels", fitted_pixels_}};
    return stats;
  }

  // --- reuse of the previous output ---

  // Reads the output branch's head when this pipeline made it from the same path of some
  // version of the input: each input's content, label, record count and fitted sums, and the
  // shards. Unchanged inputs' sums spare the fitting pass their reading (PreviousSums); when the
  // statistics and classes come out the same, their records are copied (PlanReuse). An output
  // made before inputs were listed, or one that does not parse, is not used.
  Status LoadPrevious() {
    auto head = lake_->Resolve(out_.ToString());
    if (!head.ok()) return head.status().IsNotFound() ? Status::OK() : head.status();
    const auto& meta = head->commit.meta;
    auto key = meta.find("transform.key");
    auto stats = meta.find("transform.stats");
    if (key == meta.end() || stats == meta.end()) return Status::OK();
    if (!key->second.ends_with(fmt::format(":{}:{}", in_.spec.path, pipeline_.hash))) return Status::OK();
    auto manifest_text = ReadInput(repo_, head->commit.tree, "manifest.json");
    auto inputs_text = ReadInput(repo_, head->commit.tree, std::string(kInputsPath));
    if (!manifest_text.ok() || !inputs_text.ok()) return Status::OK();
    std::map<std::string, PreviousInput> inputs;
    std::vector<PreviousShard> shards;
    json classes;
    try {
      json manifest = json::parse(*manifest_text);
      classes = manifest.value("classes", json::array());
      uint64_t next = 0;
      size_t start = 0;
      while (start < inputs_text->size()) {
        size_t end = inputs_text->find('\n', start);
        if (end == std::string::npos) end = inputs_text->size();
        json line = json::parse(inputs_text->substr(start, end - start));
        start = end + 1;
        PreviousInput in;
        in.content = line.at("content").get<std::string>();
        in.first = next;
        in.records = line.at("records").get<uint64_t>();
        in.label = line.value("label", int64_t{-2});
        if (line.contains("sums")) in.sums = SumsFromJson(line["sums"]);
        next += in.records;
        inputs[line.at("path").get<std::string>()] = std::move(in);
      }
      for (const auto& sh : manifest.at("shards")) {
        shards.push_back({sh.at("path").get<std::string>(), sh.at("first_record").get<uint64_t>(),
                          sh.at("records").get<uint64_t>()});
      }
    } catch (const std::exception&) {
      return Status::OK();
    }
    previous_inputs_ = std::move(inputs);
    previous_shards_ = std::move(shards);
    previous_classes_ = std::move(classes);
    previous_stats_ = stats->second;
    previous_ = *head;
    return Status::OK();
  }

  // Inputs whose content and label did not change are copied from the previous output instead
  // of computed when the fitted statistics and the classes are the same: they would come out
  // byte for byte the same (same bytes in, same ops, same statistics, randomness drawn from path
  // and variant). Statistics fitted on data that changed differ, and every record with them.
  void PlanReuse() {
    if (previous_stats_ != StatsJson().dump() || previous_classes_ != json(classes_)) return;
    for (auto& item : items_) {
      auto it = previous_inputs_.find(item.path);
      if (it == previous_inputs_.end() || item.content.empty() || it->second.content != item.content ||
          it->second.records != pipeline_.variants || !item.label_error.empty() ||
          (pipeline_.has_label && it->second.label != item.label)) {
        continue;
      }
      item.reuse_from = static_cast<int64_t>(it->second.first);
    }
  }

  // --- the partial output: what a killed or failed run finished, for the next run to resume ---

  std::string PartialName() const { return fmt::format("{}@{}{}", out_.dataset, out_.ref, kPartialSuffix); }

  // Resumes from OUT@BRANCH.partial when it holds the progress of this same transform (same
  // input tree, path and pipeline); otherwise (re)makes it at the output branch's head. The
  // stage commits there, and the finished output moves to the output branch in one commit.
  Status OpenPartial() {
    const std::string name = PartialName();
    auto head = lake_->Resolve(name);
    if (!head.ok() && !head.status().IsNotFound()) return head.status();
    if (head.ok()) {
      auto marker = head->commit.meta.find(std::string(kPartialMeta));
      if (marker == head->commit.meta.end()) {
        // Made by a run killed before its first checkpoint (still at the output's head), or not ours.
        auto out_head = lake_->Resolve(out_.ToString());
        if (!out_head.ok() || out_head->commit.id != head->commit.id || !head->ref ||
            head->ref->type != RefType::kBranch) {
          return Status::FailedPrecondition(fmt::format(
              "{} exists and is not the partial output of a transform; delete or rename it to transform into {}",
              name, out_.ToString()));
        }
      } else if (marker->second == key_ && !o_.force) {
        if (Status r = Restore(head->commit.tree); r.ok()) {
          resumed_ = partial_made_ = true;
          STRATA_ASSIGN_OR_RETURN(stage_, lake_->Stage(name));
          return Status::OK();
        }
        // Progress that cannot be used (damaged, or a run killed while it moved the output):
        // start over.
      }
      STRATA_RETURN_IF_ERROR(lake_->DeleteRef(name));
    }
    STRATA_RETURN_IF_ERROR(lake_->CreateRef(name, out_.ToString(), RefType::kBranch));
    partial_made_ = true;
    StageOptions so;
    so.replace = true;
    STRATA_ASSIGN_OR_RETURN(stage_, lake_->Stage(name, so));
    return Status::OK();
  }

  // Takes the state of the interrupted run from its progress file (and its fitted sums); changes
  // nothing unless all of it is usable.
  Status Restore(const ObjectId& tree) {
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadInput(repo_, tree, std::string(kProgressPath)));
    try {
      json p = json::parse(text);
      if (p.at("key").get<std::string>() != key_) throw std::invalid_argument("another transform's progress");
      const size_t next = p.at("next_item").get<size_t>();
      const uint32_t skip = p.at("skip").get<uint32_t>();
      auto written = p.at("written").get<std::vector<uint32_t>>();
      if (next > items_.size() || written.size() != next || (next == items_.size() && skip != 0)) {
        throw std::invalid_argument("progress beyond the inputs");
      }
      std::vector<TransformShard> shards;
      uint64_t records = 0;
      for (const auto& sh : p.at("shards")) {
        TransformShard t{sh.at("path").get<std::string>(), sh.at("id").get<std::string>(),
                         sh.at("first_record").get<uint64_t>(), sh.at("records").get<uint64_t>(),
                         sh.at("bytes").get<uint64_t>()};
        if (t.first_record != records) throw std::invalid_argument("shards out of order");
        records += t.records;
        shards.push_back(std::move(t));
      }
      if (records != p.at("records").get<uint64_t>()) throw std::invalid_argument("record count");
      std::vector<TransformError> errors;
      for (const auto& e : p.at("errors")) {
        errors.push_back({e.at("path").get<std::string>(), e.at("op").get<std::string>(), e.at("error").get<std::string>()});
      }
      json stats = p.at("stats");
      std::map<size_t, std::string> fit_errors;
      for (const auto& [k, v] : p.at("fit_errors").items()) fit_errors[std::stoul(k)] = v.get<std::string>();
      std::vector<ChannelSums> sums;
      if (pipeline_.normalize_index >= 0 && pipeline_.ops[pipeline_.normalize_index].fit) {
        STRATA_ASSIGN_OR_RETURN(std::string fit_text, ReadInput(repo_, tree, std::string(kFitPath)));
        json fit = json::parse(fit_text);
        if (fit.size() != items_.size()) throw std::invalid_argument("fitted sums of other inputs");
        for (const auto& one : fit) sums.push_back(SumsFromJson(one));
        const json& norm = stats.at("normalize");
        mean_ = norm.at("mean").get<std::vector<double>>();
        std_ = norm.at("std").get<std::vector<double>>();
        fitted_pixels_ = norm.at("pixels").get<uint64_t>();
        report_.stats["mean"] = mean_;
        report_.stats["std"] = std_;
      }
      // All of it parsed: take it.
      stats.erase("normalize");
      stats_ = std::move(stats);
      item_sums_ = std::move(sums);
      fit_errors_ = std::move(fit_errors);
      for (size_t j = 0; j < next; ++j) items_[j].written = written[j];
      if (next < items_.size()) items_[next].written = skip;
      resume_item_ = next;
      report_.errors = std::move(errors);
      report_.failed = p.at("failed").get<uint64_t>();
      report_.reused = p.at("reused").get<uint64_t>();
      report_.records_out = records;
      report_.shards = std::move(shards);
      report_.resumed_records = records;
      report_.resumed_shards = report_.shards.size();
      shard_number_ = static_cast<uint32_t>(report_.shards.size());
      next_record_ = records;
      kept_records_ = records;
      kept_shards_ = shard_number_;
      partial_tree_ = tree;
    } catch (const std::exception& e) {
      return Status::Corruption(fmt::format("{} of {}: {}", kProgressPath, PartialName(), e.what()));
    }
    return Status::OK();
  }

  bool CheckpointDue() const {
    return o_.checkpoint_seconds <= 0 || Seconds(last_checkpoint_) >= o_.checkpoint_seconds;
  }

  // Commits the finished shards to the partial output with what a resumed run needs to go on
  // from input `next_item`, whose first `skip` records are in those shards.
  Status Checkpoint(size_t next_item, uint32_t skip) {
    json written = json::array();
    for (size_t j = 0; j < next_item; ++j) written.push_back(items_[j].written);
    json errors = json::array();
    for (const auto& e : report_.errors) errors.push_back({{"path", e.path}, {"op", e.op}, {"error", e.message}});
    json fit_errors = json::object();
    for (const auto& [i, message] : fit_errors_) fit_errors[std::to_string(i)] = message;
    json progress = {{"format", "strata.transform.progress"},
                     {"version", 1},
                     {"key", key_},
                     {"output", out_.ToString()},
                     {"next_item", next_item},
                     {"skip", skip},
                     {"written", std::move(written)},
                     {"errors", std::move(errors)},
                     {"failed", report_.failed},
                     {"reused", report_.reused},
                     {"records", next_record_},
                     {"shards", ShardsJson()},
                     {"stats", StatsJson()},
                     {"fit_errors", std::move(fit_errors)}};
    STRATA_RETURN_IF_ERROR(stage_->AddBytes(
        std::string(kProgressPath), progress.dump(-1, ' ', false, json::error_handler_t::replace), attrs_));
    CommitOptions co;
    co.message = fmt::format("partial output of transform {} -> {}: {} records in {} shard(s)", in_.spec.ToString(),
                             out_.ToString(), next_record_, shard_number_);
    co.meta[std::string(kPartialMeta)] = key_;
    STRATA_ASSIGN_OR_RETURN(CommitResult c, stage_->Commit(co));
    AddPut(c.put);
    STRATA_ASSIGN_OR_RETURN(stage_, lake_->Stage(PartialName()));
    ++report_.checkpoints;
    kept_records_ = next_record_;
    kept_shards_ = shard_number_;
    last_checkpoint_ = std::chrono::steady_clock::now();
    return Status::OK();
  }

  void AddPut(const PutStats& p) {
    put_.files += p.files;
    put_.bytes += p.bytes;
    put_.chunks += p.chunks;
    put_.new_chunks += p.new_chunks;
    put_.new_bytes += p.new_bytes;
    put_.stored_bytes += p.stored_bytes;
    put_.seconds += p.seconds;
  }

  json ShardsJson() const {
    json list = json::array();
    for (const auto& t : report_.shards) {
      list.push_back({{"path", t.path}, {"id", t.id}, {"first_record", t.first_record}, {"records", t.records},
                      {"bytes", t.bytes}});
    }
    return list;
  }

  // Copies item i's records from the previous output. Its shards are read in order (inputs are
  // in path order in both), each restored into the work directory while it is read.
  Status CopyPrevious(size_t i) {
    Item& item = items_[i];
    for (uint32_t v = item.written; v < pipeline_.variants; ++v) {
      uint64_t g = static_cast<uint64_t>(item.reuse_from) + v;
      while (!old_reader_ || g >= old_shard_.first + old_shard_.records) {
        STRATA_RETURN_IF_ERROR(NextPreviousShard(g));
      }
      STRATA_ASSIGN_OR_RETURN(std::string payload, old_reader_->ReadPayload(g - old_shard_.first));
      Status added = AddPayload(payload);
      if (!added.ok()) return added.WithContext(fmt::format("record {}", item.path));
      ++report_.records_out;
      ++item.written;
    }
    ++report_.reused;
    return Status::OK();
  }

  Status NextPreviousShard(uint64_t g) {
    if (old_reader_) {
      std::string path = old_reader_->path();
      old_reader_.reset();
      (void)Env::Default()->DeleteFile(path);
    }
    auto it = std::find_if(previous_shards_.begin(), previous_shards_.end(),
                           [&](const PreviousShard& s) { return g >= s.first && g < s.first + s.records; });
    if (it == previous_shards_.end()) {
      return Status::Corruption(fmt::format("the previous output {} lists no shard holding record {}",
                                            previous_->commit.id.ToHex().substr(0, 12), g));
    }
    old_shard_ = *it;
    // Beside the shards being built (whose names the previous ones share), not among them.
    std::string dir = JoinPath(dir_, "previous");
    STRATA_RETURN_IF_ERROR(repo_->Restore(previous_->commit.tree, old_shard_.path, dir));
    std::string local = JoinPath(dir, std::string(Basename(old_shard_.path)));
    shard::ReaderOptions ro;
    ro.direct_io = false;
    STRATA_ASSIGN_OR_RETURN(old_reader_, shard::ShardReader::Open(local, ro));
    return Status::OK();
  }

  Status Commit() {
    json ops = json::array();
    std::vector<std::string> op_versions;
    for (const Op& op : pipeline_.ops) {
      ops.push_back({{"op", op.name}, {"version", op.version}});
      op_versions.push_back(fmt::format("{}@{}", op.name, op.version));
    }
    json stats = StatsJson();
    json manifest = {
        {"format", "strata.transform.manifest"},
        {"version", 1},
        {"input", {{"dataset", in_.spec.dataset}, {"path", in_.spec.path}, {"commit", report_.input_commit},
                   {"tree", report_.input_tree}}},
        {"pipeline", {{"name", pipeline_.name}, {"hash", pipeline_.hash}, {"spec", pipeline_.canonical}}},
        {"ops", ops},
        {"tools", ToolVersions()},
        {"schema", SchemaJson()},
        {"classes", classes_},
        {"stats", stats},
        {"records", report_.records_out},
        {"records_in", report_.records_in},
        {"failed", report_.failed},
        {"shards", ShardsJson()},
    };
    if (!pipeline_.online.empty()) {
      manifest["augment"] = {{"online", transform::OpsJson(pipeline_.online)},
                             {"field", pipeline_.field},
                             {"layout", pipeline_.out_chw ? "chw" : "hwc"},
                             {"seed", pipeline_.seed}};
    }
    report_.manifest = manifest.dump(2) + "\n";
    StagedCommit* stage = stage_.get();
    const FileAttrs& attrs = attrs_;
    STRATA_RETURN_IF_ERROR(stage->AddBytes("manifest.json", report_.manifest, attrs));
    {
      std::string lines;
      for (size_t i = 0; i < items_.size(); ++i) {
        const Item& item = items_[i];
        json line{{"path", item.path}, {"content", item.content}, {"records", item.written}};
        if (pipeline_.has_label) line["label"] = item.label;
        if (i < item_sums_.size() && item_sums_[i].pixels > 0) line["sums"] = SumsJson(item_sums_[i]);
        lines += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      }
      STRATA_RETURN_IF_ERROR(stage->AddBytes(std::string(kInputsPath), lines, attrs));
    }
    if (!report_.errors.empty()) {
      std::string lines;
      for (const auto& e : report_.errors) {
        lines += json{{"path", e.path}, {"op", e.op}, {"error", e.message}}.dump(
                     -1, ' ', false, json::error_handler_t::replace) + "\n";
      }
      STRATA_RETURN_IF_ERROR(stage->AddBytes(kErrorsPath, lines, attrs));
    }
    CommitOptions co = o_.commit;
    if (co.message.empty()) {
      co.message = fmt::format("transform {} with {}", in_.spec.ToString(),
                               pipeline_.name.empty() ? pipeline_.hash.substr(0, 12) : pipeline_.name);
    }
    co.meta["transform.key"] = key_;
    co.meta["transform.input"] = in_.spec.ToString();
    co.meta["transform.input_commit"] = report_.input_commit;
    co.meta["transform.input_tree"] = report_.input_tree;
    co.meta["transform.pipeline_hash"] = pipeline_.hash;
    co.meta["transform.pipeline_name"] = pipeline_.name;
    co.meta["transform.ops"] = fmt::format("{}", fmt::join(op_versions, " "));
    co.meta["transform.tools"] = ToolVersions();
    co.meta["transform.stats"] = stats.dump();
    co.meta["transform.records"] = std::to_string(report_.records_out);
    co.meta["transform.records_in"] = std::to_string(report_.records_in);
    co.meta["transform.failed"] = std::to_string(report_.failed);
    co.meta["transform.reused"] = std::to_string(report_.reused);
    co.meta["transform.shards"] = std::to_string(report_.shards.size());
    // What only a resumed run needs stays out of the output.
    if (report_.checkpoints > 0 || resumed_) STRATA_RETURN_IF_ERROR(stage->Remove(std::string(kProgressPath)));
    if (!item_sums_.empty()) STRATA_RETURN_IF_ERROR(stage->Remove(std::string(kFitPath)));
    // The output is finished on the partial branch, then becomes one commit of the output branch
    // (its parent the output's head), and the partial branch goes.
    CommitOptions pc;
    pc.message = co.message;
    pc.meta[std::string(kPartialMeta)] = key_;
    STRATA_ASSIGN_OR_RETURN(CommitResult finished, stage->Commit(pc));
    AddPut(finished.put);
    stage_.reset();
    StageOptions so;
    so.from = PartialName();
    STRATA_ASSIGN_OR_RETURN(auto output, lake_->Stage(out_.ToString(), so));
    STRATA_ASSIGN_OR_RETURN(report_.commit, output->Commit(co));
    AddPut(report_.commit.put);
    report_.commit.put = put_;
    if (Status s = lake_->DeleteRef(PartialName()); s.ok()) partial_made_ = false;
    return Status::OK();
  }

  Repository* repo_;
  Lake* lake_;
  const TransformOptions& o_;
  Pipeline pipeline_;
  Resolved in_;
  RefSpec out_;
  std::string key_;
  std::vector<RecordMeta> rows_;           // the input's records file
  std::vector<Item> items_;
  std::vector<std::string> raw_;           // encoded bytes kept from the first pass
  std::map<size_t, std::string> fit_errors_;
  std::vector<std::string> classes_;
  int64_t max_label_ = -1;
  std::vector<double> mean_, std_;
  uint64_t fitted_pixels_ = 0;
  json stats_ = json::object();            // fitted by text and table pipelines
  std::string tokenizer_model_;            // serialized SentencePiece model
  std::unique_ptr<transform::Tokenizer> tokenizer_;
  transform::Table table_;
  struct PreviousShard {
    std::string path;
    uint64_t first = 0, records = 0;
  };
  struct PreviousInput {
    std::string content;
    uint64_t first = 0, records = 0;  // its records' set-wide indexes
    int64_t label = -2;               // its class index (-1: none; -2: not recorded)
    std::optional<ChannelSums> sums;  // what it added to the fitted statistics
  };
  std::optional<Resolved> previous_;       // the output branch's head, made by this pipeline
  std::map<std::string, PreviousInput> previous_inputs_;  // by path
  std::vector<PreviousShard> previous_shards_;
  json previous_classes_;
  std::string previous_stats_;
  std::vector<ChannelSums> item_sums_;     // per input, from the fitting pass
  // Resuming: the first input not wholly in the partial output's shards, and that output's tree.
  size_t resume_item_ = 0;
  ObjectId partial_tree_;
  bool partial_made_ = false;              // OUT@BRANCH.partial exists for this run
  bool resumed_ = false;
  size_t current_item_ = 0;                // the input whose records are being written
  uint64_t kept_records_ = 0;              // records and shards the partial output holds
  uint32_t kept_shards_ = 0;
  std::chrono::steady_clock::time_point last_checkpoint_;
  PutStats put_;                           // stored by all commits of this run
  PreviousShard old_shard_;
  std::unique_ptr<shard::ShardReader> old_reader_;
  shard::Schema schema_;
  std::string dir_;                        // where shards are built, one at a time
  std::unique_ptr<StagedCommit> stage_;
  FileAttrs attrs_;
  std::unique_ptr<shard::ShardWriter> shard_;
  uint32_t shard_number_ = 0;
  uint64_t next_record_ = 0;
  TransformReport report_;
};

}  // namespace

Result<TransformReport> Transform(Repository* repo, Lake* lake, std::string_view input, std::string_view output,
                                  const TransformOptions& options) {
  Driver driver(repo, lake, options);
  auto r = driver.Run(input, output);
  if (!r.ok()) {
    return r.status().WithContext(fmt::format("transform of {} failed; {} did not move", input, output));
  }
  return r;
}

Result<std::string> CheckPipeline(std::string_view yaml, std::string_view name) {
  STRATA_ASSIGN_OR_RETURN(auto p, transform::ParsePipeline(yaml, name));
  return p.hash;
}

}  // namespace strata

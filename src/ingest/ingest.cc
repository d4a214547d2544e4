// Ingest: a source reader (source.h) feeding a staged commit (strata/lake.h).
#include "strata/ingest.h"

#include <openssl/evp.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "ingest/archive_reader.h"
#include "ingest/directory_reader.h"
#include "ingest/idx_reader.h"
#include "ingest/image_probe.h"
#include "ingest/labels.h"
#include "ingest/postgres_reader.h"
#include "ingest/query_reader.h"
#include "ingest/source.h"
#include "ingest/tabular_reader.h"
#include "strata/object_id.h"

namespace strata {

namespace {

using ingest::FileItem;
using ingest::Record;
using ingest::Schema;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string JoinPath(std::string_view prefix, std::string_view path) {
  std::string p(prefix);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p.empty() ? std::string(path) : p + "/" + std::string(path);
}

Result<std::string> DetectFormat(Env* env, const std::string& source, const IngestOptions& o) {
  if (o.format != "auto") {
    for (const char* f : {"dir", "archive", "csv", "jsonl", "idx", "sqlite", "postgres"}) {
      if (o.format == f) return o.format;
    }
    return Status::InvalidArgument(fmt::format(
        "unknown source format '{}': use auto, dir, archive, csv, jsonl, idx, sqlite or postgres", o.format));
  }
  if (source.starts_with("sqlite:")) return std::string("sqlite");
  if (ingest::IsPostgresUri(source)) return std::string("postgres");
  auto info = env->Stat(source);
  if (!info.ok()) return info.status().WithContext(fmt::format("source '{}'", source));
  if (info->type == FileType::kDirectory) return std::string("dir");
  std::string name = std::string(strata::Basename(source));
  for (const char* ext : {".gz", ".zst", ".xz", ".bz2"}) {
    if (EndsWith(name, ext) && !EndsWith(name.substr(0, name.size() - strlen(ext)), ".tar")) {
      name = name.substr(0, name.size() - strlen(ext));  // a compressed table or IDX file
    }
  }
  if (name.find("-idx") != std::string::npos && name.find("-ubyte") != std::string::npos) return std::string("idx");
  if (EndsWith(name, ".csv") || EndsWith(name, ".tsv")) return std::string("csv");
  if (EndsWith(name, ".jsonl") || EndsWith(name, ".ndjson")) return std::string("jsonl");
  for (const char* ext : {".tar", ".tgz", ".tbz2", ".txz", ".tar.gz", ".tar.zst", ".tar.xz", ".tar.bz2", ".zip"}) {
    if (EndsWith(name, ext)) return std::string("archive");
  }
  return Status::InvalidArgument(fmt::format(
      "cannot tell what '{}' is from its name: give --format (dir, archive, csv, jsonl, idx or sqlite)", source));
}

// SHA-256 of a file, computed on another thread while the ingest reads it (the second read
// mostly hits the page cache).
std::future<Result<std::string>> HashFileAsync(Env* env, std::string path) {
  return std::async(std::launch::async, [env, path]() -> Result<std::string> {
    STRATA_ASSIGN_OR_RETURN(auto in, env->NewSequentialFile(path));
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return Status::Internal("SHA-256 init failed");
    std::vector<uint8_t> buf(1 << 20);
    while (true) {
      size_t got = 0;
      STRATA_RETURN_IF_ERROR(in->Read(buf.size(), buf.data(), &got));
      if (got == 0) break;
      EVP_DigestUpdate(ctx.get(), buf.data(), got);
    }
    uint8_t md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &len);
    return ToHex(md, len);
  });
}

// Keeps the first bytes of what it passes through: the image header, for width and height.
class HeadCapture final : public SequentialFile {
 public:
  explicit HeadCapture(SequentialFile* in) : in_(in) {}
  Status Read(size_t n, uint8_t* dst, size_t* got) override {
    STRATA_RETURN_IF_ERROR(in_->Read(n, dst, got));
    size_t keep = std::min(*got, kHead - head_.size());
    head_.append(reinterpret_cast<const char*>(dst), keep);
    return Status::OK();
  }
  std::span<const uint8_t> head() const { return {reinterpret_cast<const uint8_t*>(head_.data()), head_.size()}; }

 private:
  static constexpr size_t kHead = 64 << 10;
  SequentialFile* in_;
  std::string head_;
};

// A metadata value from a reader's text: integers stay integers, so SQL compares them as numbers.
MetaValue MetaFromText(const std::string& s) {
  if (!s.empty() && s.size() < 19 && s.find_first_not_of("0123456789") == std::string::npos) {
    return MetaValue{static_cast<int64_t>(std::stoll(s))};
  }
  return MetaValue{s};
}

std::string ColumnName(const std::string& name) {
  // path, size and content come from the tree; a table's own columns of those names keep a '_'.
  return (name == "path" || name == "size" || name == "content") ? "_" + name : name;
}

class LakeSink final : public ingest::ItemSink {
 public:
  LakeSink(StagedCommit* stage, const IngestOptions& o, std::string source_name, int64_t default_mtime,
           IngestReport* report)
      : stage_(stage), o_(o), source_name_(std::move(source_name)), default_mtime_(default_mtime),
        report_(report), progress_("ingest", 0, o.progress) {}

  Status AddFile(const FileItem& item, SequentialFile* content) override {
    std::string path = JoinPath(o_.prefix, item.path);
    HeadCapture in(content);
    FileAttrs attrs{.mode = item.mode, .mtime_ns = item.mtime_ns ? item.mtime_ns : default_mtime_};
    STRATA_RETURN_IF_ERROR(stage_->AddFile(path, &in, attrs));
    uint64_t size = stage_->bytes_added() - last_bytes_;
    last_bytes_ = stage_->bytes_added();
    ++report_->files;
    report_->bytes += size;
    progress_.Add(size, 1);

    FileItem probed = item;
    ingest::AddImageMeta(in.head(), &probed);
    if (o_.image_folder && !probed.meta.count("label")) {
      // ImageFolder inside an archive: the parent folder names the class.
      size_t slash = item.path.rfind('/');
      if (slash != std::string::npos) probed.meta["label"] = std::string(strata::Basename(item.path.substr(0, slash)));
    }
    RecordMeta row{{"source", source_name_}};
    for (const auto& [k, v] : probed.meta) row[ColumnName(k)] = MetaFromText(v);
    if (probed.meta.count("label")) {
      ++report_->labelled;
      row["label"] = probed.meta.at("label");  // a label stays text, even "7"
    }
    STRATA_RETURN_IF_ERROR(stage_->SetRecord(path, row));
    return MaybeCheckpoint();
  }

  Status StartTable(std::string_view source, const Schema& schema) override {
    table_ = JoinPath(o_.prefix, std::string(strata::Basename(source)));
    return Status::OK();
  }

  Status AddRecord(const Record& record) override {
    RecordMeta row{{"source", source_name_}};
    for (const auto& [name, value] : record.fields) row[ColumnName(name)] = value;
    STRATA_RETURN_IF_ERROR(stage_->SetRecord(fmt::format("{}#{}", table_, record.line), row));
    ++report_->records;
    if (report_->records % 4096 == 0) progress_.Add(0, 4096);
    return Status::OK();
  }

  void Reject(std::string_view where, std::string_view rule, std::string_view reason) override {
    if (report_->rejects.size() < kMaxRejects) {
      report_->rejects.push_back(IngestReject{std::string(where), std::string(rule), std::string(reason)});
    } else {
      ++dropped_rejects_;
    }
  }

  uint64_t dropped_rejects() const { return dropped_rejects_; }

 private:
  static constexpr size_t kMaxRejects = 1'000'000;

  Status MaybeCheckpoint() {
    if (stage_->bytes_added() - checkpointed_ < o_.checkpoint_bytes) return Status::OK();
    checkpointed_ = stage_->bytes_added();
    return stage_->Checkpoint();
  }

  StagedCommit* stage_;
  const IngestOptions& o_;
  std::string source_name_;
  int64_t default_mtime_;
  IngestReport* report_;
  Progress progress_;
  std::string table_;
  uint64_t last_bytes_ = 0, checkpointed_ = 0, dropped_rejects_ = 0;
};

std::string RejectsJsonl(const std::vector<IngestReject>& rejects) {
  std::string out;
  for (const auto& r : rejects) {
    nlohmann::json j{{"where", r.where}, {"rule", r.rule}, {"reason", r.reason}};
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return out;
}

CommitOptions SourceCommitOptions(const IngestOptions& o, const IngestReport& report, uint64_t dropped_rejects) {
  CommitOptions co = o.commit;
  if (co.message.empty()) co.message = fmt::format("ingest {}", report.source);
  co.meta["source"] = report.source;
  co.meta["source.format"] = report.format;
  co.meta["source.mode"] = o.replace ? "replace" : "add";
  if (!report.source_sha256.empty()) co.meta["source.sha256"] = report.source_sha256;
  co.meta["source.files"] = std::to_string(report.files);
  co.meta["source.bytes"] = std::to_string(report.bytes);
  co.meta["source.records"] = std::to_string(report.records);
  co.meta["source.rejected"] = std::to_string(report.rejects.size() + dropped_rejects);
  return co;
}

// A PostgreSQL query: no file to stat or hash; the source is shown and recorded without its
// password, and the table is named after the database. Rows and rejects are dated 0, so the
// same rows ingested again give the same tree.
Result<IngestReport> IngestPostgres(Lake* lake, const std::string& source, std::string_view target,
                                    const IngestOptions& o, IngestReport report,
                                    std::chrono::steady_clock::time_point start) {
  report.source = ingest::RedactConninfo(source);
  if (o.query.empty()) return Status::InvalidArgument("a postgres source needs --query");
  if (!o.labels_csv.empty()) return Status::InvalidArgument("--labels applies to files, not to a postgres query");
  std::string name = ingest::ConninfoDatabase(source);
  if (name.empty() || name.find_first_of("/\\") != std::string::npos) name = "postgres";
  StageOptions so;
  so.replace = o.replace;
  STRATA_ASSIGN_OR_RETURN(auto stage, lake->Stage(target, so));
  LakeSink sink(stage.get(), o, name, 0, &report);
  ingest::QueryOptions qo;
  qo.query = o.query;
  qo.name = name;
  Status walk = ingest::ReadPostgresQuery(source, qo, &sink);
  if (!walk.ok()) {
    return walk.WithContext(fmt::format("ingest of '{}' failed; the branch did not move", report.source));
  }
  if (!report.rejects.empty()) {
    STRATA_RETURN_IF_ERROR(stage->AddBytes(".strata/rejects.jsonl", RejectsJsonl(report.rejects), FileAttrs{}));
  }
  STRATA_ASSIGN_OR_RETURN(report.commit, stage->Commit(SourceCommitOptions(o, report, sink.dropped_rejects())));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace

Result<IngestReport> Ingest(Lake* lake, std::string_view source_arg, std::string_view target, const IngestOptions& o) {
  auto start = std::chrono::steady_clock::now();
  Env* env = Env::Default();
  std::string source(source_arg);
  IngestReport report;
  STRATA_ASSIGN_OR_RETURN(report.format, DetectFormat(env, source, o));
  if (report.format == "postgres") return IngestPostgres(lake, source, target, o, std::move(report), start);
  std::string path = report.format == "sqlite" && source.starts_with("sqlite:") ? source.substr(7) : source;
  if (!path.empty() && path[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) path = std::string(cwd) + "/" + path;
  }
  report.source = report.format == "sqlite" ? "sqlite:" + path : path;
  auto info = env->Stat(path);
  if (!info.ok()) return info.status().WithContext(fmt::format("source '{}'", source));
  if (report.format == "sqlite" && o.query.empty()) return Status::InvalidArgument("a sqlite source needs --query");

  std::future<Result<std::string>> sha;
  if (info->type == FileType::kRegular) sha = HashFileAsync(env, path);

  StageOptions so{.replace = o.replace};
  STRATA_ASSIGN_OR_RETURN(auto stage, lake->Stage(target, so));
  LakeSink sink(stage.get(), o, std::string(strata::Basename(path)), info->mtime_ns, &report);
  ingest::ItemSink* to = &sink;
  ingest::LabelMap labels;
  std::unique_ptr<ingest::LabelJoinSink> join;
  if (!o.labels_csv.empty()) {
    STRATA_ASSIGN_OR_RETURN(labels, ingest::LoadLabels(env, o.labels_csv, {}, &sink));
    join = std::make_unique<ingest::LabelJoinSink>(&labels, &sink);
    to = join.get();
  }

  Status walk;
  const std::string name = std::string(strata::Basename(path));
  if (report.format == "dir") {
    walk = ingest::ReadDirectory(env, path, ingest::DirectoryOptions{.image_folder = o.image_folder, .name = name}, to);
  } else if (report.format == "archive") {
    ingest::ArchiveOptions ao;
    ao.limits.max_total_bytes = o.max_total_bytes;
    ao.limits.max_entry_bytes = o.max_entry_bytes;
    ao.limits.max_entries = o.max_entries;
    ao.limits.max_ratio = o.max_ratio;
    ao.name = name;
    walk = ingest::ReadArchive(env, path, ao, to);
  } else if (report.format == "csv") {
    ingest::CsvOptions co;
    co.name = name;
    if (EndsWith(name, ".tsv")) co.delimiter = '\t';
    walk = ingest::ReadCsvFile(env, path, co, to);
  } else if (report.format == "jsonl") {
    ingest::JsonlOptions jo;
    jo.name = name;
    walk = ingest::ReadJsonlFile(env, path, jo, to);
  } else if (report.format == "idx") {
    std::string labels_path = o.idx_labels;
    if (labels_path.empty()) {
      std::string sibling = path;
      size_t at = sibling.rfind("-images-idx3-ubyte");
      if (at != std::string::npos) {
        sibling.replace(at, strlen("-images-idx3-ubyte"), "-labels-idx1-ubyte");
        if (env->FileExists(sibling)) labels_path = sibling;
      }
    }
    ingest::IdxOptions io;
    io.name = name;
    io.label_names = ingest::FashionMnistLabels();
    walk = ingest::ReadIdx(env, path, labels_path, io, to);
  } else {
    ingest::QueryOptions qo;
    qo.query = o.query;
    qo.name = name;
    walk = ingest::ReadSqliteQuery(env, path, qo, to);
  }
  if (!walk.ok()) return walk.WithContext(fmt::format("ingest of '{}' failed; the branch did not move", source));

  if (!report.rejects.empty()) {
    // Dated like the source, so that ingesting it again changes nothing.
    STRATA_RETURN_IF_ERROR(stage->AddBytes(".strata/rejects.jsonl", RejectsJsonl(report.rejects),
                                           FileAttrs{.mtime_ns = info->mtime_ns}));
  }
  if (sha.valid()) {
    auto digest = sha.get();
    if (!digest.ok()) return digest.status().WithContext("hashing the source");
    report.source_sha256 = *digest;
  }
  STRATA_ASSIGN_OR_RETURN(report.commit, stage->Commit(SourceCommitOptions(o, report, sink.dropped_rejects())));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace strata

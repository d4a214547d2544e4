#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "base/endian.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "shard/format.h"
#include "strata/shard.h"

namespace strata::shard {
namespace {

const uint8_t kZeros[kBlock] = {};

class ShardWriterImpl final : public ShardWriter {
 public:
  ShardWriterImpl(std::string path, const Schema& schema, const WriterOptions& options)
      : path_(std::move(path)), tmp_path_(path_ + ".tmp"), env_(options.env) {
    header_.schema = schema;
    if (options.key) {
      aead_.emplace(*options.key);
      header_.flags |= kFlagEncrypted;
    }
  }

  ~ShardWriterImpl() override {
    if (file_ && !finished_) {
      (void)file_->Close();
      (void)env_->DeleteFile(tmp_path_);
    }
  }

  Status Start(uint32_t number, uint64_t first_record) {
    STRATA_RETURN_IF_ERROR(ValidateSchema(header_.schema));
    crypto::RandomBytes(header_.id);
    header_.number = number;
    header_.first_record = first_record;
    // A leftover of an interrupted writer is never a finished shard: replace it.
    if (env_->FileExists(tmp_path_)) STRATA_RETURN_IF_ERROR(env_->DeleteFile(tmp_path_));
    STRATA_ASSIGN_OR_RETURN(file_, env_->NewStreamingFile(tmp_path_));
    std::string header = BuildHeader(&header_, aead_ ? &*aead_ : nullptr);
    STRATA_RETURN_IF_ERROR(Append(AsBytes(header)));
    pos_ = header.size();
    return Status::OK();
  }

  Status Add(const Record& record) override {
    STRATA_RETURN_IF_ERROR(EncodeRecord(header_.schema, record, &payload_));
    return AddEncoded(AsBytes(payload_));
  }

  Status AddEncoded(std::span<const uint8_t> payload) override {
    if (finished_ || !file_) return Status::FailedPrecondition(fmt::format("shard {} is already finished", path_));
    if (payload.size() > kMaxRecordSize - kTagSize) return Status::InvalidArgument("record larger than 2 GiB");
    std::span<const uint8_t> stored = payload;
    if (aead_) {
      sealed_.resize(payload.size() + kTagSize);
      std::string ad = RecordAd(header_.id, index_.size());
      aead_->Seal(payload, AsBytes(ad), sealed_.data());
      stored = sealed_;
    }
    const uint64_t offset = PlaceRecord(pos_, stored.size());
    STRATA_RETURN_IF_ERROR(Append({kZeros, offset - pos_}));
    STRATA_RETURN_IF_ERROR(Append(stored));
    index_.push_back({offset, static_cast<uint32_t>(stored.size()), Crc32c(stored)});
    pos_ = offset + stored.size();
    return Status::OK();
  }

  uint64_t Size() const override { return pos_ + FooterSize(index_.size()); }
  uint64_t record_count() const override { return index_.size(); }
  uint64_t SizeWith(size_t payload_size) const override {
    uint64_t stored = payload_size + (aead_ ? kTagSize : 0);
    return PlaceRecord(pos_, stored) + stored + FooterSize(index_.size() + 1);
  }

  Result<ShardInfo> Finish() override {
    if (finished_ || !file_) return Status::FailedPrecondition(fmt::format("shard {} is already finished", path_));
    std::string footer = BuildFooter(header_.id, index_, pos_, aead_ ? &*aead_ : nullptr);
    STRATA_RETURN_IF_ERROR(Append(AsBytes(footer)));
    STRATA_RETURN_IF_ERROR(file_->Sync());
    STRATA_RETURN_IF_ERROR(file_->Close());
    STRATA_RETURN_IF_ERROR(env_->RenameFile(tmp_path_, path_));
    finished_ = true;
    std::string dir(Dirname(path_));
    STRATA_RETURN_IF_ERROR(env_->SyncDir(dir.empty() ? "." : dir));
    ShardInfo info;
    info.path = path_;
    info.id = header_.id;
    info.number = header_.number;
    info.first_record = header_.first_record;
    info.record_count = index_.size();
    info.bytes = pos_ + footer.size();
    return info;
  }

 private:
  uint64_t FooterSize(uint64_t records) const {
    return records * kIndexEntrySize + (aead_ ? kTagSize : 0) + kTrailerSize;
  }
  Status Append(std::span<const uint8_t> data) {
    if (data.empty()) return Status::OK();
    Status s = file_->Append(data);
    if (!s.ok()) return s.WithContext(fmt::format("shard {}", path_));
    return s;
  }

  std::string path_, tmp_path_;
  Env* env_;
  Header header_;
  std::optional<crypto::Aead> aead_;
  std::unique_ptr<WritableFile> file_;
  std::vector<IndexEntry> index_;
  std::string payload_;
  std::vector<uint8_t> sealed_;
  uint64_t pos_ = 0;
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<ShardWriter>> ShardWriter::Create(const std::string& path, const Schema& schema,
                                                         const WriterOptions& options, uint32_t number,
                                                         uint64_t first_record) {
  auto w = std::make_unique<ShardWriterImpl>(path, schema, options);
  STRATA_RETURN_IF_ERROR(w->Start(number, first_record));
  return std::unique_ptr<ShardWriter>(std::move(w));
}

ShardSetWriter::ShardSetWriter(ShardSetOptions options) : options_(std::move(options)) {}
ShardSetWriter::~ShardSetWriter() = default;

Result<std::unique_ptr<ShardSetWriter>> ShardSetWriter::Create(ShardSetOptions options) {
  STRATA_RETURN_IF_ERROR(ValidateSchema(options.schema));
  if (options.dir.empty()) return Status::InvalidArgument("a shard set needs a directory");
  if (options.target_size < 2 * kBlock) return Status::InvalidArgument("target shard size below 8 KiB");
  STRATA_RETURN_IF_ERROR(options.writer.env->CreateDirs(options.dir));
  return std::unique_ptr<ShardSetWriter>(new ShardSetWriter(std::move(options)));
}

Status ShardSetWriter::Roll() {
  if (current_) {
    STRATA_ASSIGN_OR_RETURN(ShardInfo info, current_->Finish());
    next_record_ += info.record_count;
    done_.push_back(std::move(info));
    current_.reset();
  }
  std::string path = JoinPath(options_.dir, fmt::format("{}-{:05d}.shard", options_.prefix, done_.size()));
  STRATA_ASSIGN_OR_RETURN(current_, ShardWriter::Create(path, options_.schema, options_.writer,
                                                        static_cast<uint32_t>(done_.size()), next_record_));
  return Status::OK();
}

Status ShardSetWriter::Add(const Record& record) {
  STRATA_RETURN_IF_ERROR(EncodeRecord(options_.schema, record, &payload_));
  if (!current_ || (current_->record_count() > 0 && current_->SizeWith(payload_.size()) > options_.target_size)) {
    STRATA_RETURN_IF_ERROR(Roll());
  }
  return current_->AddEncoded(AsBytes(payload_));
}

Result<std::vector<ShardInfo>> ShardSetWriter::Finish() {
  if (!current_) {
    if (!done_.empty()) return Status::FailedPrecondition("shard set already finished");
    STRATA_RETURN_IF_ERROR(Roll());  // an empty set is one empty shard, so readers find the schema
  }
  STRATA_ASSIGN_OR_RETURN(ShardInfo info, current_->Finish());
  current_.reset();
  done_.push_back(std::move(info));
  return done_;
}

}  // namespace strata::shard

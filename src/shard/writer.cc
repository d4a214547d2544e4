#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "base/endian.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "shard/format.h"
#include "shard/staging.h"
#include "shard/writer.h"
#include "strata/shard.h"

namespace strata::shard {
namespace {

// Records go straight from the caller's values into the staging buffers of a StagedOutput
// (one copy; with a key the seal is that copy), their CRC32C computed there while the bytes
// are in cache; a background thread writes full buffers while the next ones fill.
class ShardWriterImpl final : public ShardWriter {
 public:
  ShardWriterImpl(std::string path, const Schema& schema, const WriterOptions& options, StagingOptions staging)
      : path_(std::move(path)), tmp_path_(path_ + ".tmp"), env_(options.env), staging_(staging) {
    header_.schema = schema;
    options_id_ = options.id;
    if (options.key) {
      aead_.emplace(*options.key);
      header_.flags |= kFlagEncrypted;
    }
  }

  ~ShardWriterImpl() override {
    if (out_ && !finished_) {
      out_.reset();  // stops the writer thread first; the file is closed unsynced
      (void)env_->DeleteFile(tmp_path_);
    }
  }

  Status Start(uint32_t number, uint64_t first_record) {
    STRATA_RETURN_IF_ERROR(ValidateSchema(header_.schema));
    if (options_id_) header_.id = *options_id_;
    else crypto::RandomBytes(header_.id);
    header_.number = number;
    header_.first_record = first_record;
    // A leftover of an interrupted writer is never a finished shard: replace it.
    if (env_->FileExists(tmp_path_)) STRATA_RETURN_IF_ERROR(Context(env_->DeleteFile(tmp_path_)));
    auto file = env_->NewStreamingFile(tmp_path_);
    if (!file.ok()) return Context(file.status());
    out_ = std::make_unique<StagedOutput>(std::move(*file), path_, staging_);
    std::string header = BuildHeader(&header_, aead_ ? &*aead_ : nullptr);
    STRATA_RETURN_IF_ERROR(out_->Append(AsBytes(header)));
    pos_ = header.size();
    return Status::OK();
  }

  Status Add(const Record& record) override {
    STRATA_RETURN_IF_ERROR(Writable());
    STRATA_ASSIGN_OR_RETURN(size_t size, EncodedSize(header_.schema, record));
    if (aead_) {
      // The seal needs the whole plaintext; it is encoded once, then sealed into the buffer.
      payload_.resize(size);
      EncodeRecordTo(header_.schema, record, reinterpret_cast<uint8_t*>(payload_.data()));
      return Put(size + kTagSize, [&](uint8_t* dst) { Seal(AsBytes(payload_), dst); });
    }
    return Put(size, [&](uint8_t* dst) { EncodeRecordTo(header_.schema, record, dst); });
  }

  Status Add(const Record& record, size_t field, const FillTensor& fill) override {
    STRATA_RETURN_IF_ERROR(Writable());
    STRATA_ASSIGN_OR_RETURN(size_t size, EncodedSize(header_.schema, record, field));
    if (aead_) {
      payload_.resize(size);
      fill(EncodeRecordTo(header_.schema, record, reinterpret_cast<uint8_t*>(payload_.data()), field));
      return Put(size + kTagSize, [&](uint8_t* dst) { Seal(AsBytes(payload_), dst); });
    }
    return Put(size, [&](uint8_t* dst) { fill(EncodeRecordTo(header_.schema, record, dst, field)); });
  }

  Status AddEncoded(std::span<const uint8_t> payload) override {
    STRATA_RETURN_IF_ERROR(Writable());
    if (payload.size() > kMaxRecordSize - kTagSize) return Status::InvalidArgument("record larger than 2 GiB");
    if (aead_) return Put(payload.size() + kTagSize, [&](uint8_t* dst) { Seal(payload, dst); });
    return Put(payload.size(), [&](uint8_t* dst) {
      if (!payload.empty()) std::memcpy(dst, payload.data(), payload.size());
    });
  }

  uint64_t Size() const override { return pos_ + FooterSize(index_.size()); }
  uint64_t record_count() const override { return index_.size(); }
  uint64_t SizeWith(size_t payload_size) const override {
    uint64_t stored = payload_size + (aead_ ? kTagSize : 0);
    return PlaceRecord(pos_, stored) + stored + FooterSize(index_.size() + 1);
  }

  Result<ShardInfo> Finish() override {
    STRATA_RETURN_IF_ERROR(Writable());
    std::string footer = BuildFooter(header_.id, index_, pos_, aead_ ? &*aead_ : nullptr);
    finished_ = true;  // from here on the writer is spent, whatever happens
    Status s = out_->Append(AsBytes(footer));
    if (s.ok()) s = out_->Finish();
    if (s.ok()) s = Context(out_->file()->Sync());
    if (s.ok()) s = Context(out_->file()->Close());
    if (s.ok()) s = Context(env_->RenameFile(tmp_path_, path_));
    if (!s.ok()) {
      // Nothing under the final name; the temporary file goes (best effort: a crash may leave
      // it, and the next writer of this path replaces it).
      out_.reset();
      (void)env_->DeleteFile(tmp_path_);
      return s;
    }
    out_.reset();
    std::string dir(Dirname(path_));
    STRATA_RETURN_IF_ERROR(Context(env_->SyncDir(dir.empty() ? "." : dir)));
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
  Status Writable() const {
    if (finished_ || !out_) return Status::FailedPrecondition(fmt::format("shard {} is already finished", path_));
    return Status::OK();
  }
  Status Context(Status s) const {
    if (!s.ok()) return s.WithContext(fmt::format("shard {}", path_));
    return s;
  }
  void Seal(std::span<const uint8_t> payload, uint8_t* dst) {
    std::string ad = RecordAd(header_.id, index_.size());
    aead_->Seal(payload, AsBytes(ad), dst);
  }
  // Places a record of `stored` bytes by the placement rule: reserves the zero padding before
  // it and the record in one piece of the staging buffer, lets `fill` write the record there,
  // and indexes it.
  template <class Fill>
  Status Put(size_t stored, Fill&& fill) {
    const uint64_t offset = PlaceRecord(pos_, stored);
    const size_t pad = static_cast<size_t>(offset - pos_);
    STRATA_ASSIGN_OR_RETURN(uint8_t* p, out_->Reserve(pad + stored));
    if (pad > 0) std::memset(p, 0, pad);
    fill(p + pad);
    const uint32_t crc = Crc32c({p + pad, stored});
    out_->Commit(pad + stored);
    index_.push_back({offset, static_cast<uint32_t>(stored), crc});
    pos_ = offset + stored;
    return Status::OK();
  }

  std::string path_, tmp_path_;
  Env* env_;
  std::optional<ShardId> options_id_;
  StagingOptions staging_;
  Header header_;
  std::optional<crypto::Aead> aead_;
  std::unique_ptr<StagedOutput> out_;
  std::vector<IndexEntry> index_;
  std::string payload_;  // encrypted records only: the plaintext before sealing
  uint64_t pos_ = 0;
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<ShardWriter>> NewShardWriter(const std::string& path, const Schema& schema,
                                                    const WriterOptions& options, uint32_t number,
                                                    uint64_t first_record, StagingOptions staging) {
  auto w = std::make_unique<ShardWriterImpl>(path, schema, options, staging);
  STRATA_RETURN_IF_ERROR(w->Start(number, first_record));
  return std::unique_ptr<ShardWriter>(std::move(w));
}

Result<std::unique_ptr<ShardWriter>> ShardWriter::Create(const std::string& path, const Schema& schema,
                                                         const WriterOptions& options, uint32_t number,
                                                         uint64_t first_record) {
  return NewShardWriter(path, schema, options, number, first_record, StagingOptions{});
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
  WriterOptions writer = options_.writer;
  if (writer.id) {
    const uint32_t n = static_cast<uint32_t>(done_.size());
    for (int i = 0; i < 4; ++i) (*writer.id)[12 + i] ^= static_cast<uint8_t>(n >> (24 - 8 * i));
  }
  STRATA_ASSIGN_OR_RETURN(current_, ShardWriter::Create(path, options_.schema, writer,
                                                        static_cast<uint32_t>(done_.size()), next_record_));
  return Status::OK();
}

Status ShardSetWriter::Add(const Record& record) {
  // Only the size is needed to choose the shard; the writer encodes straight into its buffer.
  STRATA_ASSIGN_OR_RETURN(size_t size, EncodedSize(options_.schema, record));
  if (!current_ || (current_->record_count() > 0 && current_->SizeWith(size) > options_.target_size)) {
    STRATA_RETURN_IF_ERROR(Roll());
  }
  return current_->Add(record);
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

// Shards: the training tier's files of records, built for random reads at the disk's limit.
//
//   strata::shard::Schema schema{{
//       {.name = "image", .type = strata::shard::FieldType::kTensor,
//        .dtype = strata::shard::DType::kUint8, .shape = {28, 28}},
//       {.name = "label", .type = strata::shard::FieldType::kLabel, .num_classes = 10}}};
//   auto set = strata::shard::ShardSetWriter::Create({.dir = "/srv/train", .schema = schema});
//   (*set)->Add({strata::shard::Tensor{DType::kUint8, {28, 28}, pixels}, strata::shard::Label{7}});
//   auto shards = (*set)->Finish();                     // -> paths and record ranges
//
//   auto shard = strata::shard::ShardReader::Open((*shards)[0].path, {});
//   auto record = (*shard)->Read(17);                   // one aligned read, checksum verified
//
// A shard is one file: a header with a typed schema, the records, and an index footer
// (docs/FORMAT.md, "Shards"). Records of 4 KiB and more start on a 4 KiB boundary and smaller
// ones never cross one, so any record is read with a single aligned O_DIRECT read. Every record
// carries a CRC32C; with a key, every record is also sealed with AES-256-GCM and bound to its
// shard and position. Readers treat the file as untrusted input: damage is reported as
// kCorruption naming the file and the record, never returned and never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "strata/env.h"
#include "strata/status.h"

namespace strata::shard {

// Field types; the numbers are stored in the schema.
enum class FieldType : uint8_t { kTensor = 1, kBytes = 2, kString = 3, kInt = 4, kFloat = 5, kLabel = 6 };

// Element types of tensors; the numbers are stored in the schema.
enum class DType : uint8_t {
  kBool = 1, kUint8 = 2, kInt8 = 3, kUint16 = 4, kInt16 = 5, kUint32 = 6, kInt32 = 7,
  kUint64 = 8, kInt64 = 9, kFloat16 = 10, kBFloat16 = 11, kFloat32 = 12, kFloat64 = 13,
};
// Bytes per element (0 for a value that is not a DType).
size_t DTypeSize(DType dtype);

struct Field {
  std::string name;              // 1..255 bytes, unique within the schema
  FieldType type = FieldType::kBytes;
  // Tensors: the element type and the shape; a dimension of -1 accepts any extent.
  DType dtype = DType::kUint8;
  std::vector<int64_t> shape;    // at most 8 dimensions
  // Labels: values must be < num_classes (0: any 32-bit value).
  uint32_t num_classes = 0;
  bool operator==(const Field&) const = default;
};

struct Schema {
  std::vector<Field> fields;     // 1..1024 fields
  bool operator==(const Schema&) const = default;
};

// A tensor value: shape.size() equals the field's rank; data holds the elements, little-endian,
// row-major (product(shape) * DTypeSize(dtype) bytes).
struct Tensor {
  DType dtype = DType::kUint8;
  std::vector<uint64_t> shape;
  std::string data;
  bool operator==(const Tensor&) const = default;
};
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};
struct Label {
  uint32_t value = 0;
  bool operator==(const Label&) const = default;
};
// One value per field; the alternative's index + 1 is the FieldType (string is kString, int64_t
// kInt, double kFloat).
using Value = std::variant<Tensor, Bytes, std::string, int64_t, double, Label>;
// A record: one value per schema field, in schema order.
using Record = std::vector<Value>;

using Key = std::array<uint8_t, 32>;     // the same bytes as crypto::Key256
using ShardId = std::array<uint8_t, 16>;

struct WriterOptions {
  Env* env = Env::Default();
  // With a key, every record is sealed with AES-256-GCM (docs/SECURITY.md says what leaks).
  std::optional<Key> key;
  // The shard's id; default: random. A caller that needs byte-identical output for identical
  // input (deterministic transforms) gives one derived from that input. In a ShardSetWriter,
  // shard N gets this id with its last four bytes XORed with N (big-endian).
  std::optional<ShardId> id;
};

// What a finished shard holds.
struct ShardInfo {
  std::string path;
  ShardId id{};
  uint32_t number = 0;           // position in its set
  uint64_t first_record = 0;     // set-wide index of the shard's record 0
  uint64_t record_count = 0;
  uint64_t bytes = 0;            // file size
};

// Writes one shard. The file appears at `path` only when Finish() succeeds (written under
// path + ".tmp", synced, renamed, directory synced). Used by one thread at a time.
class ShardWriter {
 public:
  virtual ~ShardWriter() = default;
  // `number` and `first_record` place the shard in a set (stored in its header).
  static Result<std::unique_ptr<ShardWriter>> Create(const std::string& path, const Schema& schema,
                                                     const WriterOptions& options, uint32_t number = 0,
                                                     uint64_t first_record = 0);
  // Fails with kInvalidArgument (and writes nothing) if the record does not match the schema.
  virtual Status Add(const Record& record) = 0;
  // The same, for a producer that makes a tensor in place: the tensor at `record[field]` is
  // given with its dtype and shape and no data, and `fill` writes its data (as many bytes as the
  // shape says) straight into the record's place in the shard's write buffer.
  using FillTensor = std::function<void(uint8_t* data)>;
  virtual Status Add(const Record& record, size_t field, const FillTensor& fill) = 0;
  // Adds a payload made by EncodeRecord for this schema (not checked again: a wrong one is
  // written, and reported as corruption when read).
  virtual Status AddEncoded(std::span<const uint8_t> payload) = 0;
  // The file size the shard would have if finished now.
  virtual uint64_t Size() const = 0;
  virtual uint64_t record_count() const = 0;
  // The file size after adding a record whose encoded form has `payload_size` bytes.
  virtual uint64_t SizeWith(size_t payload_size) const = 0;
  virtual Result<ShardInfo> Finish() = 0;
};

struct ShardSetOptions {
  std::string dir;                        // created if missing
  std::string prefix = "shard";           // files are <prefix>-00000.shard, -00001, ...
  Schema schema;
  uint64_t target_size = 256ull << 20;    // a shard is closed before it would pass this size
  WriterOptions writer;
};

// Writes records into a sequence of shards, starting a new one when the next record would
// take the current one past target_size (a record larger than that gets a shard of its own).
class ShardSetWriter {
 public:
  static Result<std::unique_ptr<ShardSetWriter>> Create(ShardSetOptions options);
  Status Add(const Record& record);
  // Finishes the last shard; returns every shard written, in order, with its record range.
  Result<std::vector<ShardInfo>> Finish();
  ~ShardSetWriter();

 private:
  explicit ShardSetWriter(ShardSetOptions options);
  Status Roll();
  ShardSetOptions options_;
  std::string payload_;
  std::unique_ptr<ShardWriter> current_;
  std::vector<ShardInfo> done_;
  uint64_t next_record_ = 0;
};

struct ReaderOptions {
  std::optional<Key> key;                 // required for an encrypted shard
  // Read with O_DIRECT (falls back to buffered reads where the file system refuses it).
  bool direct_io = true;
};

// Where a record lies: its bytes, and the aligned extent one read fetches to get them.
struct RecordLocation {
  uint64_t offset = 0, length = 0;               // stored bytes (sealed when encrypted)
  uint64_t extent_offset = 0, extent_length = 0; // multiples of 4096 covering the record
  uint32_t crc32c = 0;
};

// A shard open for reading; header, schema, index and trailer are validated at Open. Safe for
// concurrent use by several threads.
class ShardReader {
 public:
  virtual ~ShardReader() = default;
  static Result<std::unique_ptr<ShardReader>> Open(const std::string& path, const ReaderOptions& options);

  virtual const std::string& path() const = 0;
  virtual const Schema& schema() const = 0;
  virtual const ShardId& id() const = 0;
  virtual uint32_t number() const = 0;
  virtual uint64_t first_record() const = 0;
  virtual uint64_t record_count() const = 0;
  virtual bool encrypted() const = 0;
  // Whether reads bypass the page cache (false where O_DIRECT was refused or not asked for).
  virtual bool direct_io() const = 0;
  virtual RecordLocation Locate(uint64_t index) const = 0;

  // The record's encoded fields (checksum verified, decrypted). kInvalidArgument for an index
  // out of range; kCorruption naming the shard and record for damage.
  virtual Result<std::string> ReadPayload(uint64_t index) const = 0;
  virtual Result<Record> Read(uint64_t index) const = 0;
  // Records in the order of `indexes`; records sharing or touching an extent are fetched with
  // one read. Fails as a whole if any record fails.
  virtual Result<std::vector<Record>> ReadBatch(std::span<const uint64_t> indexes) const = 0;
  // Reads everything: every record, and every padding byte (which must be zero).
  virtual Status Verify() const = 0;
};

// Encodes a record in the payload form of docs/FORMAT.md; kInvalidArgument if it does not
// match the schema.
Status EncodeRecord(const Schema& schema, const Record& record, std::string* out);
// The size of that payload; `open`: a tensor field given without data (ShardWriter::Add with a
// fill), counted at the size its shape says. kInvalidArgument as EncodeRecord.
inline constexpr size_t kNoOpenField = ~size_t{0};
Result<size_t> EncodedSize(const Schema& schema, const Record& record, size_t open = kNoOpenField);
// Decodes a payload; kCorruption if it does not match the schema exactly.
Result<Record> DecodeRecord(const Schema& schema, std::span<const uint8_t> payload);

}  // namespace strata::shard

// strata.ShardReader, strata.ShardWriter and the shard set behind strata.Dataset: records of the
// training tier's shard files as numpy arrays. Tensors are handed to numpy without a copy: the
// array's owner is the decoded record (one record) or the batch buffer (many), and the GIL is
// released while shards are read.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "common.h"
#include "dtype.h"
#include "strata/shard.h"

namespace strata::python {
namespace {

using nb::gil_scoped_release;
using shard::DType;
using shard::FieldType;

// ---- schema <-> Python: a list of dicts {"name", "type", and "dtype"/"shape" or "num_classes"} ----

FieldType ParseFieldType(const std::string& s) {
  static const std::pair<const char*, FieldType> kTypes[] = {
      {"tensor", FieldType::kTensor}, {"bytes", FieldType::kBytes}, {"string", FieldType::kString},
      {"int", FieldType::kInt},       {"float", FieldType::kFloat}, {"label", FieldType::kLabel}};
  for (const auto& [name, t] : kTypes) {
    if (s == name) return t;
  }
  throw StatusError(Status::InvalidArgument("unknown field type '" + s +
                                            "' (known: tensor, bytes, string, int, float, label)"));
}

shard::Schema SchemaFromPython(nb::handle fields) {
  shard::Schema schema;
  for (nb::handle item : fields) {
    nb::dict d = nb::cast<nb::dict>(item);
    shard::Field f;
    f.name = nb::cast<std::string>(d["name"]);
    f.type = d.contains("type") ? ParseFieldType(nb::cast<std::string>(d["type"])) : FieldType::kTensor;
    if (f.type == FieldType::kTensor) {
      f.dtype = ParseDType(nb::cast<std::string>(nb::str(d["dtype"])));
      for (nb::handle dim : d["shape"]) f.shape.push_back(nb::cast<int64_t>(dim));
    }
    if (f.type == FieldType::kLabel && d.contains("num_classes")) f.num_classes = nb::cast<uint32_t>(d["num_classes"]);
    schema.fields.push_back(std::move(f));
  }
  return schema;
}

nb::list SchemaToPython(const shard::Schema& schema) {
  nb::list out;
  for (const auto& f : schema.fields) {
    nb::dict d;
    d["name"] = f.name;
    d["type"] = FieldTypeName(f.type);
    if (f.type == FieldType::kTensor) {
      d["dtype"] = DTypeName(f.dtype);
      nb::list shape;
      for (int64_t dim : f.shape) shape.append(dim);
      d["shape"] = nb::tuple(shape);
    }
    if (f.type == FieldType::kLabel) d["num_classes"] = f.num_classes;
    out.append(d);
  }
  return out;
}

std::optional<shard::Key> KeyFromPython(const std::optional<nb::bytes>& key) {
  if (!key) return std::nullopt;
  if (key->size() != 32) throw StatusError(Status::InvalidArgument("a shard key is 32 bytes"));
  shard::Key k;
  std::memcpy(k.data(), key->c_str(), 32);
  return k;
}

// ---- one record -> dict, zero copy ----

struct RecordOwner {
  shard::Record record;
};

nb::object TensorArray(void* data, const std::vector<size_t>& shape, DType dtype, nb::handle owner) {
  return nb::ndarray<nb::numpy>(data, shape.size(), shape.data(), owner, nullptr, DLPackType(dtype)).cast();
}

nb::dict RecordToPython(const shard::Schema& schema, shard::Record&& record) {
  auto* holder = new RecordOwner{std::move(record)};
  nb::capsule owner(holder, [](void* p) noexcept { delete static_cast<RecordOwner*>(p); });
  nb::dict out;
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    const char* name = schema.fields[i].name.c_str();
    shard::Value& v = holder->record[i];
    if (auto* t = std::get_if<shard::Tensor>(&v)) {
      std::vector<size_t> shape(t->shape.begin(), t->shape.end());
      out[name] = TensorArray(t->data.data(), shape, t->dtype, owner);
    } else if (auto* b = std::get_if<shard::Bytes>(&v)) {
      out[name] = nb::bytes(b->data.data(), b->data.size());
    } else if (auto* s = std::get_if<std::string>(&v)) {
      out[name] = nb::str(s->data(), s->size());
    } else if (auto* n = std::get_if<int64_t>(&v)) {
      out[name] = nb::int_(*n);
    } else if (auto* x = std::get_if<double>(&v)) {
      out[name] = nb::float_(*x);
    } else {
      out[name] = nb::int_(std::get<shard::Label>(v).value);
    }
  }
  return out;
}

// ---- a set of shards, numbered in order, read in batches ----

struct AlignedBuffer {
  void* data = nullptr;
  explicit AlignedBuffer(size_t n) : data(std::aligned_alloc(4096, std::max<size_t>(4096, (n + 4095) / 4096 * 4096))) {
    if (!data) throw std::bad_alloc();
  }
};

class ShardSet {
 public:
  ShardSet(const std::vector<std::string>& paths, const std::optional<shard::Key>& key, bool direct_io) {
    shard::ReaderOptions o;
    o.key = key;
    o.direct_io = direct_io;
    gil_scoped_release release;
    uint64_t total = 0;
    for (const auto& path : paths) {
      std::shared_ptr<shard::ShardReader> r = Check(shard::ShardReader::Open(path, o));
      if (!readers_.empty() && !(r->schema() == readers_[0]->schema())) {
        throw StatusError(Status::InvalidArgument("shard " + path + " has another schema than " + readers_[0]->path()));
      }
      starts_.push_back(total);
      total += r->record_count();
      readers_.push_back(std::move(r));
    }
    if (readers_.empty()) throw StatusError(Status::InvalidArgument("no shards given"));
    total_ = total;
  }
  explicit ShardSet(std::shared_ptr<shard::ShardReader> one) {
    starts_.push_back(0);
    total_ = one->record_count();
    readers_.push_back(std::move(one));
  }

  uint64_t size() const { return total_; }
  const shard::Schema& schema() const { return readers_[0]->schema(); }
  const std::vector<std::shared_ptr<shard::ShardReader>>& readers() const { return readers_; }

  nb::dict Read(int64_t i) {
    auto [reader, local] = Locate(i);
    shard::Record rec;
    {
      gil_scoped_release release;
      rec = Check(reader->Read(local));
    }
    return RecordToPython(schema(), std::move(rec));
  }

  // Reads the records `indexes` (in that order) and stacks each field: tensors of one shape,
  // ints, floats and labels into one array each (in one 4 KiB-aligned buffer), bytes and strings
  // into lists, tensors of differing shapes into lists of arrays. With skip_corrupt, records
  // that fail their checks are left out and their numbers returned as the second element.
  nb::tuple ReadBatch(nb::ndarray<const int64_t, nb::ndim<1>, nb::device::cpu> index_array, bool skip_corrupt) {
    std::vector<uint64_t> indexes(index_array.shape(0));
    for (size_t k = 0; k < indexes.size(); ++k) {
      int64_t i = index_array(k);
      if (i < 0 || uint64_t(i) >= total_) {
        throw nb::index_error(("record " + std::to_string(i) + " out of range [0, " + std::to_string(total_) + ")").c_str());
      }
      indexes[k] = uint64_t(i);
    }
    std::vector<shard::Record> records;
    std::vector<uint64_t> bad;
    {
      gil_scoped_release release;
      records = ReadRecords(indexes, skip_corrupt, &bad);
    }
    return nb::make_tuple(Stack(std::move(records)), bad);
  }

  Status Verify() const {
    gil_scoped_release release;
    for (const auto& r : readers_) STRATA_RETURN_IF_ERROR(r->Verify());
    return Status();
  }

 private:
  std::pair<shard::ShardReader*, uint64_t> Locate(int64_t i) const {
    if (i < 0) i += int64_t(total_);
    if (i < 0 || uint64_t(i) >= total_) {
      throw nb::index_error(("record " + std::to_string(i) + " out of range [0, " + std::to_string(total_) + ")").c_str());
    }
    size_t s = std::upper_bound(starts_.begin(), starts_.end(), uint64_t(i)) - starts_.begin() - 1;
    return {readers_[s].get(), uint64_t(i) - starts_[s]};
  }

  std::vector<shard::Record> ReadRecords(const std::vector<uint64_t>& indexes, bool skip_corrupt,
                                         std::vector<uint64_t>* bad) const {
    // Group by shard (each shard's ReadBatch coalesces neighbouring records into one read).
    std::vector<std::optional<shard::Record>> out(indexes.size());
    std::vector<std::vector<size_t>> by_shard(readers_.size());
    for (size_t k = 0; k < indexes.size(); ++k) {
      size_t s = std::upper_bound(starts_.begin(), starts_.end(), indexes[k]) - starts_.begin() - 1;
      by_shard[s].push_back(k);
    }
    for (size_t s = 0; s < readers_.size(); ++s) {
      if (by_shard[s].empty()) continue;
      std::vector<uint64_t> local;
      for (size_t k : by_shard[s]) local.push_back(indexes[k] - starts_[s]);
      auto got = readers_[s]->ReadBatch(local);
      if (got.ok()) {
        for (size_t j = 0; j < local.size(); ++j) out[by_shard[s][j]] = std::move((*got)[j]);
        continue;
      }
      if (!skip_corrupt || !got.status().IsCorruption()) throw StatusError(got.status());
      // Find the damaged records one by one; the others are kept.
      for (size_t j = 0; j < local.size(); ++j) {
        auto one = readers_[s]->Read(local[j]);
        if (one.ok()) {
          out[by_shard[s][j]] = std::move(*one);
        } else if (one.status().IsCorruption()) {
          bad->push_back(indexes[by_shard[s][j]]);
        } else {
          throw StatusError(one.status());
        }
      }
    }
    std::vector<shard::Record> records;
    records.reserve(indexes.size());
    for (auto& r : out) {
      if (r) records.push_back(std::move(*r));
    }
    return records;
  }

  nb::dict Stack(std::vector<shard::Record> records) const {
    const shard::Schema& sch = schema();
    size_t n = records.size();
    // Sizes of the dense columns, each starting on a 64-byte boundary of one buffer.
    std::vector<int64_t> offsets(sch.fields.size(), -1);
    std::vector<std::vector<size_t>> shapes(sch.fields.size());
    size_t total = 0;
    for (size_t f = 0; f < sch.fields.size(); ++f) {
      const shard::Field& field = sch.fields[f];
      size_t row = 0;
      if (field.type == FieldType::kTensor) {
        bool same = n > 0;
        for (size_t i = 1; i < n && same; ++i) {
          same = std::get<shard::Tensor>(records[i][f]).shape == std::get<shard::Tensor>(records[0][f]).shape;
        }
        if (!same) continue;
        const auto& t0 = std::get<shard::Tensor>(records[0][f]);
        shapes[f].push_back(n);
        for (uint64_t d : t0.shape) shapes[f].push_back(d);
        row = t0.data.size();
      } else if (field.type == FieldType::kInt || field.type == FieldType::kFloat || field.type == FieldType::kLabel) {
        shapes[f].push_back(n);
        row = 8;
      } else {
        continue;
      }
      total = (total + 63) / 64 * 64;
      offsets[f] = int64_t(total);
      total += row * n;
    }
    AlignedBuffer buffer(total);
    uint8_t* base = static_cast<uint8_t*>(buffer.data);
    nb::capsule owner(buffer.data, [](void* p) noexcept { std::free(p); });
    {
      gil_scoped_release release;
      for (size_t f = 0; f < sch.fields.size(); ++f) {
        if (offsets[f] < 0) continue;
        uint8_t* dst = base + offsets[f];
        for (size_t i = 0; i < n; ++i) {
          const shard::Value& v = records[i][f];
          if (auto* t = std::get_if<shard::Tensor>(&v)) {
            std::memcpy(dst, t->data.data(), t->data.size());
            dst += t->data.size();
          } else {
            int64_t x = 0;
            if (auto* l = std::get_if<shard::Label>(&v)) x = l->value;
            else if (auto* k = std::get_if<int64_t>(&v)) x = *k;
            else std::memcpy(&x, &std::get<double>(v), 8);
            std::memcpy(dst, &x, 8);
            dst += 8;
          }
        }
      }
    }
    nb::dict out;
    for (size_t f = 0; f < sch.fields.size(); ++f) {
      const shard::Field& field = sch.fields[f];
      const char* name = field.name.c_str();
      if (offsets[f] >= 0) {
        DType dtype = field.type == FieldType::kTensor ? std::get<shard::Tensor>(records[0][f]).dtype
                      : field.type == FieldType::kFloat ? DType::kFloat64
                                                         : DType::kInt64;
        out[name] = TensorArray(base + offsets[f], shapes[f], dtype, owner);
        continue;
      }
      nb::list items;
      if (field.type == FieldType::kTensor) {
        // Differing shapes: one array per record, each owning its record's bytes.
        for (auto& rec : records) {
          auto* t = new shard::Tensor(std::move(std::get<shard::Tensor>(rec[f])));
          nb::capsule own(t, [](void* p) noexcept { delete static_cast<shard::Tensor*>(p); });
          std::vector<size_t> shape(t->shape.begin(), t->shape.end());
          items.append(TensorArray(t->data.data(), shape, t->dtype, own));
        }
      } else {
        for (const auto& rec : records) {
          if (auto* b = std::get_if<shard::Bytes>(&rec[f])) items.append(nb::bytes(b->data.data(), b->data.size()));
          else {
            const auto& s = std::get<std::string>(rec[f]);
            items.append(nb::str(s.data(), s.size()));
          }
        }
      }
      out[name] = items;
    }
    return out;
  }

  std::vector<std::shared_ptr<shard::ShardReader>> readers_;
  std::vector<uint64_t> starts_;
  uint64_t total_ = 0;
};

// ---- writing ----

shard::Value ValueFromPythonUnchecked(const shard::Field& field, nb::handle h) {
  switch (field.type) {
    case FieldType::kTensor: {
      auto arr = nb::cast<nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>>(h);
      if (arr.dtype() != DLPackType(field.dtype)) {
        throw StatusError(Status::InvalidArgument("field '" + field.name + "': expected dtype " +
                                                  std::string(DTypeName(field.dtype))));
      }
      shard::Tensor t;
      t.dtype = field.dtype;
      for (size_t d = 0; d < arr.ndim(); ++d) t.shape.push_back(arr.shape(d));
      t.data.assign(static_cast<const char*>(arr.data()), arr.nbytes());
      return t;
    }
    case FieldType::kBytes: {
      nb::bytes b = nb::cast<nb::bytes>(h);
      return shard::Bytes{std::string(b.c_str(), b.size())};
    }
    case FieldType::kString: return nb::cast<std::string>(h);
    case FieldType::kInt: return nb::cast<int64_t>(h);
    case FieldType::kFloat: return nb::cast<double>(h);
    case FieldType::kLabel: return shard::Label{nb::cast<uint32_t>(h)};
  }
  throw StatusError(Status::Internal("unknown field type"));
}

shard::Value ValueFromPython(const shard::Field& field, nb::handle h) {
  try {
    return ValueFromPythonUnchecked(field, h);
  } catch (const nb::cast_error&) {
    throw StatusError(Status::InvalidArgument("field '" + field.name + "' (" + FieldTypeName(field.type) +
                                              "): cannot take a value of type " +
                                              nb::cast<std::string>(nb::str(h.type().attr("__name__")))));
  }
}

nb::dict ShardInfoToPython(const shard::ShardInfo& s) {
  nb::dict d;
  d["path"] = s.path;
  d["number"] = s.number;
  d["first_record"] = s.first_record;
  d["records"] = s.record_count;
  d["bytes"] = s.bytes;
  return d;
}

class PyShardWriter {
 public:
  PyShardWriter(const std::string& dir, nb::handle schema, const std::string& prefix, uint64_t target_size,
                const std::optional<nb::bytes>& key) {
    shard::ShardSetOptions o;
    o.dir = dir;
    o.prefix = prefix;
    o.schema = SchemaFromPython(schema);
    o.target_size = target_size;
    o.writer.key = KeyFromPython(key);
    schema_ = o.schema;
    writer_ = Check(shard::ShardSetWriter::Create(std::move(o)));
  }
  // `record`: a dict by field name, or a sequence in schema order.
  void Add(nb::handle record) {
    if (!writer_) throw StatusError(Status::FailedPrecondition("the writer is finished"));
    shard::Record rec;
    bool is_dict = nb::isinstance<nb::dict>(record);
    for (size_t i = 0; i < schema_.fields.size(); ++i) {
      const shard::Field& f = schema_.fields[i];
      nb::object v = is_dict ? nb::borrow(record[f.name.c_str()]) : nb::borrow(record[nb::int_(i)]);
      rec.push_back(ValueFromPython(f, v));
    }
    gil_scoped_release release;
    Check(writer_->Add(rec));
  }
  nb::list Finish() {
    if (!writer_) throw StatusError(Status::FailedPrecondition("the writer is finished"));
    std::vector<shard::ShardInfo> shards;
    {
      gil_scoped_release release;
      shards = Check(writer_->Finish());
      writer_.reset();
    }
    nb::list out;
    for (const auto& s : shards) out.append(ShardInfoToPython(s));
    return out;
  }

 private:
  shard::Schema schema_;
  std::unique_ptr<shard::ShardSetWriter> writer_;
};

}  // namespace

nb::list SchemaList(const shard::Schema& schema) { return SchemaToPython(schema); }
std::optional<shard::Key> ShardKey(const std::optional<nb::bytes>& key) { return KeyFromPython(key); }

void BindShard(nb::module_& m) {
  nb::class_<ShardSet>(m, "_ShardSet")
      .def("__init__", [](ShardSet* self, const std::vector<std::string>& paths, const std::optional<nb::bytes>& key,
                          bool direct_io) { new (self) ShardSet(paths, KeyFromPython(key), direct_io); },
           nb::arg("paths"), nb::arg("key") = nb::none(), nb::arg("direct_io") = true)
      .def("__len__", &ShardSet::size)
      .def_prop_ro("schema", [](const ShardSet& s) { return SchemaToPython(s.schema()); })
      .def_prop_ro("shards", [](const ShardSet& s) {
        nb::list out;
        for (const auto& r : s.readers()) {
          nb::dict d;
          d["path"] = r->path();
          d["number"] = r->number();
          d["first_record"] = r->first_record();
          d["records"] = r->record_count();
          d["encrypted"] = r->encrypted();
          d["direct_io"] = r->direct_io();
          out.append(d);
        }
        return out;
      })
      .def("read", &ShardSet::Read, nb::arg("index"))
      .def("read_batch", &ShardSet::ReadBatch, nb::arg("indexes"), nb::arg("skip_corrupt") = false)
      .def("verify", [](const ShardSet& s) { Check(s.Verify()); });

  nb::class_<PyShardWriter>(m, "_ShardWriter")
      .def(nb::init<const std::string&, nb::handle, const std::string&, uint64_t, const std::optional<nb::bytes>&>(),
           nb::arg("dir"), nb::arg("schema"), nb::arg("prefix") = "shard", nb::arg("target_size") = 256ull << 20,
           nb::arg("key") = nb::none())
      .def("add", &PyShardWriter::Add, nb::arg("record"))
      .def("finish", &PyShardWriter::Finish);
}

}  // namespace strata::python

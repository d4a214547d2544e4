// Element types between shards, numpy and DLPack.
#pragma once

#include <nanobind/ndarray.h>

#include <string>
#include <string_view>

#include "common.h"
#include "strata/shard.h"

namespace strata::python {

// numpy's names ("uint8", "float32", ...); bfloat16, which numpy lacks, is "bfloat16".
inline const char* DTypeName(shard::DType d) {
  switch (d) {
    case shard::DType::kBool: return "bool";
    case shard::DType::kUint8: return "uint8";
    case shard::DType::kInt8: return "int8";
    case shard::DType::kUint16: return "uint16";
    case shard::DType::kInt16: return "int16";
    case shard::DType::kUint32: return "uint32";
    case shard::DType::kInt32: return "int32";
    case shard::DType::kUint64: return "uint64";
    case shard::DType::kInt64: return "int64";
    case shard::DType::kFloat16: return "float16";
    case shard::DType::kBFloat16: return "bfloat16";
    case shard::DType::kFloat32: return "float32";
    case shard::DType::kFloat64: return "float64";
  }
  return "?";
}

inline shard::DType ParseDType(const std::string& name) {
  for (int i = 1; i <= 13; ++i) {
    auto d = static_cast<shard::DType>(i);
    if (name == DTypeName(d)) return d;
  }
  throw StatusError(Status::InvalidArgument("unknown dtype '" + name + "'"));
}

inline const char* FieldTypeName(shard::FieldType t) {
  switch (t) {
    case shard::FieldType::kTensor: return "tensor";
    case shard::FieldType::kBytes: return "bytes";
    case shard::FieldType::kString: return "string";
    case shard::FieldType::kInt: return "int";
    case shard::FieldType::kFloat: return "float";
    case shard::FieldType::kLabel: return "label";
  }
  return "?";
}

// numpy has no bfloat16: such tensors are handed over as uint16 (the same bits).
inline nanobind::dlpack::dtype DLPackType(shard::DType d) {
  using nanobind::dlpack::dtype_code;
  auto make = [](dtype_code c, int bits) {
    return nanobind::dlpack::dtype{static_cast<uint8_t>(c), static_cast<uint8_t>(bits), 1};
  };
  switch (d) {
    case shard::DType::kBool: return make(dtype_code::Bool, 8);
    case shard::DType::kUint8: return make(dtype_code::UInt, 8);
    case shard::DType::kInt8: return make(dtype_code::Int, 8);
    case shard::DType::kUint16: return make(dtype_code::UInt, 16);
    case shard::DType::kInt16: return make(dtype_code::Int, 16);
    case shard::DType::kUint32: return make(dtype_code::UInt, 32);
    case shard::DType::kInt32: return make(dtype_code::Int, 32);
    case shard::DType::kUint64: return make(dtype_code::UInt, 64);
    case shard::DType::kInt64: return make(dtype_code::Int, 64);
    case shard::DType::kFloat16: return make(dtype_code::Float, 16);
    case shard::DType::kBFloat16: return make(dtype_code::UInt, 16);
    case shard::DType::kFloat32: return make(dtype_code::Float, 32);
    case shard::DType::kFloat64: return make(dtype_code::Float, 64);
  }
  return make(dtype_code::UInt, 8);
}

nanobind::list SchemaList(const shard::Schema& schema);
std::optional<shard::Key> ShardKey(const std::optional<nanobind::bytes>& key);

}  // namespace strata::python

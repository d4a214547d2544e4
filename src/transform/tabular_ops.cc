#include "transform/tabular_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include <fmt/format.h>

namespace strata::transform {
namespace {

using nlohmann::json;

std::string CellText(const Cell& c) {
  if (const auto* d = std::get_if<double>(&c)) return fmt::format("{}", *d);
  if (const auto* s = std::get_if<std::string>(&c)) return *s;
  return "";
}

Result<std::vector<size_t>> ColumnsOf(const Op& op, const Table& t) {
  std::vector<size_t> out;
  if (op.columns.empty()) {
    for (size_t j = 0; j < t.columns.size(); ++j) out.push_back(j);
    return out;
  }
  for (const auto& name : op.columns) {
    auto it = std::find(t.columns.begin(), t.columns.end(), name);
    if (it == t.columns.end()) {
      return Status::InvalidArgument(fmt::format("op '{}' (line {}): no column '{}' at this point (columns: {})", op.name,
                                                 op.line, name, fmt::join(t.columns, ", ")));
    }
    out.push_back(static_cast<size_t>(it - t.columns.begin()));
  }
  return out;
}

void Drop(Table* t, size_t i, const Op& op, std::string why) {
  t->errors[i] = std::move(why);
  t->error_ops[i] = op.name;
}

// The numbers of column j in good rows; a row with text there is dropped.
std::vector<double> Numbers(const Op& op, Table* t, size_t j) {
  std::vector<double> v;
  for (size_t i = 0; i < t->rows.size(); ++i) {
    if (!t->errors[i].empty()) continue;
    const Cell& c = t->rows[i][j];
    if (const auto* d = std::get_if<double>(&c)) {
      v.push_back(*d);
    } else if (const auto* s = std::get_if<std::string>(&c)) {
      Drop(t, i, op, fmt::format("column '{}': '{}' is not a number", t->columns[j], *s));
    }
  }
  return v;
}

// Applies f to the number in column j of every good row (missing cells stay missing).
template <class F>
void MapNumbers(Table* t, size_t j, F f) {
  for (size_t i = 0; i < t->rows.size(); ++i) {
    if (!t->errors[i].empty()) continue;
    if (auto* d = std::get_if<double>(&t->rows[i][j])) *d = f(*d);
  }
}

double Mean(const std::vector<double>& v) {
  // Pairwise-free but compensated: the same order every time, so the same bits.
  double sum = 0, c = 0;
  for (double x : v) {
    double y = x - c;
    double s = sum + y;
    c = (s - sum) - y;
    sum = s;
  }
  return sum / static_cast<double>(v.size());
}

Status NoValues(const Op& op, const Table& t, size_t j) {
  return Status::InvalidArgument(
      fmt::format("op '{}' (line {}): column '{}' has no values to fit on", op.name, op.line, t.columns[j]));
}

}  // namespace

Result<json> FitAndApply(const Op& op, Table* t) {
  STRATA_ASSIGN_OR_RETURN(std::vector<size_t> cols, ColumnsOf(op, *t));
  json stats = json::object();
  switch (op.kind) {
    case OpKind::kFillMissing:
      for (size_t j : cols) {
        Cell fill;
        if (op.mode == "value") {
          fill = op.fill_value;
        } else if (op.mode == "most_frequent") {
          std::map<std::string, std::pair<uint64_t, Cell>> counts;  // by text: ties go to the smallest
          for (size_t i = 0; i < t->rows.size(); ++i) {
            const Cell& c = t->rows[i][j];
            if (!t->errors[i].empty() || std::holds_alternative<std::monostate>(c)) continue;
            auto& e = counts[CellText(c)];
            ++e.first;
            e.second = c;
          }
          if (counts.empty()) return NoValues(op, *t, j);
          auto best = counts.begin();
          for (auto it = counts.begin(); it != counts.end(); ++it) {
            if (it->second.first > best->second.first) best = it;
          }
          fill = best->second.second;
        } else {
          std::vector<double> v = Numbers(op, t, j);
          if (v.empty()) return NoValues(op, *t, j);
          if (op.mode == "mean") {
            fill = Mean(v);
          } else {  // median: the lower middle value of an even count, so always a seen value
            auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
            std::nth_element(v.begin(), mid, v.end());
            fill = *mid;
          }
        }
        stats[t->columns[j]] = std::holds_alternative<double>(fill) ? json(std::get<double>(fill))
                                                                    : json(std::get<std::string>(fill));
        for (size_t i = 0; i < t->rows.size(); ++i) {
          if (t->errors[i].empty() && std::holds_alternative<std::monostate>(t->rows[i][j])) t->rows[i][j] = fill;
        }
      }
      return stats;
    case OpKind::kStandardize:
      for (size_t j : cols) {
        std::vector<double> v = Numbers(op, t, j);
        if (v.empty()) return NoValues(op, *t, j);
        double mean = Mean(v);
        std::vector<double> sq(v.size());
        for (size_t k = 0; k < v.size(); ++k) sq[k] = (v[k] - mean) * (v[k] - mean);
        double sd = std::sqrt(Mean(sq));
        stats[t->columns[j]] = {{"mean", mean}, {"std", sd}};
        if (!(sd > 0)) sd = 1;  // a constant column becomes all zeros
        MapNumbers(t, j, [&](double x) { return (x - mean) / sd; });
      }
      return stats;
    case OpKind::kMinMax:
      for (size_t j : cols) {
        std::vector<double> v = Numbers(op, t, j);
        if (v.empty()) return NoValues(op, *t, j);
        auto [lo_it, hi_it] = std::minmax_element(v.begin(), v.end());
        double lo = *lo_it, hi = *hi_it;
        stats[t->columns[j]] = {{"min", lo}, {"max", hi}};
        double span = hi - lo;
        MapNumbers(t, j, [&](double x) {
          return span > 0 ? op.range_lo + (x - lo) / span * (op.range_hi - op.range_lo) : op.range_lo;
        });
      }
      return stats;
    case OpKind::kBucketize:
      for (size_t j : cols) {
        (void)Numbers(op, t, j);
        MapNumbers(t, j, [&](double x) {
          return static_cast<double>(std::upper_bound(op.boundaries.begin(), op.boundaries.end(), x) -
                                     op.boundaries.begin());
        });
      }
      return stats;
    case OpKind::kOneHot: {
      // Columns are replaced right to left so that the indexes still to do stay valid.
      std::sort(cols.begin(), cols.end());
      for (auto jt = cols.rbegin(); jt != cols.rend(); ++jt) {
        size_t j = *jt;
        std::vector<std::string> cats = op.categories;
        if (cats.empty()) {
          std::map<std::string, bool> seen;
          for (size_t i = 0; i < t->rows.size(); ++i) {
            if (t->errors[i].empty() && !std::holds_alternative<std::monostate>(t->rows[i][j])) {
              seen[CellText(t->rows[i][j])] = true;
            }
          }
          if (seen.empty()) return NoValues(op, *t, j);
          for (const auto& [k, v] : seen) cats.push_back(k);
        }
        const std::string name = t->columns[j];
        stats[name] = cats;
        std::map<std::string, size_t> index;
        for (size_t k = 0; k < cats.size(); ++k) index.emplace(cats[k], k);
        for (auto& row : t->rows) {
          std::vector<Cell> hot(cats.size(), Cell(0.0));
          auto it = index.find(CellText(row[j]));
          if (!std::holds_alternative<std::monostate>(row[j]) && it != index.end()) hot[it->second] = 1.0;
          row.erase(row.begin() + static_cast<std::ptrdiff_t>(j));
          row.insert(row.begin() + static_cast<std::ptrdiff_t>(j), hot.begin(), hot.end());
        }
        std::vector<std::string> names;
        for (const auto& c : cats) names.push_back(name + "=" + c);
        t->columns.erase(t->columns.begin() + static_cast<std::ptrdiff_t>(j));
        t->columns.insert(t->columns.begin() + static_cast<std::ptrdiff_t>(j), names.begin(), names.end());
      }
      return stats;
    }
    default:
      return Status::InvalidArgument(fmt::format("op '{}' is not a tabular op", op.name));
  }
}

bool RowToTensor(Table* t, size_t i, shard::DType dtype, shard::Tensor* out) {
  const auto& row = t->rows[i];
  out->dtype = dtype;
  out->shape = {row.size()};
  out->data.resize(row.size() * shard::DTypeSize(dtype));
  for (size_t j = 0; j < row.size(); ++j) {
    const auto* d = std::get_if<double>(&row[j]);
    if (!d) {
      t->errors[i] = std::holds_alternative<std::monostate>(row[j])
                         ? fmt::format("column '{}' is missing (add a fill_missing op)", t->columns[j])
                         : fmt::format("column '{}': '{}' is not a number (one_hot makes numbers of categories)",
                                       t->columns[j], std::get<std::string>(row[j]));
      t->error_ops[i] = "tensor";
      return false;
    }
    if (dtype == shard::DType::kFloat64) {
      std::memcpy(out->data.data() + 8 * j, d, 8);
    } else {
      float f = static_cast<float>(*d);
      std::memcpy(out->data.data() + 4 * j, &f, 4);
    }
  }
  return true;
}

}  // namespace strata::transform

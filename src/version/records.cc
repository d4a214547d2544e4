#include "version/records.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::version {

using nlohmann::json;

namespace {
std::string IdOrEmpty(const ObjectId& id) { return id.IsZero() ? "" : id.ToHex(); }

Result<ObjectId> IdField(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) return ObjectId();
  auto id = ObjectId::FromHex(j[key].get<std::string>());
  if (!id.ok()) return Status::Corruption(fmt::format("ref event: bad '{}'", key));
  return *id;
}

std::string StringField(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
}  // namespace

std::string EncodeRefEvent(const RefEvent& e) {
  json j = {{"type", kRefEventType},
            {"v", 1},
            {"epoch", e.epoch},
            {"seq", e.seq},
            {"hash", e.hash.ToHex()},
            {"time_ms", e.time_unix_ms},
            {"op", e.op},
            {"dataset", e.dataset},
            {"ref", e.ref},
            {"kind", e.kind},
            {"old", IdOrEmpty(e.old_target)},
            {"new", IdOrEmpty(e.new_target)},
            {"actor", e.actor},
            {"action", e.action},
            {"target", e.target},
            {"details", e.details}};
  return j.dump();
}

Result<std::optional<RefEvent>> DecodeRefEvent(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("record is not a JSON object");
  if (StringField(j, "type") != kRefEventType) return std::optional<RefEvent>();
  if (!j.contains("v") || !j["v"].is_number_integer() || j["v"].get<int64_t>() != 1) {
    return Status::Unsupported("ref event of an unsupported version (written by a newer strata?)");
  }
  for (const char* key : {"epoch", "seq", "time_ms"}) {
    if (!j.contains(key) || !j[key].is_number_integer()) {
      return Status::Corruption(fmt::format("ref event: missing '{}'", key));
    }
  }
  RefEvent e;
  e.epoch = j["epoch"].get<uint64_t>();
  e.seq = j["seq"].get<uint64_t>();
  e.time_unix_ms = j["time_ms"].get<int64_t>();
  STRATA_ASSIGN_OR_RETURN(e.hash, IdField(j, "hash"));
  STRATA_ASSIGN_OR_RETURN(e.old_target, IdField(j, "old"));
  STRATA_ASSIGN_OR_RETURN(e.new_target, IdField(j, "new"));
  e.op = StringField(j, "op");
  e.dataset = StringField(j, "dataset");
  e.ref = StringField(j, "ref");
  e.kind = StringField(j, "kind");
  e.actor = StringField(j, "actor");
  e.action = StringField(j, "action");
  e.target = StringField(j, "target");
  e.details = StringField(j, "details");
  if (e.seq == 0 || e.op.empty()) return Status::Corruption("ref event: no seq or op");
  return std::optional<RefEvent>(std::move(e));
}

RefEvent EventFromAudit(const catalog::AuditRecord& r, uint64_t epoch) {
  RefEvent e;
  e.epoch = epoch;
  e.seq = r.seq;
  e.hash = r.hash;
  e.time_unix_ms = r.time_unix_ms;
  e.actor = r.actor;
  e.action = r.action;
  e.target = r.target;
  e.details = r.details;
  json d = json::parse(r.details, nullptr, false);
  if (d.is_discarded() || !d.is_object()) d = json::object();
  e.op = StringField(d, "op");
  if (e.op.empty()) e.op = kOpEvent;
  e.dataset = StringField(d, "dataset");
  e.ref = StringField(d, "ref");
  e.kind = StringField(d, "kind");
  if (auto id = IdField(d, "old"); id.ok()) e.old_target = *id;
  if (auto id = IdField(d, "new"); id.ok()) e.new_target = *id;
  return e;
}

std::string RefEventKey(uint64_t epoch, uint64_t seq) { return fmt::format("e{:016x}s{:016x}", epoch, seq); }

std::optional<std::pair<uint64_t, uint64_t>> ParseRefEventName(std::string_view name) {
  // e + 16 hex + s + 16 hex + '-' + randomness
  if (name.size() < 35 || name[0] != 'e' || name[17] != 's' || name[34] != '-') return std::nullopt;
  auto hex = [](std::string_view h, uint64_t* out) {
    uint64_t v = 0;
    for (char c : h) {
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v << 4 | static_cast<uint64_t>(d);
    }
    *out = v;
    return true;
  };
  uint64_t epoch = 0, seq = 0;
  if (!hex(name.substr(1, 16), &epoch) || !hex(name.substr(18, 16), &seq) || seq == 0) return std::nullopt;
  return std::make_pair(epoch, seq);
}

Result<std::vector<RefEvent>> LoadRefEvents(const std::vector<std::string>& records) {
  std::vector<RefEvent> out;
  for (const auto& r : records) {
    STRATA_ASSIGN_OR_RETURN(auto e, DecodeRefEvent(r));
    if (e) out.push_back(std::move(*e));
  }
  std::sort(out.begin(), out.end(), [](const RefEvent& a, const RefEvent& b) {
    return a.epoch != b.epoch ? a.epoch < b.epoch : a.seq < b.seq;
  });
  // Two processes may both record the same entry (one recovering the other's): same content.
  out.erase(std::unique(out.begin(), out.end(),
                        [](const RefEvent& a, const RefEvent& b) { return a.epoch == b.epoch && a.seq == b.seq; }),
            out.end());
  return out;
}

}  // namespace strata::version

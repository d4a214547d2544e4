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

json EventJson(const RefEvent& e) {
  return {{"type", kRefEventType},
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
}

Result<RefEvent> EventFromJson(const json& j) {
  if (!j.is_object() || StringField(j, "type") != kRefEventType) return Status::Corruption("ref event: not an event");
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
  return e;
}
}  // namespace

std::string EncodeRefEvent(const RefEvent& e) { return EventJson(e).dump(); }

std::string EncodeRefSegment(const std::vector<RefEvent>& events) {
  json list = json::array();
  for (const auto& e : events) list.push_back(EventJson(e));
  return json{{"type", kRefSegmentType}, {"v", 1}, {"events", std::move(list)}}.dump();
}

Result<std::vector<RefEvent>> DecodeRefEvents(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("record is not a JSON object");
  std::vector<RefEvent> out;
  std::string type = StringField(j, "type");
  if (type == kRefEventType) {
    STRATA_ASSIGN_OR_RETURN(RefEvent e, EventFromJson(j));
    out.push_back(std::move(e));
  } else if (type == kRefSegmentType) {
    if (!j.contains("v") || !j["v"].is_number_integer() || j["v"].get<int64_t>() != 1) {
      return Status::Unsupported("ref event segment of an unsupported version (written by a newer strata?)");
    }
    if (!j.contains("events") || !j["events"].is_array() || j["events"].empty()) {
      return Status::Corruption("ref event segment without events");
    }
    for (const auto& item : j["events"]) {
      STRATA_ASSIGN_OR_RETURN(RefEvent e, EventFromJson(item));
      // A segment holds consecutive entries of one chain: the range its name claims.
      if (!out.empty() && (e.epoch != out.back().epoch || e.seq != out.back().seq + 1)) {
        return Status::Corruption("ref event segment whose entries are not consecutive");
      }
      out.push_back(std::move(e));
    }
  }
  return out;
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

std::string RefSegmentKey(const RecordRange& r) {
  return fmt::format("g{:016x}s{:016x}t{:016x}", r.epoch, r.first, r.last);
}

std::optional<RecordRange> ParseRefEventName(std::string_view name) {
  auto hex = [&](size_t at, uint64_t* out) {
    uint64_t v = 0;
    for (char c : name.substr(at, 16)) {
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v << 4 | static_cast<uint64_t>(d);
    }
    *out = v;
    return true;
  };
  RecordRange r;
  // e + 16 hex + s + 16 hex + '-' + randomness
  if (name.size() >= 35 && name[0] == 'e' && name[17] == 's' && name[34] == '-') {
    if (!hex(1, &r.epoch) || !hex(18, &r.first) || r.first == 0) return std::nullopt;
    r.last = r.first;
    return r;
  }
  // g + 16 hex + s + 16 hex + t + 16 hex + '-' + randomness
  if (name.size() >= 52 && name[0] == 'g' && name[17] == 's' && name[34] == 't' && name[51] == '-') {
    if (!hex(1, &r.epoch) || !hex(18, &r.first) || !hex(35, &r.last) || r.first == 0 || r.last < r.first) {
      return std::nullopt;
    }
    return r;
  }
  return std::nullopt;
}

namespace {
void SortUnique(std::vector<RefEvent>* events) {
  std::sort(events->begin(), events->end(), [](const RefEvent& a, const RefEvent& b) {
    return a.epoch != b.epoch ? a.epoch < b.epoch : a.seq < b.seq;
  });
  // Two processes may both record the same entry (one recovering the other's, or both merging
  // the same records): same content.
  events->erase(std::unique(events->begin(), events->end(),
                            [](const RefEvent& a, const RefEvent& b) { return a.epoch == b.epoch && a.seq == b.seq; }),
                events->end());
}
}  // namespace

Result<std::vector<RefEvent>> ReadRefRecord(store::ObjectStore* objects, const RecordRange& range,
                                            const std::string& name) {
  STRATA_ASSIGN_OR_RETURN(std::string text, objects->ReadRecord(name));
  STRATA_ASSIGN_OR_RETURN(auto events, DecodeRefEvents(text));
  if (events.empty() || events.front().epoch != range.epoch || events.front().seq != range.first ||
      events.back().seq != range.last) {
    return Status::Corruption(fmt::format("record {} does not hold the ref events its name says", name));
  }
  return events;
}

Result<std::vector<RefEvent>> LoadRefEvents(const std::vector<std::string>& records) {
  std::vector<RefEvent> out;
  for (const auto& r : records) {
    STRATA_ASSIGN_OR_RETURN(auto events, DecodeRefEvents(r));
    for (auto& e : events) out.push_back(std::move(e));
  }
  SortUnique(&out);
  return out;
}

void SeqSet::Add(uint64_t first, uint64_t last) {
  // Absorb every range that overlaps or touches [first, last].
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin() && std::prev(it)->second + 1 >= first) --it;
  while (it != ranges_.end() && it->first <= last + 1) {
    first = std::min(first, it->first);
    last = std::max(last, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(first, last);
}

bool SeqSet::Contains(uint64_t seq) const {
  auto it = ranges_.upper_bound(seq);
  return it != ranges_.begin() && std::prev(it)->second >= seq;
}

uint64_t SeqSet::FirstMissing(uint64_t from) const {
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin() && std::prev(it)->second >= from) return std::prev(it)->second + 1;
  return from;
}

Status CompactRefEventRecords(store::ObjectStore* objects,
                              const std::vector<std::pair<RecordRange, std::string>>& keyed) {
  // Group by (epoch, tier): tier t holds records of fewer than kRecordMergeWidth^(t+1) entries.
  std::map<std::pair<uint64_t, int>, std::vector<const std::pair<RecordRange, std::string>*>> tiers;
  for (const auto& k : keyed) {
    int tier = 0;
    for (uint64_t n = k.first.size(); n >= kRecordMergeWidth; n /= kRecordMergeWidth) ++tier;
    tiers[{k.first.epoch, tier}].push_back(&k);
  }
  for (const auto& [key, records] : tiers) {
    if (records.size() < kRecordMergeWidth) continue;
    std::vector<RefEvent> events;
    for (const auto* r : records) {
      STRATA_ASSIGN_OR_RETURN(auto decoded, ReadRefRecord(objects, r->first, r->second));
      for (auto& e : decoded) events.push_back(std::move(e));
    }
    SortUnique(&events);
    // One segment per run of consecutive entries; a record is deleted once the segment that
    // holds its entries is durable. A run of one entry stays where it is.
    size_t begin = 0;
    while (begin < events.size()) {
      size_t end = begin + 1;
      while (end < events.size() && events[end].seq == events[end - 1].seq + 1) ++end;
      RecordRange run{key.first, events[begin].seq, events[end - 1].seq};
      if (end - begin > 1) {
        std::vector<RefEvent> part(std::make_move_iterator(events.begin() + begin),
                                   std::make_move_iterator(events.begin() + end));
        STRATA_RETURN_IF_ERROR(objects->AppendRecord(EncodeRefSegment(part), RefSegmentKey(run)));
        std::vector<std::string> merged;
        for (const auto* r : records) {
          if (r->first.first >= run.first && r->first.last <= run.last) merged.push_back(r->second);
        }
        STRATA_RETURN_IF_ERROR(objects->DeleteRecords(merged));
      }
      begin = end;
    }
  }
  return Status::OK();
}

}  // namespace strata::version

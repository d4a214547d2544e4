// strata.Repository: a repository and its versioned datasets (strata::Repository + strata::Lake).
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>

#include "common.h"
#include "dtype.h"
#include "native_call.h"
#include "strata/ingest.h"
#include "strata/lake.h"
#ifdef STRATA_HAVE_LOADER
#include "strata/lake_cache.h"
#endif
#include "strata/repository.h"

namespace strata::python {
namespace {

using nb::gil_scoped_release;

nb::object ToPython(const MetaValue& v) {
  if (std::holds_alternative<int64_t>(v)) return nb::int_(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) return nb::float_(std::get<double>(v));
  if (std::holds_alternative<bool>(v)) return nb::bool_(std::get<bool>(v));
  if (std::holds_alternative<std::string>(v)) return nb::str(std::get<std::string>(v).c_str(), std::get<std::string>(v).size());
  return nb::none();
}

MetaValue FromPython(nb::handle h) {
  if (h.is_none()) return std::monostate{};
  if (nb::isinstance<nb::bool_>(h)) return nb::cast<bool>(h);
  if (nb::isinstance<nb::int_>(h)) return nb::cast<int64_t>(h);
  if (nb::isinstance<nb::float_>(h)) return nb::cast<double>(h);
  return nb::cast<std::string>(nb::str(h));
}



std::string ReadPasswordFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw StatusError(Status::NotFound("cannot read password file '" + path + "'"));
  std::string line;
  std::getline(f, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string RepoUrl(const std::optional<std::string>& url) {
  if (url && !url->empty()) return *url;
  if (const char* env = std::getenv("STRATA_REPO"); env && *env) return env;
  throw StatusError(Status::InvalidArgument("no repository given: pass url or set STRATA_REPO"));
}

// The passphrase as the command-line tool finds it: an explicit one, a password file,
// $STRATA_PASSWORD, or a prompt when stdin is a terminal.
std::optional<std::string> ExplicitPassphrase(const std::optional<std::string>& passphrase,
                                              const std::optional<std::string>& password_file) {
  if (passphrase) return *passphrase;
  if (password_file) return ReadPasswordFile(*password_file);
  return std::nullopt;
}
std::string FallbackPassphrase(bool confirm) {
  if (const char* env = std::getenv("STRATA_PASSWORD"); env && *env) return env;
  nb::object isatty = nb::module_::import_("sys").attr("stdin").attr("isatty");
  if (!nb::cast<bool>(isatty())) {
    throw StatusError(Status::InvalidArgument(
        "no passphrase: pass passphrase= or password_file=, set STRATA_PASSWORD, or run on a terminal"));
  }
  nb::object getpass = nb::module_::import_("getpass").attr("getpass");
  std::string p = nb::cast<std::string>(getpass("Passphrase: "));
  if (confirm && nb::cast<std::string>(getpass("Repeat passphrase: ")) != p) {
    throw StatusError(Status::InvalidArgument("the passphrases do not match"));
  }
  if (p.empty()) throw StatusError(Status::InvalidArgument("the passphrase is empty"));
  return p;
}

// One open repository and its lake. The Lake is thread-compatible, so calls into it are
// serialised; repository reads (files) run concurrently.
class PyRepository {
 public:
  PyRepository(std::unique_ptr<Repository> repo) : repo_(std::move(repo)) {
    gil_scoped_release release;
    lake_ = Check(Lake::Open(repo_.get()));
  }
  ~PyRepository() {
    gil_scoped_release release;
    lake_.reset();
    repo_.reset();
  }

  static std::unique_ptr<PyRepository> Open(const std::optional<std::string>& url_arg,
                                            const std::optional<std::string>& passphrase,
                                            const std::optional<std::string>& password_file, size_t threads) {
    std::string url = RepoUrl(url_arg);
    OpenOptions o;
    o.threads = threads;
    std::optional<std::string> pass = ExplicitPassphrase(passphrase, password_file);
    if (!pass) {
      // Keys cached by `strata unlock` first: no passphrase, no key derivation.
      Result<std::unique_ptr<Repository>> unlocked = Status::NotFound("");
      {
        gil_scoped_release release;
        unlocked = Repository::OpenUnlocked(url, o);
      }
      if (unlocked.ok()) return std::make_unique<PyRepository>(std::move(*unlocked));
      pass = FallbackPassphrase(false);
    }
    Result<std::unique_ptr<Repository>> repo = Status::NotFound("");
    {
      gil_scoped_release release;
      repo = Repository::Open(url, *pass, o);
    }
    return std::make_unique<PyRepository>(Check(std::move(repo)));
  }

  static std::unique_ptr<PyRepository> Init(const std::string& url, const std::optional<std::string>& passphrase,
                                            const std::optional<std::string>& password_file, uint64_t kdf_mem,
                                            uint64_t kdf_ops, int compression_level, size_t threads) {
    std::optional<std::string> pass = ExplicitPassphrase(passphrase, password_file);
    if (!pass) pass = FallbackPassphrase(true);
    InitOptions init;
    if (kdf_mem) init.kdf_mem = kdf_mem;
    if (kdf_ops) init.kdf_ops = kdf_ops;
    init.compression_level = compression_level;
    OpenOptions o;
    o.threads = threads;
    Result<std::unique_ptr<Repository>> repo = Status::NotFound("");
    {
      gil_scoped_release release;
      repo = Repository::Create(url, *pass, init, o);
    }
    return std::make_unique<PyRepository>(Check(std::move(repo)));
  }

  // Runs `fn(lake)` without the GIL, one call at a time.
  template <class Fn>
  auto WithLake(Fn&& fn) {
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    if (!lake_) throw StatusError(Status::FailedPrecondition("the repository is closed"));
    return fn(lake_.get());
  }

  void Close() {
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    lake_.reset();
    repo_.reset();
  }

  Repository* repo() {
    if (!repo_) throw StatusError(Status::FailedPrecondition("the repository is closed"));
    return repo_.get();
  }
  // Shared with checkpointers and readers, which keep the repository open past close().
  std::shared_ptr<Repository> shared_repo() {
    std::lock_guard lock(mu_);
    if (!repo_) throw StatusError(Status::FailedPrecondition("the repository is closed"));
    return repo_;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<Repository> repo_;
  std::unique_ptr<Lake> lake_;
};

// Random access to one stored file; every chunk is authenticated before its bytes are returned.
class PyFile {
 public:
  PyFile(std::unique_ptr<BlobReader> reader) : reader_(std::move(reader)) {}
  uint64_t size() const { return reader_->size(); }
  // Reads into a writable buffer at `offset`; returns the bytes read (fewer only at the end).
  size_t ReadInto(uint64_t offset, nb::ndarray<uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> out) {
    uint8_t* dst = out.data();
    size_t n = out.shape(0);
    gil_scoped_release release;
    std::lock_guard lock(mu_);
    size_t total = 0;
    while (total < n && offset + total < reader_->size()) {
      size_t got = 0;
      Check(reader_->ReadAt(offset + total, n - total, dst + total, &got));
      if (got == 0) break;
      total += got;
    }
    return total;
  }
  nb::bytes ReadAt(uint64_t offset, int64_t n) {
    uint64_t size = reader_->size();
    if (offset >= size) return nb::bytes("", 0);
    uint64_t want = n < 0 ? size - offset : std::min<uint64_t>(uint64_t(n), size - offset);
    std::string buf(want, '\0');
    {
      gil_scoped_release release;
      std::lock_guard lock(mu_);
      size_t total = 0;
      while (total < want) {
        size_t got = 0;
        Check(reader_->ReadAt(offset + total, want - total, reinterpret_cast<uint8_t*>(buf.data()) + total, &got));
        if (got == 0) break;
        total += got;
      }
      buf.resize(total);
    }
    return nb::bytes(buf.data(), buf.size());
  }

 private:
  std::mutex mu_;
  std::unique_ptr<BlobReader> reader_;
};

const char* EntryTypeName(EntryInfo::Type t) {
  return t == EntryInfo::Type::kDirectory ? "dir" : t == EntryInfo::Type::kSymlink ? "symlink" : "file";
}

nb::list ToRows(const std::vector<std::string>& columns, const std::vector<std::vector<MetaValue>>& rows) {
  nb::list out;
  for (const auto& row : rows) {
    nb::dict d;
    for (size_t c = 0; c < columns.size() && c < row.size(); ++c) d[columns[c].c_str()] = ToPython(row[c]);
    out.append(d);
  }
  return out;
}

// A column of query results as a numpy array: int64, float64 or bool when every value has that
// type (ints widen to float64 when mixed with floats), otherwise an object array (None for NULL).
nb::object ColumnArray(const std::vector<std::vector<MetaValue>>& rows, size_t c) {
  bool all_int = true, all_num = true, all_bool = true;
  for (const auto& row : rows) {
    const MetaValue& v = row[c];
    bool is_int = std::holds_alternative<int64_t>(v), is_double = std::holds_alternative<double>(v);
    bool is_bool = std::holds_alternative<bool>(v);
    all_int &= is_int;
    all_num &= is_int || is_double;
    all_bool &= is_bool;
  }
  nb::object np = nb::module_::import_("numpy");
  size_t n = rows.size();
  if (n > 0 && (all_int || all_num || all_bool)) {
    const char* dtype = all_bool ? "bool" : all_int ? "int64" : "float64";
    nb::object arr = np.attr("empty")(n, dtype);
    nb::ndarray<nb::numpy> view = nb::cast<nb::ndarray<nb::numpy>>(arr);
    for (size_t i = 0; i < n; ++i) {
      const MetaValue& v = rows[i][c];
      if (all_bool) static_cast<bool*>(view.data())[i] = std::get<bool>(v);
      else if (all_int) static_cast<int64_t*>(view.data())[i] = std::get<int64_t>(v);
      else static_cast<double*>(view.data())[i] =
          std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v)) : std::get<double>(v);
    }
    return arr;
  }
  nb::object arr = np.attr("empty")(n, "object");
  for (size_t i = 0; i < n; ++i) arr[nb::int_(i)] = ToPython(rows[i][c]);
  return arr;
}

}  // namespace

std::shared_ptr<Repository> SharedRepository(nb::handle repository) {
  return nb::cast<PyRepository&>(repository).shared_repo();
}

void BindRepository(nb::module_& m) {
  nb::class_<CommitInfo>(m, "Commit", "One commit of a dataset.")
      .def_prop_ro("id", [](const CommitInfo& c) { return c.id.ToHex(); })
      .def_prop_ro("tree", [](const CommitInfo& c) { return c.tree.ToHex(); })
      .def_prop_ro("parents", [](const CommitInfo& c) {
        std::vector<std::string> out;
        for (const auto& p : c.parents) out.push_back(p.ToHex());
        return out;
      })
      .def_ro("dataset", &CommitInfo::dataset)
      .def_ro("time_ns", &CommitInfo::time_ns)
      .def_ro("author", &CommitInfo::author)
      .def_ro("message", &CommitInfo::message)
      .def_ro("meta", &CommitInfo::meta)
      .def("__repr__", [](const CommitInfo& c) {
        return "<strata.Commit " + c.dataset + "@" + c.id.Short() + " " + nb::cast<std::string>(nb::repr(nb::str(c.message.c_str()))) + ">";
      });

  nb::class_<RefInfo>(m, "Ref", "A branch or tag.")
      .def_ro("dataset", &RefInfo::dataset)
      .def_ro("name", &RefInfo::name)
      .def_prop_ro("type", [](const RefInfo& r) { return r.type == RefType::kTag ? "tag" : "branch"; })
      .def_prop_ro("target", [](const RefInfo& r) { return r.target.ToHex(); })
      .def_ro("protected", &RefInfo::is_protected)
      .def_ro("updated_unix_ms", &RefInfo::updated_unix_ms)
      .def("__repr__", [](const RefInfo& r) {
        return "<strata.Ref " + r.dataset + "@" + r.name + (r.type == RefType::kTag ? " tag " : " branch ") +
               r.target.Short() + ">";
      });

  nb::class_<EntryInfo>(m, "Entry", "One entry of a listing.")
      .def_ro("path", &EntryInfo::path)
      .def_prop_ro("type", [](const EntryInfo& e) { return EntryTypeName(e.type); })
      .def_ro("size", &EntryInfo::size)
      .def_ro("mode", &EntryInfo::mode)
      .def_ro("mtime_ns", &EntryInfo::mtime_ns)
      .def_ro("target", &EntryInfo::target)
      .def("__repr__", [](const EntryInfo& e) {
        return std::string("<strata.Entry ") + EntryTypeName(e.type) + " " + e.path + " " + std::to_string(e.size) + ">";
      });

  nb::class_<PyFile>(m, "_File")
      .def_prop_ro("size", &PyFile::size)
      .def("read_at", &PyFile::ReadAt, nb::arg("offset"), nb::arg("size") = -1)
      .def("readinto_at", &PyFile::ReadInto, nb::arg("offset"), nb::arg("buffer"));

  auto repo_class = nb::class_<PyRepository>(m, "_Repository");
  repo_class
      .def_static("open", &PyRepository::Open, nb::arg("url") = nb::none(), nb::arg("passphrase") = nb::none(),
                  nb::arg("password_file") = nb::none(), nb::arg("threads") = 0)
      .def_static("init", &PyRepository::Init, nb::arg("url"), nb::arg("passphrase") = nb::none(),
                  nb::arg("password_file") = nb::none(), nb::arg("kdf_mem") = 0, nb::arg("kdf_ops") = 0,
                  nb::arg("compression_level") = 3, nb::arg("threads") = 0)
      .def_prop_ro("url", [](PyRepository& r) { return r.repo()->url(); })
      .def("close", &PyRepository::Close)
      // datasets and refs
      .def("datasets", [](PyRepository& r) { return r.WithLake([](Lake* l) { return Check(l->ListDatasets()); }); })
      .def("create_dataset", [](PyRepository& r, const std::string& name) {
        r.WithLake([&](Lake* l) { Check(l->CreateDataset(name)); return 0; });
      })
      .def("delete_dataset", [](PyRepository& r, const std::string& name) {
        r.WithLake([&](Lake* l) { Check(l->DeleteDataset(name)); return 0; });
      })
      .def("refs", [](PyRepository& r, const std::string& dataset) {
        return r.WithLake([&](Lake* l) { return Check(l->ListRefs(dataset)); });
      })
      .def("create_ref", [](PyRepository& r, const std::string& name, const std::string& from, bool tag) {
        r.WithLake([&](Lake* l) { Check(l->CreateRef(name, from, tag ? RefType::kTag : RefType::kBranch)); return 0; });
      }, nb::arg("name"), nb::arg("source"), nb::arg("tag") = false)
      .def("delete_ref", [](PyRepository& r, const std::string& name) {
        r.WithLake([&](Lake* l) { Check(l->DeleteRef(name)); return 0; });
      })
      .def("protect_ref", [](PyRepository& r, const std::string& name, bool on) {
        r.WithLake([&](Lake* l) { Check(l->ProtectRef(name, on)); return 0; });
      }, nb::arg("name"), nb::arg("on") = true)
      .def("resolve", [](PyRepository& r, const std::string& spec) {
        return r.WithLake([&](Lake* l) { return Check(l->Resolve(spec)).commit; });
      })
      .def("log", [](PyRepository& r, const std::string& spec, size_t limit) {
        return r.WithLake([&](Lake* l) { return Check(l->Log(spec, limit)); });
      }, nb::arg("spec"), nb::arg("limit") = 100)
      // commits
      .def("commit", [](PyRepository& r, const std::string& target, const std::string& directory,
                        const std::string& message, const std::optional<nb::dict>& meta, const std::string& author,
                        bool retry) {
        CommitOptions o;
        o.message = message;
        o.meta = MetaStrings(meta);
        o.author = author;
        o.retry = retry;
        CommitResult res = r.WithLake([&](Lake* l) { return Check(l->CommitDirectory(target, directory, o)); });
        return CommitResultDict(res);
      }, nb::arg("target"), nb::arg("directory"), nb::arg("message") = "", nb::arg("meta") = nb::none(),
         nb::arg("author") = "", nb::arg("retry") = false)
      .def("set_records", [](PyRepository& r, const std::string& target, nb::dict rows, const std::string& message) {
        std::vector<std::pair<std::string, RecordMeta>> edits;
        for (auto [k, v] : rows) {
          RecordMeta cols;
          for (auto [ck, cv] : nb::cast<nb::dict>(v)) cols[nb::cast<std::string>(nb::str(ck))] = FromPython(cv);
          edits.emplace_back(nb::cast<std::string>(nb::str(k)), std::move(cols));
        }
        CommitOptions o;
        o.message = message;
        CommitResult res = r.WithLake([&](Lake* l) {
          auto stage = Check(l->Stage(target));
          for (const auto& [key, cols] : edits) Check(stage->SetRecord(key, cols));
          return Check(stage->Commit(o));
        });
        return CommitResultDict(res);
      }, nb::arg("target"), nb::arg("records"), nb::arg("message") = "")
      .def("reset", [](PyRepository& r, const std::string& target, const std::string& to) {
        return r.WithLake([&](Lake* l) { return Check(l->Reset(target, to)).ToHex(); });
      })
      .def("diff", [](PyRepository& r, const std::string& a, const std::string& b, const std::string& path) {
        DiffResult d = r.WithLake([&](Lake* l) { return Check(l->Diff(a, b, path)); });
        nb::list out;
        for (const auto& e : d.entries) {
          nb::dict row;
          row["kind"] = std::string(DiffKindName(e.kind));
          row["path"] = e.path;
          if (e.kind == DiffEntry::Kind::kRenamed) row["old_path"] = e.old_path;
          row["old_size"] = e.old_size;
          row["new_size"] = e.new_size;
          out.append(row);
        }
        return out;
      }, nb::arg("a"), nb::arg("b"), nb::arg("path") = "")
      // content
      .def("ls", [](PyRepository& r, const std::string& spec, bool recursive) {
        return r.WithLake([&](Lake* l) { return Check(l->List(spec, recursive)); });
      }, nb::arg("spec"), nb::arg("recursive") = false)
      .def("open_file", [](PyRepository& r, const std::string& spec) {
        auto reader = r.WithLake([&](Lake* l) { return Check(l->OpenFile(spec)); });
        return std::make_unique<PyFile>(std::move(reader));
      }, nb::keep_alive<0, 1>())
      .def("checkout", [](PyRepository& r, const std::string& spec, const std::string& dest) {
        return r.WithLake([&](Lake* l) {
          uint64_t bytes = 0;
          Check(l->Checkout(spec, dest, &bytes));
          return bytes;
        });
      })
      // records
      .def("records", [](PyRepository& r, const std::string& spec) {
        std::vector<RecordMeta> recs = r.WithLake([&](Lake* l) { return Check(l->Records(spec)); });
        nb::list out;
        for (const auto& rec : recs) {
          nb::dict d;
          for (const auto& [k, v] : rec) d[k.c_str()] = ToPython(v);
          out.append(d);
        }
        return out;
      })
      .def("query", [](PyRepository& r, const std::string& spec, const std::string& sql) {
        QueryResult q = r.WithLake([&](Lake* l) { return Check(l->Query(spec, sql)); });
        return ToRows(q.columns, q.rows);
      })
      .def("query_arrays", [](PyRepository& r, const std::string& spec, const std::string& sql) {
        QueryResult q = r.WithLake([&](Lake* l) { return Check(l->Query(spec, sql)); });
        nb::dict out;
        for (size_t c = 0; c < q.columns.size(); ++c) out[q.columns[c].c_str()] = ColumnArray(q.rows, c);
        return out;
      })
      .def("_run_native", [](PyRepository& r, nb::capsule call) {
        if (call.name() == nullptr || std::string_view(call.name()) != kNativeLakeCallName) {
          throw StatusError(Status::InvalidArgument("_run_native: not a strata native call"));
        }
        auto* c = static_cast<NativeLakeCall*>(call.data());
        r.WithLake([&](Lake* l) { c->fn(r.repo(), l, c->ctx, &c->status); });
        Check(c->status);
      })
      // ingest
      .def("ingest", [](PyRepository& r, const std::string& source, const std::string& target,
                        const std::string& prefix, const std::string& format, bool image_folder,
                        const std::string& labels_csv, const std::string& query, bool replace,
                        const std::string& message, const std::optional<nb::dict>& meta) {
        IngestOptions o;
        o.prefix = prefix;
        o.format = format;
        o.image_folder = image_folder;
        o.labels_csv = labels_csv;
        o.query = query;
        o.replace = replace;
        o.commit.message = message;
        o.commit.meta = MetaStrings(meta);
        IngestReport rep = r.WithLake([&](Lake* l) { return Check(Ingest(l, source, target, o)); });
        nb::dict d;
        d["source"] = rep.source;
        d["format"] = rep.format;
        d["source_sha256"] = rep.source_sha256;
        d["files"] = rep.files;
        d["bytes"] = rep.bytes;
        d["records"] = rep.records;
        d["labelled"] = rep.labelled;
        nb::list rejects;
        for (const auto& rj : rep.rejects) {
          nb::dict x;
          x["where"] = rj.where;
          x["rule"] = rj.rule;
          x["reason"] = rj.reason;
          rejects.append(x);
        }
        d["rejects"] = rejects;
        d["commit"] = CommitResultDict(rep.commit);
        d["seconds"] = rep.seconds;
        return d;
      }, nb::arg("source"), nb::arg("target"), nb::arg("prefix") = "", nb::arg("format") = "auto",
         nb::arg("image_folder") = false, nb::arg("labels_csv") = "", nb::arg("query") = "",
         nb::arg("replace") = false, nb::arg("message") = "", nb::arg("meta") = nb::none())
      // the store
      .def("verify", [](PyRepository& r, bool read_data) {
        Repository* repo = r.repo();
        VerifyReport v;
        {
          gil_scoped_release release;
          v = Check(repo->Verify(read_data));
        }
        nb::dict d;
        d["ok"] = v.ok();
        d["errors"] = v.errors;
        d["warnings"] = v.warnings;
        d["objects_checked"] = v.objects_checked;
        d["bytes_read"] = v.bytes_read;
        return d;
      }, nb::arg("read_data") = false)
      .def("stats", [](PyRepository& r) {
        Repository* repo = r.repo();
        RepositoryStats s;
        {
          gil_scoped_release release;
          s = Check(repo->Stats());
        }
        nb::dict d;
        d["logical_bytes"] = s.logical_bytes;
        d["unique_bytes"] = s.unique_bytes;
        d["stored_bytes"] = s.stored_bytes;
        d["objects"] = s.objects;
        d["packs"] = s.packs;
        return d;
      });
#ifdef STRATA_HAVE_LOADER
  repo_class
      .def("cache_version", [](PyRepository& r, const std::string& spec, const std::string& dir,
                               const std::vector<std::string>& columns, const std::optional<nb::bytes>& key,
                               uint64_t shard_size, uint64_t max_bytes, bool progress) {
        loader::LakeCacheOptions o;
        o.dir = dir;
        o.columns = columns;
        o.key = ShardKey(key);
        o.shard_size = shard_size;
        o.max_bytes = max_bytes;
        o.progress = progress;
        loader::LakeCacheEntry e = r.WithLake([&](Lake* l) { return Check(loader::CacheLakeVersion(l, spec, o)); });
        nb::dict d;
        d["dir"] = e.dir;
        d["shards"] = e.shards;
        d["commit"] = e.commit.ToHex();
        d["path"] = e.path;
        d["records"] = e.records;
        d["file_bytes"] = e.file_bytes;
        d["built"] = e.built;
        d["evicted"] = e.evicted;
        return d;
      }, nb::arg("spec"), nb::arg("dir"), nb::arg("columns"), nb::arg("key").none(), nb::arg("shard_size"),
         nb::arg("max_bytes"), nb::arg("progress"));
#endif
}

}  // namespace strata::python

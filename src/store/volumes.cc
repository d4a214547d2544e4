// The repository's VolumeAdmin: volumes and the redundancy policy live in the config (under its
// MAC, so every opener sees the same layout); placement, scrub and repair are the
// RedundantBackend's (src/volume/redundant_backend.h).
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "base/logging.h"
#include "store/lock.h"
#include "store/repository_impl.h"

namespace strata::store {

namespace {

std::string Absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) return path;
  return JoinPath(cwd, path);
}

class VolumeAdminImpl : public VolumeAdmin {
 public:
  explicit VolumeAdminImpl(RepositoryImpl* repo) : repo_(repo) {}

  Result<std::string> AddVolume(const VolumeSpec& spec) override {
    if (spec.path.empty()) return Status::InvalidArgument("a volume needs a directory");
    if (spec.domain.empty() || spec.domain.front() == '/' || spec.domain.back() == '/' ||
        spec.domain.find("//") != std::string::npos) {
      return Status::InvalidArgument(fmt::format("failure domain '{}' must look like rack1/host2/disk3", spec.domain));
    }
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    std::string path = Absolute(spec.path);
    std::string repo_dir = Absolute(repo_->backend_->url());
    if (path == repo_dir || path.starts_with(repo_dir + "/") || repo_dir.starts_with(path + "/")) {
      return Status::InvalidArgument("a volume may not be inside the repository directory, nor contain it");
    }
    for (const auto& v : config.volumes) {
      if (v.path == path) return Status::AlreadyExists(fmt::format("'{}' is already volume {}", path, v.id));
      if (v.domain == spec.domain) {
        return Status::AlreadyExists(fmt::format(
            "volume {} already has failure domain '{}': each volume is its own failure domain", v.id, spec.domain));
      }
    }
    volume::VolumeConfig v;
    v.id = fmt::format("v{}", config.next_volume);
    v.path = path;
    v.domain = spec.domain;
    v.capacity = spec.capacity;
    STRATA_RETURN_IF_ERROR(volume::InitVolumeDirectory(repo_->env(), path, config.id, v.id));
    config.version = RepositoryConfig::kVolumesFormatVersion;
    config.volumes.push_back(v);
    ++config.next_volume;
    STRATA_RETURN_IF_ERROR(SaveConfig(config));
    // The new volume's copy of the metadata (the others' gain the new config).
    if (auto synced = repo_->redundant()->SyncMirrors(); !synced.ok()) {
      LogWarning(fmt::format("volume {} was added, but copying the repository's metadata to it failed ({}); "
                             "`strata repair` copies it",
                             v.id, synced.status().message()));
    }
    return v.id;
  }

  Status RemoveVolume(const std::string& id) override {
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    auto it = std::find_if(config.volumes.begin(), config.volumes.end(), [&](const auto& v) { return v.id == id; });
    if (it == config.volumes.end()) return Status::NotFound(fmt::format("no volume '{}'", id));
    STRATA_ASSIGN_OR_RETURN(size_t held, FragmentsOn(id));
    if (held > 0) {
      return Status::FailedPrecondition(fmt::format(
          "volume {} is named by {} placement records: run `strata volume drain {}` first", id, held, id));
    }
    config.volumes.erase(it);
    auto layout = config.layout();
    STRATA_RETURN_IF_ERROR(volume::CheckPlaceable(layout).WithContext(fmt::format("removing volume {}", id)));
    return SaveConfig(config);
  }

  Result<RepairReport> Drain(const std::string& id) override {
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    auto it = std::find_if(config.volumes.begin(), config.volumes.end(), [&](const auto& v) { return v.id == id; });
    if (it == config.volumes.end()) return Status::NotFound(fmt::format("no volume '{}'", id));
    if (!it->draining) {
      it->draining = true;
      auto layout = config.layout();
      STRATA_RETURN_IF_ERROR(
          volume::CheckPlaceable(layout).WithContext(fmt::format("draining volume {} (add a volume first)", id)));
      // Durable before anything moves, so a resumed drain (any process) keeps avoiding it.
      STRATA_RETURN_IF_ERROR(SaveConfig(config));
    }
    return RepairLocked(false);
  }

  Status SetPolicy(const std::string& text) override {
    STRATA_ASSIGN_OR_RETURN(auto policy, volume::RedundancyPolicy::Parse(text));
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    if (!config.has_volumes()) return WithoutVolumes(config, policy);
    STRATA_RETURN_IF_ERROR(volume::CheckPlaceable(config.layout(), policy));
    config.redundancy = policy.ToString();
    return SaveConfig(config);
  }

  Status SetArchivePolicy(const std::string& text) override {
    STRATA_ASSIGN_OR_RETURN(auto policy, ParseInheritable(text));
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    if (!config.has_volumes()) return WithoutVolumes(config, policy);
    if (policy) STRATA_RETURN_IF_ERROR(volume::CheckPlaceable(config.layout(), *policy));
    config.archive_redundancy = policy ? policy->ToString() : std::string();
    return SaveConfig(config);
  }

  Result<uint32_t> SetClassPolicy(const std::string& label, const std::string& text) override {
    if (label.empty()) return Status::InvalidArgument("a redundancy class needs a label (the dataset's name)");
    STRATA_ASSIGN_OR_RETURN(auto policy, ParseInheritable(text));
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    if (!config.has_volumes()) {
      STRATA_RETURN_IF_ERROR(WithoutVolumes(config, policy));
      return uint32_t{0};
    }
    auto it = std::find_if(config.classes.begin(), config.classes.end(), [&](const auto& c) { return c.label == label; });
    if (!policy) {
      if (it == config.classes.end()) return uint32_t{0};
      const uint32_t id = it->id;
      config.classes.erase(it);
      STRATA_RETURN_IF_ERROR(SaveConfig(config));
      return id;
    }
    STRATA_RETURN_IF_ERROR(volume::CheckPlaceable(config.layout(), *policy).WithContext(fmt::format("the policy of '{}'", label)));
    if (it == config.classes.end()) {
      config.classes.push_back({config.next_class++, label, *policy});
      it = config.classes.end() - 1;
    } else {
      it->policy = *policy;
    }
    const uint32_t id = it->id;
    STRATA_RETURN_IF_ERROR(SaveConfig(config));
    return id;
  }

  Result<RepairReport> ApplyPolicy() override {
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    return RepairLocked(true);
  }

  Result<RedundancyStatus> GetStatus() override {
    if (auto* r = repo_->redundant()) return r->GetStatus();
    return GetSummary();
  }

  Result<RedundancyStatus> GetSummary() override {
    if (auto* r = repo_->redundant()) return r->GetSummary();
    RedundancyStatus st;
    st.policy = "none";
    STRATA_ASSIGN_OR_RETURN(auto packs, repo_->backend_->List(volume::ObjectType::kPack));
    st.local_packs = packs.size();
    return st;
  }

  Result<ScrubReport> Scrub(const ScrubOptions& options) override {
    auto* r = repo_->redundant();
    if (!r) {
      ScrubReport report;
      report.warnings.push_back("this repository has no volumes: nothing to scrub (`strata verify` checks its packs)");
      return report;
    }
    STRATA_ASSIGN_OR_RETURN(ScrubReport report, r->Scrub(options));
    NameObjects(&report.unreadable);
    if (options.repair && !report.problems.empty()) {
      STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
      STRATA_ASSIGN_OR_RETURN(RepairReport repaired, RepairLocked(false));
      for (const auto& e : repaired.errors) report.warnings.push_back("repair: " + e);
      report.warnings.push_back(fmt::format("repair: {} fragments rebuilt, {} moved", repaired.fragments_rebuilt,
                                            repaired.fragments_moved));
    }
    return report;
  }

  Result<RepairReport> Repair() override {
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/true));
    return RepairLocked(false);
  }

  Result<RepairReport> Rebalance() override {
    auto* r = repo_->redundant();
    if (!r) return RepairReport{};
    // Shared: puts go on (their packs are not among those it moves); gc, repair and drain wait.
    STRATA_ASSIGN_OR_RETURN(auto lock, RepositoryLock::Acquire(repo_->backend_.get(), /*exclusive=*/false));
    STRATA_ASSIGN_OR_RETURN(RepairReport report, r->Rebalance());
    NameObjects(&report.unreadable);
    return report;
  }

 private:
  // "inherit" (nullopt: follow the repository's policy) or a policy.
  static Result<std::optional<volume::RedundancyPolicy>> ParseInheritable(const std::string& text) {
    if (text == "inherit") return std::optional<volume::RedundancyPolicy>();
    STRATA_ASSIGN_OR_RETURN(auto policy, volume::RedundancyPolicy::Parse(text));
    return std::optional<volume::RedundancyPolicy>(policy);
  }

  // A repository without volumes: fine when `policy` asks for no spreading (nothing changes),
  // else why it cannot be placed.
  static Status WithoutVolumes(const RepositoryConfig& config, const std::optional<volume::RedundancyPolicy>& policy) {
    if (!policy || policy->kind == volume::RedundancyPolicy::Kind::kNone) return Status::OK();
    return volume::CheckPlaceable(config.layout(), *policy);
  }

  Result<RepairReport> RepairLocked(bool apply) {
    auto* r = repo_->redundant();
    if (!r) return RepairReport{};
    // The layout as stored now: another process may have changed a policy (or made a class
    // whose packs this one would otherwise take for the repository's) since this one opened.
    STRATA_ASSIGN_OR_RETURN(RepositoryConfig config, LoadConfig());
    r->SetLayout(config.layout());
    STRATA_ASSIGN_OR_RETURN(RepairReport report, r->Repair({.apply_policy = apply}));
    NameObjects(&report.unreadable);
    auto synced = r->SyncMirrors();
    if (synced.ok()) report.mirror_files = *synced;
    else report.errors.push_back(fmt::format("metadata mirrors: {}", synced.status().message()));
    return report;
  }

  // The ids of the objects in each unreadable pack (what was lost).
  void NameObjects(std::map<std::string, std::vector<std::string>>* unreadable) {
    if (unreadable->empty()) return;
    for (const auto& listing : repo_->index_.Packs()) {
      auto it = unreadable->find(listing.pack);
      if (it == unreadable->end()) continue;
      for (const auto& e : listing.entries) {
        it->second.push_back(fmt::format("{} {}", ObjectKindName(e.kind), e.id.ToHex()));
      }
    }
  }

  // The config as stored now (another process may have changed it since this one opened).
  Result<RepositoryConfig> LoadConfig() {
    volume::Backend* local = repo_->redundant() ? repo_->redundant()->primary() : repo_->backend_.get();
    STRATA_ASSIGN_OR_RETURN(std::string bytes, local->Get(volume::ObjectType::kConfig, "config"));
    STRATA_ASSIGN_OR_RETURN(ParsedConfig parsed, ParseConfig(bytes));
    STRATA_RETURN_IF_ERROR(CheckConfigMac(parsed, repo_->mac_));
    return parsed.config;
  }

  Status SaveConfig(const RepositoryConfig& config) {
    STRATA_RETURN_IF_ERROR(
        repo_->backend_->Put(volume::ObjectType::kConfig, "config", SerializeConfig(config, repo_->mac_)));
    if (auto* r = repo_->redundant()) {
      r->SetLayout(config.layout());
    } else {
      repo_->WrapRedundant(config.layout());
    }
    return Status::OK();
  }

  Result<size_t> FragmentsOn(const std::string& id) {
    auto* r = repo_->redundant();
    if (!r) return size_t{0};
    return r->PlacementsOn(id);
  }

  RepositoryImpl* repo_;
};

}  // namespace

volume::RedundantBackend* RepositoryImpl::redundant() {
  return dynamic_cast<volume::RedundantBackend*>(backend_.get());
}

void RepositoryImpl::WrapRedundant(volume::VolumeLayout layout) {
  // The local backend object stays where it is (locks hold pointers to it); only its owner changes.
  backend_ = std::make_unique<volume::RedundantBackend>(options_.env, std::move(backend_), std::move(layout));
}

VolumeAdmin* RepositoryImpl::volumes() {
  std::lock_guard<std::mutex> l(keys_mu_);
  if (!volume_admin_) volume_admin_ = std::make_unique<VolumeAdminImpl>(this);
  return volume_admin_.get();
}

}  // namespace strata::store

namespace strata {

Result<RecoveryReport> RecoverRepository(const std::string& volume_dir, const std::string& repository_dir) {
  return volume::RecoverFromVolume(Env::Default(), volume_dir, repository_dir);
}

}  // namespace strata

// Unlocked keys: `strata unlock` keeps a repository's unwrapped master keys for the current user
// for a limited time, so commands skip the passphrase and its Argon2id derivation (as
// ssh-agent or sudo's timestamp do). Trade-offs in docs/SECURITY.md ("Unlocked keys").
//
// Where: $XDG_RUNTIME_DIR/strata/ (a per-user tmpfs on systemd systems), else
// /dev/shm/strata-<uid>/; the directory is created 0700 and refused when it is a symlink, owned
// by another user, or group/world accessible. One file per repository, `<repository id>.keys`,
// mode 0600, refused likewise. Plain POSIX calls rather than Env: ownership and modes are the
// point here, and this state belongs to the user, not to a repository.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "crypto/keys.h"
#include "strata/status.h"

namespace strata::store {

struct CachedKeys {
  std::string repo_id;   // the repository config's id
  std::string slot_id;   // the key slot that was opened: the cache is honoured only while it exists
  int64_t expires_unix = 0;
  crypto::MasterKeys keys;
};

// The directory (created 0700 if missing and `create`), or kPermissionDenied when it is
// unsafe; kNotFound when it does not exist and !create.
Result<std::string> KeyCacheDir(bool create);
// Writes (replaces) the entry for `k.repo_id`.
Status SaveCachedKeys(const CachedKeys& k);
// The entry for `repo_id`: kNotFound when there is none or it expired (an expired file is
// removed); kPermissionDenied when the directory or file is unsafe; kCorruption if malformed.
Result<CachedKeys> LoadCachedKeys(const std::string& repo_id, int64_t now_unix);
// Removes the entry for `repo_id`; OK when there is none.
Status RemoveCachedKeys(const std::string& repo_id);

}  // namespace strata::store

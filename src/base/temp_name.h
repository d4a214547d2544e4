// Temporary names for files written beside their final path (shared by env.cc and the POSIX Env).
#pragma once

#include <string>
#include <string_view>

namespace strata {

// A name in `path`'s directory that does not collide between processes or threads writing the
// same file, and is recognisable (a leading dot and ".tmp-") so a cleanup pass can remove the
// leftovers of a crash.
std::string TempNameFor(std::string_view path);

}  // namespace strata

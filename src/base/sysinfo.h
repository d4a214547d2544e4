// Who and where: names recorded in locks, key slots, put records and commits.
#pragma once

#include <string>

namespace strata {

// This machine's host name ("localhost" if it has none).
std::string HostName();
// "user@host": $USER, else the password database's name for this uid, else "unknown".
std::string UserAtHost();

}  // namespace strata

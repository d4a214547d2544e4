#include "base/sysinfo.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace strata {

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string UserAtHost() {
  std::string user;
  if (const char* env = std::getenv("USER"); env && *env) {
    user = env;
  } else if (const struct passwd* pw = getpwuid(getuid()); pw && pw->pw_name) {
    user = pw->pw_name;
  } else {
    user = "unknown";
  }
  return user + "@" + HostName();
}

}  // namespace strata

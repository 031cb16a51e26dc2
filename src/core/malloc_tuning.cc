#include "core/malloc_tuning.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string_view>

namespace quiver {

MallocTuningDecision DecideMallocTuning(const std::function<const char*(const char*)>& getenv) {
  if (const char* v = getenv("QUIVER_MALLOC_TUNING"); v != nullptr) {
    std::string value(v);
    for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (value == "off" || value == "0" || value == "false" || value == "no") {
      return {false, "QUIVER_MALLOC_TUNING=" + std::string(v)};
    }
  }
  if (const char* v = getenv("GLIBC_TUNABLES");
      v != nullptr && std::string_view(v).find("glibc.malloc.") != std::string_view::npos) {
    return {false, "GLIBC_TUNABLES sets malloc tunables"};
  }
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    if (getenv(name) != nullptr) return {false, std::string(name) + " is set"};
  }
  return {true, ""};
}

bool PinMallocThresholds() {
  static std::once_flag once;
  static bool pinned = false;
  std::call_once(once, [] {
    const MallocTuningDecision decision =
        DecideMallocTuning([](const char* name) { return std::getenv(name); });
    if (!decision.pin) {
      spdlog::debug("malloc thresholds left as they are: {}", decision.reason);
      return;
    }
    // Both return 1 on success; a malloc other than glibc's (a sanitizer's, a preloaded
    // jemalloc) may refuse, and then nothing changes.
    pinned = mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMallocMmapThreshold)) == 1 &&
             mallopt(M_TRIM_THRESHOLD, static_cast<int>(kMallocTrimThreshold)) == 1;
    spdlog::debug("malloc thresholds {}pinned (mmap {} MiB, trim {} MiB)", pinned ? "" : "not ",
                  kMallocMmapThreshold >> 20, kMallocTrimThreshold >> 20);
  });
  return pinned;
}

}  // namespace quiver

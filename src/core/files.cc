#include "core/files.h"

#include <ftw.h>
#include <stdio.h>

namespace quiver {
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);  // unlink for files and links, rmdir for (now empty) directories
  return 0;        // keep going past errors
}

}  // namespace

void RemoveTree(const std::filesystem::path& path) {
  // Depth first so directories are empty when reached; FTW_PHYS: never follow links.
  ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace quiver

#pragma once
// File-system helpers that must not go through std::filesystem where libtorch is loaded.

#include <filesystem>

namespace quiver {

// Deletes `path` and everything under it (symlinks are removed, not followed); missing
// paths and errors are ignored (temporary directories of tests and benchmarks).
// Why not std::filesystem::remove_all: pip's libtorch.so exports its own copy of it, the
// dynamic linker binds our calls to that copy, and it jumps to a null pointer (seen with
// torch 2.11 on the GPU machine; scripts/device-cuda-check).
void RemoveTree(const std::filesystem::path& path);

}  // namespace quiver

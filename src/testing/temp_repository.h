#pragma once
// TempRepository: a scratch directory for one test, usually laid out as a model repository
// (<model>/config.pbtxt, <model>/<version>/...), removed with everything under it when the
// object goes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/files.h"

namespace quiver::testing {

class TempRepository {
 public:
  // An empty <temp>/quiver-<label>-test-<pid>-<test name>-<n>. The pid keeps test processes
  // that run in parallel apart, n the repositories of one process; the test name says whose
  // a left-over directory is. A left-over of an earlier process with our pid is removed.
  explicit TempRepository(std::string_view label) {
    static std::atomic<int> counter{0};
    // Appended piece by piece: "-" + std::to_string(...) trips GCC 12's -Wrestrict.
    std::string name = "quiver-";
    name += label;
    name += "-test-";
    name += std::to_string(::getpid());
    if (const auto* test = ::testing::UnitTest::GetInstance()->current_test_info()) {
      name += '-';
      // Parameterized tests are named "Name/0": no '/' or the like in a directory name.
      for (char c : std::string_view(test->name())) {
        const bool plain = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
        name += plain ? c : '_';
      }
    }
    name += '-';
    name += std::to_string(counter++);
    path_ = std::filesystem::temp_directory_path() / name;
    RemoveTree(path_);
    std::filesystem::create_directories(path_);
  }
  // RemoveTree, not std::filesystem::remove_all: see core/files.h.
  ~TempRepository() { RemoveTree(path_); }
  TempRepository(const TempRepository&) = delete;
  TempRepository& operator=(const TempRepository&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes path()/relative (parent directories created), replacing what was there.
  void Write(const std::filesystem::path& relative, std::string_view contents) const {
    std::filesystem::create_directories((path_ / relative).parent_path());
    std::ofstream out(path_ / relative, std::ios::binary | std::ios::trunc);
    out << contents;
    if (!out) ADD_FAILURE() << "cannot write " << (path_ / relative);
  }

  void MakeDir(const std::filesystem::path& relative) const {
    std::filesystem::create_directories(path_ / relative);
  }

  // <name>/config.pbtxt holding `config`, and AddVersion for each of `versions`.
  void WriteModel(std::string_view name, std::string_view config,
                  std::initializer_list<int64_t> versions = {1}) const {
    Write(std::filesystem::path(name) / "config.pbtxt", config);
    for (int64_t v : versions) AddVersion(name, v);
  }

  // <name>/<version>/README: the version directory with a file in it, as a checked-in
  // model has; backends without model files (identity, fake) do not read it.
  void AddVersion(std::string_view name, int64_t version) const {
    Write(std::filesystem::path(name) / std::to_string(version) / "README", "test model\n");
  }

 private:
  std::filesystem::path path_;
};

}  // namespace quiver::testing

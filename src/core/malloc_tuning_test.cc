#include "core/malloc_tuning.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace quiver {
namespace {

MallocTuningDecision Decide(const std::map<std::string, std::string>& env) {
  return DecideMallocTuning([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(MallocTuningTest, PinsUnlessTheProcessChoseItsOwnSettings) {
  EXPECT_TRUE(Decide({}).pin);
  EXPECT_TRUE(Decide({{"GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F"}}).pin);
  EXPECT_TRUE(Decide({{"QUIVER_MALLOC_TUNING", "on"}}).pin);

  for (const char* value : {"off", "OFF", "0", "false", "No"}) {
    const auto off = Decide({{"QUIVER_MALLOC_TUNING", value}});
    EXPECT_FALSE(off.pin) << value;
    EXPECT_NE(off.reason.find(std::string("QUIVER_MALLOC_TUNING=") + value), std::string::npos);
  }
  const auto tunables = Decide({{"GLIBC_TUNABLES", "glibc.malloc.arena_max=2"}});
  EXPECT_FALSE(tunables.pin);
  EXPECT_NE(tunables.reason.find("GLIBC_TUNABLES"), std::string::npos);
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    const auto chosen = Decide({{name, "1048576"}});
    EXPECT_FALSE(chosen.pin) << name;
    EXPECT_NE(chosen.reason.find(name), std::string::npos) << chosen.reason;
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerMalloc = true;
#else
constexpr bool kSanitizerMalloc = false;
#endif

// ctest runs each test in its own process, where glibc's thresholds start at their
// defaults (mmap from 128 KiB, trim past 128 KiB): without pinning, 16 MiB would be
// mmapped and unmapped again.
TEST(MallocTuningTest, FreedBlocksStayForReuse) {
  if (kSanitizerMalloc) GTEST_SKIP() << "the sanitizer's malloc has no glibc thresholds";
  const auto decision = DecideMallocTuning([](const char* name) { return std::getenv(name); });
  if (!decision.pin) GTEST_SKIP() << decision.reason;
  ASSERT_TRUE(PinMallocThresholds());
  EXPECT_TRUE(PinMallocThresholds());  // once; later calls report the same

  const size_t bytes = size_t{16} << 20;
  const struct mallinfo2 before = mallinfo2();
  auto* block = static_cast<char*>(std::malloc(bytes));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, bytes);
  const struct mallinfo2 allocated = mallinfo2();
  EXPECT_EQ(allocated.hblks, before.hblks) << "the block was mmapped";
  std::free(block);
  const struct mallinfo2 freed = mallinfo2();
  EXPECT_EQ(freed.arena, allocated.arena) << "the freed block went back to the kernel";
}

}  // namespace
}  // namespace quiver

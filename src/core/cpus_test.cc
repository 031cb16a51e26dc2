#include "core/cpus.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

namespace quiver {
namespace {

TEST(UsableCpusTest, CountsTheAffinityMask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(UsableCpus(), CPU_COUNT(&set));
  EXPECT_GE(UsableCpus(), 1);
}

TEST(UsableCpusTest, FollowsAPinnedThread) {
  // sched_getaffinity(0) reads the calling thread's mask: pin a thread to its first CPU.
  int seen = 0;
  std::thread pinned([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
    int first = 0;
    while (!CPU_ISSET(first, &set)) ++first;
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
    seen = UsableCpus();
  });
  pinned.join();
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace quiver

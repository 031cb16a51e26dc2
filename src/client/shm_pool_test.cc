#include "client/shm_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "frontend/shared_memory.h"

namespace quiver::client {
namespace {

using ::testing::HasSubstr;

// A pool registering with a real SharedMemoryManager, as a server would.
struct PoolFixture {
  frontend::SharedMemoryManager server;
  int registrations = 0;
  std::unique_ptr<ShmPool> pool = std::make_unique<ShmPool>(
      "quiver_test_" + std::to_string(::getpid()) + "_" +
          ::testing::UnitTest::GetInstance()->current_test_info()->name(),
      [this](const std::string& name, const std::string& key, uint64_t size, auto) {
        ++registrations;
        return server.RegisterSystem(name, key, 0, size);
      },
      [this](const std::string& name) { return server.Unregister(name); });
};

TEST(ShmPoolTest, ServerSeesWhatTheClientWrites) {
  PoolFixture f;
  auto lease = f.pool->Acquire(100);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_GE(lease->size(), 100u);
  std::memcpy(lease->data(), "hello", 5);
  auto view = f.server.View(lease->name(), 0, 5);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view->data()), 5), "hello");
}

TEST(ShmPoolTest, RegionsAreReusedAfterRelease) {
  PoolFixture f;
  std::string first_name;
  for (int i = 0; i < 50; ++i) {
    auto lease = f.pool->Acquire(1000);
    ASSERT_TRUE(lease.ok());
    if (i == 0) first_name = lease->name();
    EXPECT_EQ(lease->name(), first_name);
  }
  EXPECT_EQ(f.pool->RegionCount(), 1u);
  EXPECT_EQ(f.registrations, 1);
}

TEST(ShmPoolTest, ConcurrentLeasesGetDistinctRegions) {
  PoolFixture f;
  auto a = f.pool->Acquire(10);
  auto b = f.pool->Acquire(10);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->name(), b->name());
  EXPECT_NE(a->data(), b->data());
  EXPECT_EQ(f.pool->RegionCount(), 2u);
}

TEST(ShmPoolTest, LargerRequestGetsALargerRegionAndSmallOnesPreferSmall) {
  PoolFixture f;
  { auto small = f.pool->Acquire(10); ASSERT_TRUE(small.ok()); }
  std::string big_name;
  {
    auto big = f.pool->Acquire(1 << 20);
    ASSERT_TRUE(big.ok());
    EXPECT_GE(big->size(), size_t{1} << 20);
    big_name = big->name();
  }
  EXPECT_EQ(f.pool->RegionCount(), 2u);
  auto small_again = f.pool->Acquire(10);
  ASSERT_TRUE(small_again.ok());
  EXPECT_NE(small_again->name(), big_name);
  auto big_again = f.pool->Acquire(1 << 20);
  ASSERT_TRUE(big_again.ok());
  EXPECT_EQ(big_again->name(), big_name);
  EXPECT_EQ(f.pool->RegionCount(), 2u);
}

TEST(ShmPoolTest, MoveAssignmentReturnsTheOverwrittenRegion) {
  PoolFixture f;
  auto a = f.pool->Acquire(10);
  auto b = f.pool->Acquire(10);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string a_name = a->name();
  *a = std::move(*b);  // a's region goes back to the pool
  auto c = f.pool->Acquire(10);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->name(), a_name);
  EXPECT_EQ(f.pool->RegionCount(), 2u);
}

TEST(ShmPoolTest, DestroyingThePoolUnregistersAndLeasesStayValid) {
  PoolFixture f;
  auto lease = f.pool->Acquire(64);
  ASSERT_TRUE(lease.ok());
  std::shared_ptr<ShmPool::Region> mapping = lease->region();
  f.pool.reset();
  auto regions = f.server.Regions("");
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
  std::memset(lease->data(), 7, lease->size());  // still mapped
  EXPECT_EQ(static_cast<int>(lease->data()[lease->size() - 1]), 7);
}

TEST(ShmPoolTest, AbandonedRegionIsNeverHandedOutAgainAndLeavesTheServer) {
  PoolFixture f;
  std::string abandoned;
  {
    auto lease = f.pool->Acquire(100);
    ASSERT_TRUE(lease.ok());
    abandoned = lease->name();
    std::memset(lease->data(), 0x5a, 100);
    lease->Abandon();
    EXPECT_FALSE(*lease);
  }
  // The server still maps it until the next Acquire unregisters it.
  ASSERT_TRUE(f.server.Regions(abandoned).ok());
  auto next = f.pool->Acquire(100);
  ASSERT_TRUE(next.ok());
  EXPECT_NE(next->name(), abandoned);
  EXPECT_EQ(f.server.Regions(abandoned).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.registrations, 2);
}

TEST(ShmPoolTest, AbandonedRegionLeavesTheServerAlsoWhenAFreeRegionIsReused) {
  PoolFixture f;
  std::string abandoned;
  {
    auto a = f.pool->Acquire(100);
    auto b = f.pool->Acquire(100);
    ASSERT_TRUE(a.ok() && b.ok());
    abandoned = a->name();
    a->Abandon();
  }  // b goes back to the pool: the next Acquire reuses it
  auto next = f.pool->Acquire(100);
  ASSERT_TRUE(next.ok());
  EXPECT_NE(next->name(), abandoned);
  EXPECT_EQ(f.registrations, 2);
  EXPECT_EQ(f.server.Regions(abandoned).status().code(), StatusCode::kNotFound);
}

TEST(ShmPoolTest, AbandonedRegionKeepsItsBytesForWhoeverStillMapsIt) {
  PoolFixture f;
  auto lease = f.pool->Acquire(100);
  ASSERT_TRUE(lease.ok());
  std::memset(lease->data(), 0x5a, 100);
  auto view = f.server.View(lease->name(), 0, 100);  // the server's request still holds it
  ASSERT_TRUE(view.ok());
  lease->Abandon();
  for (int i = 0; i < 4; ++i) {  // later calls write other regions
    auto other = f.pool->Acquire(100);
    ASSERT_TRUE(other.ok());
    std::memset(other->data(), 0x11, 100);
  }
  for (size_t i = 0; i < 100; ++i) ASSERT_EQ(view->data()[i], std::byte{0x5a}) << i;
}

TEST(ShmPoolTest, ForgottenPoolUnregistersNothing) {
  int unregistrations = 0;
  frontend::SharedMemoryManager server;
  {
    ShmPool pool(
        "quiver_test_forget_" + std::to_string(::getpid()),
        [&](const std::string& name, const std::string& key, uint64_t size, auto) {
          return server.RegisterSystem(name, key, 0, size);
        },
        [&](const std::string&) {
          ++unregistrations;
          return Status::Ok();
        });
    auto lease = pool.Acquire(10);
    ASSERT_TRUE(lease.ok());
    pool.Forget();
  }
  EXPECT_EQ(unregistrations, 0);
}

TEST(ShmPoolTest, RegistrationFailureIsReported) {
  ShmPool pool(
      "quiver_test_fail_" + std::to_string(::getpid()),
      [](const std::string&, const std::string&, uint64_t, auto) {
        return Status::Unavailable("server says no");
      },
      nullptr);
  auto lease = pool.Acquire(10);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(lease.status().message(), HasSubstr("server says no"));
  EXPECT_EQ(pool.RegionCount(), 0u);
}

TEST(ShmPoolTest, ManyThreadsAcquireAndReleaseSafely) {
  PoolFixture f;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto lease = f.pool->Acquire(100);
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        std::memset(lease->data(), t, 100);
        for (int k = 0; k < 100; ++k) {
          if (static_cast<int>(lease->data()[k]) != t) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(f.pool->RegionCount(), 4u);
}

}  // namespace
}  // namespace quiver::client

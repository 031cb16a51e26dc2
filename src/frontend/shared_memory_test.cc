#include "frontend/shared_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace quiver::frontend {
namespace {

// A POSIX shm object created for one test and unlinked afterwards.
class ShmObject {
 public:
  explicit ShmObject(size_t size) {
    static std::atomic<int> counter{0};
    key_ = "/quiver-shm-test-";
    key_ += std::to_string(::getpid());
    key_ += '-';
    key_ += std::to_string(counter++);
    fd_ = ::shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(size)), 0);
    size_ = size;
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
      EXPECT_NE(p, MAP_FAILED);
      base_ = static_cast<unsigned char*>(p);
      for (size_t i = 0; i < size; ++i) base_[i] = static_cast<unsigned char>(i & 0xff);
    }
  }
  ~ShmObject() {
    if (base_ != nullptr) ::munmap(base_, size_);
    if (fd_ >= 0) ::close(fd_);
    ::shm_unlink(key_.c_str());
  }
  const std::string& key() const { return key_; }
  unsigned char* data() { return base_; }

 private:
  std::string key_;
  int fd_ = -1;
  size_t size_ = 0;
  unsigned char* base_ = nullptr;
};

TEST(SharedMemoryManagerTest, RegisterViewAndStatus) {
  ShmObject obj(8192);
  SharedMemoryManager m;
  ASSERT_TRUE(m.RegisterSystem("r1", obj.key(), 100, 5000).ok());
  auto regions = m.Regions("");
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 1u);
  EXPECT_EQ((*regions)[0].name, "r1");
  EXPECT_EQ((*regions)[0].key, obj.key());
  EXPECT_EQ((*regions)[0].offset, 100u);
  EXPECT_EQ((*regions)[0].byte_size, 5000u);

  auto view = m.View("r1", 10, 20);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  ASSERT_EQ(view->size(), 20u);
  // Region offset 100 + view offset 10 = object byte 110 (non page-aligned start).
  EXPECT_EQ(static_cast<unsigned char>(view->data()[0]), 110);
  EXPECT_EQ(static_cast<unsigned char>(view->data()[19]), 129);
}

TEST(SharedMemoryManagerTest, WritesThroughTheViewAreVisibleToTheOwner) {
  ShmObject obj(4096);
  SharedMemoryManager m;
  ASSERT_TRUE(m.RegisterSystem("w", obj.key(), 0, 4096).ok());
  auto view = m.View("w", 4000, 96);
  ASSERT_TRUE(view.ok());
  std::memset(view->mutable_data(), 0xAB, 96);
  EXPECT_EQ(obj.data()[4000], 0xAB);
  EXPECT_EQ(obj.data()[4095], 0xAB);
  EXPECT_EQ(obj.data()[3999], 3999 & 0xff);
}

TEST(SharedMemoryManagerTest, DuplicateNameIsAlreadyExists) {
  ShmObject obj(1024);
  SharedMemoryManager m;
  ASSERT_TRUE(m.RegisterSystem("dup", obj.key(), 0, 1024).ok());
  Status s = m.RegisterSystem("dup", obj.key(), 0, 16);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
}

TEST(SharedMemoryManagerTest, RangeBeyondTheObjectIsRejected) {
  ShmObject obj(1024);
  SharedMemoryManager m;
  EXPECT_EQ(m.RegisterSystem("a", obj.key(), 0, 1025).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.RegisterSystem("b", obj.key(), 1025, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.RegisterSystem("c", obj.key(), 1000, 100).code(), StatusCode::kInvalidArgument);
  // Overflowing offset + size must not wrap around into "fits".
  EXPECT_EQ(m.RegisterSystem("d", obj.key(), std::numeric_limits<uint64_t>::max(), 2).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(m.RegisterSystem("e", obj.key(), 8, std::numeric_limits<uint64_t>::max()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(m.RegisterSystem("f", obj.key(), 1024, 0).ok());  // empty region at the end
  auto all = m.Regions("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST(SharedMemoryManagerTest, UnknownKeyIsInvalidArgument) {
  SharedMemoryManager m;
  Status s = m.RegisterSystem("x", "/quiver-no-such-key-" + std::to_string(::getpid()), 0, 8);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("shm_open"), std::string::npos) << s.message();
  EXPECT_EQ(m.RegisterSystem("y", "", 0, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.RegisterSystem("", "/k", 0, 8).code(), StatusCode::kInvalidArgument);
}

TEST(SharedMemoryManagerTest, ViewBoundsAreChecked) {
  ShmObject obj(4096);
  SharedMemoryManager m;
  ASSERT_TRUE(m.RegisterSystem("r", obj.key(), 0, 64).ok());
  EXPECT_TRUE(m.View("r", 0, 64).ok());
  EXPECT_TRUE(m.View("r", 64, 0).ok());
  auto too_big = m.View("r", 1, 64);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.status().message().find("'r'"), std::string::npos);
  EXPECT_EQ(m.View("r", 65, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.View("r", std::numeric_limits<uint64_t>::max(), 2).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(m.View("r", 2, std::numeric_limits<uint64_t>::max()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(m.View("missing", 0, 1).status().code(), StatusCode::kNotFound);
}

TEST(SharedMemoryManagerTest, UnregisterOneAndAll) {
  ShmObject obj(1024);
  SharedMemoryManager m;
  ASSERT_TRUE(m.RegisterSystem("a", obj.key(), 0, 8).ok());
  ASSERT_TRUE(m.RegisterSystem("b", obj.key(), 8, 8).ok());
  ASSERT_TRUE(m.RegisterSystem("c", obj.key(), 16, 8).ok());
  EXPECT_EQ(m.Unregister("zzz").code(), StatusCode::kNotFound);
  EXPECT_TRUE(m.Unregister("b").ok());
  EXPECT_EQ(m.Regions("b").status().code(), StatusCode::kNotFound);
  auto rest = m.Regions("");
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].name, "a");
  EXPECT_EQ((*rest)[1].name, "c");
  EXPECT_TRUE(m.Unregister("").ok());
  EXPECT_TRUE(m.Regions("")->empty());
  // The name is free again.
  EXPECT_TRUE(m.RegisterSystem("a", obj.key(), 0, 8).ok());
}

TEST(SharedMemoryManagerTest, ViewOutlivesUnregister) {
  ShmObject obj(4096);
  SharedMemoryManager m;
  ASSERT_TRUE(m.RegisterSystem("r", obj.key(), 0, 4096).ok());
  auto view = m.View("r", 0, 4096);
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(m.Unregister("r").ok());
  // The mapping is still alive through the Buffer's keepalive.
  std::memset(view->mutable_data(), 7, 4096);
  EXPECT_EQ(obj.data()[123], 7);
  EXPECT_EQ(m.View("r", 0, 1).status().code(), StatusCode::kNotFound);
}

TEST(SharedMemoryManagerTest, ConcurrentRegisterAndViewAreSafe) {
  ShmObject obj(1 << 16);
  SharedMemoryManager m;
  std::vector<std::thread> threads;
  std::atomic<int> registered{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string name = "t";
        name += std::to_string(t);
        name += '-';
        name += std::to_string(i);
        if (m.RegisterSystem(name, obj.key(), static_cast<uint64_t>(i) * 64, 64).ok()) {
          ++registered;
        }
        auto v = m.View(name, 0, 64);
        EXPECT_TRUE(v.ok());
        if (i % 2 == 0) {
          EXPECT_TRUE(m.Unregister(name).ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(registered.load(), 200);
  EXPECT_EQ(m.Regions("")->size(), 100u);
}

}  // namespace
}  // namespace quiver::frontend

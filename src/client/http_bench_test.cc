// Throughput of the HTTP transport against the in-process server (client and server share
// the machine: numbers are for orientation). Disabled by default; run with
//   build/src/client/quiver_client_http_test --gtest_also_run_disabled_tests
//       --gtest_filter='HttpThroughput*'

#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>

#include "client/http_test_fixture.h"

namespace quiver::client {
namespace {

using Clock = std::chrono::steady_clock;

struct Measured {
  uint64_t requests = 0;
  uint64_t failures = 0;
  double seconds = 0;
};

// Closed loop: `window` requests in flight; each completion issues the next one until
// `duration` has passed, then the loop drains.
Measured RunWindow(InferenceService& service, const InferRequest& request, int window,
                   std::chrono::milliseconds duration) {
  std::mutex mutex;
  std::condition_variable cv;
  int in_flight = 0;
  Measured m;
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failed{0};
  const auto start = Clock::now();
  const auto stop = start + duration;
  std::function<void()> issue;
  issue = [&] {
    service.Infer(request, [&](Result<InferResponse> r) {
      if (!r.ok()) ++failed;
      ++done;
      if (Clock::now() < stop) {
        issue();
        return;
      }
      std::lock_guard lock(mutex);
      if (--in_flight == 0) cv.notify_all();
    });
  };
  {
    std::lock_guard lock(mutex);
    in_flight = window;
  }
  for (int i = 0; i < window; ++i) issue();
  std::unique_lock lock(mutex);
  cv.wait(lock, [&] { return in_flight == 0; });
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  m.requests = done.load();
  m.failures = failed.load();
  return m;
}

class HttpThroughput : public testing::HttpServiceFixture {};

TEST_F(HttpThroughput, DISABLED_SmallRequests) {
  const float one = 1.f;
  InferRequest r;
  r.model = "identity_fp32";
  r.inputs.push_back(MakeTensor<float>("INPUT0", DataType::kFp32, {1}, {&one, 1}));
  for (size_t connections : {size_t{1}, size_t{4}, size_t{8}}) {
    auto service = Service(Options(false, connections));
    RunWindow(*service, r, 8, std::chrono::milliseconds(300));  // warm up
    Measured m = RunWindow(*service, r, 8, std::chrono::seconds(3));
    EXPECT_EQ(m.failures, 0u);
    std::printf("identity FP32[1], 8 in flight, %zu connection(s): %.0f requests/s\n",
                connections, m.requests / m.seconds);
  }
}

TEST_F(HttpThroughput, DISABLED_LargeRequests) {
  const size_t bytes = size_t{16} << 20;
  InferRequest r;
  r.model = "identity_uint8";
  r.inputs.push_back(Tensor{"INPUT0", DataType::kUint8, {static_cast<int64_t>(bytes)},
                            Buffer::Allocate(bytes)});
  std::memset(r.inputs[0].data.mutable_data(), 7, bytes);
  for (bool shm : {false, true}) {
    for (int window : {1, 2, 4}) {
      auto service = Service(Options(shm, 4));
      RunWindow(*service, r, window, std::chrono::milliseconds(300));
      Measured m = RunWindow(*service, r, window, std::chrono::seconds(3));
      EXPECT_EQ(m.failures, 0u);
      // Counted once per direction: request bytes in, response bytes out.
      std::printf("identity 16 MiB %s, %d in flight: %.2f GB/s each way (%.1f requests/s)\n",
                  shm ? "in shared memory" : "binary", window,
                  m.requests * static_cast<double>(bytes) / m.seconds / 1e9,
                  m.requests / m.seconds);
    }
  }
}

}  // namespace
}  // namespace quiver::client

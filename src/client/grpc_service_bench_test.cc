// Throughput of the gRPC client against the in-process server (identity models), for
// orientation: disabled by default (the machine is noisy and shared). Run with
//   build/src/client/quiver_client_grpc_test --gtest_also_run_disabled_tests
//       --gtest_filter='*Throughput*'

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>

#include "client/grpc_test_server.h"

namespace quiver::client {
namespace {

// CPU seconds of this process (client and in-process server together): steadier than
// wall time on a shared machine.
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

class GrpcServiceBench : public test::GrpcServerFixture {
 protected:
  double cpu_seconds_ = 0;  // of the last Run

  // Closed loop with `window` requests in flight; returns seconds for `total` requests.
  double Run(GrpcService& service, const InferRequest& request, int total, int window) {
    std::atomic<int> started{0};
    std::atomic<int> failed{0};
    quiver::testing::CallbackCounter counter;
    std::function<void()> next = [&] {
      if (started.fetch_add(1) >= total) return;
      service.Infer(request, [&](Result<InferResponse> r) {
        if (!r.ok()) ++failed;
        next();                        // before Add: see the test
        counter.Add(InferResponse{});  // keep no outputs: 16 MiB each
      });
    };
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = CpuSeconds();
    for (int i = 0; i < window; ++i) next();
    counter.Wait(static_cast<size_t>(total));
    cpu_seconds_ = CpuSeconds() - cpu0;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(failed.load(), 0);
    return s;
  }
};

TEST_F(GrpcServiceBench, DISABLED_Throughput) {
  StartServer();
  {
    auto service = Connect(Options());
    InferRequest small;
    small.model = "identity_fp32";
    small.inputs.push_back(
        MakeTensor<float>("INPUT0", DataType::kFp32, {1}, std::vector<float>{1.0f}));
    Run(*service, small, 2000, 16);  // warm up: connections
    constexpr int kSmall = 40000;
    const double s = Run(*service, small, kSmall, 16);
    std::printf(
        "identity 4-byte, 16 in flight, 4 channels: %.0f requests/s, %.1f us CPU each "
        "(client + server)\n",
        kSmall / s, cpu_seconds_ / kSmall * 1e6);
  }
  for (bool shm : {false, true}) {
    RemoteOptions options = Options();
    options.shared_memory = shm;
    auto service = Connect(options);
    InferRequest big;
    big.model = "identity_fp32";
    const size_t n = (16u << 20) / 4;
    big.inputs.push_back(
        Tensor{"INPUT0", DataType::kFp32, {static_cast<int64_t>(n)}, Buffer::Allocate(n * 4)});
    std::memset(big.inputs[0].data.mutable_data(), 1, n * 4);
    Run(*service, big, 4, 2);
    constexpr int kBig = 60;
    for (int window : {1, 4}) {
      const double s = Run(*service, big, kBig, window);
      std::printf(
          "identity 16 MiB, %d in flight, %s: %.2f GB/s (request bytes; response "
          "same), %.1f ms CPU each\n",
          window, shm ? "shm inputs" : "in message", kBig * double(n * 4) / s / 1e9,
          cpu_seconds_ / kBig * 1e3);
    }
  }
}

}  // namespace
}  // namespace quiver::client

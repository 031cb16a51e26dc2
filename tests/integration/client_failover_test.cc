// Fault tolerance end to end: real `quiver serve` processes killed while a Client keeps
// thousands of requests in flight. Every request must be answered exactly once with the
// right values (issue 4, item 8).

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "client/local_service.h"
#include "server_process.h"

namespace quiver::client {
namespace {

const std::string kModels = std::string(QUIVER_SOURCE_DIR) + "/models";
const bool kLocalUrls = (EnableLocalUrls(), true);  // the fallback test serves local://

// One `quiver serve` child on ephemeral loopback ports.
class ServerProcess : public quiver::testing::ServerProcess {
 public:
  ServerProcess() : quiver::testing::ServerProcess(Options{kModels, "127.0.0.1", {}, {}}) {}
};

struct RunResult {
  int answered_once = 0;
  int answered_twice_or_more = 0;
  int wrong = 0;
  int errors = 0;
  std::string first_error;
};

// Sends `total` identity requests (value i for request i) through `client`, calling
// `midway` once `trigger` responses have arrived; returns how they were answered.
template <typename Midway>
RunResult SendAll(Client& client, int total, int trigger, Midway midway) {
  std::vector<std::atomic<int>> answers(total);
  std::atomic<int> completed{0};
  std::atomic<int> wrong{0};
  std::atomic<int> errors{0};
  std::mutex error_mutex;
  std::string first_error;
  std::atomic<bool> triggered{false};
  for (int i = 0; i < total; ++i) {
    if (!triggered && completed.load() >= trigger) {
      triggered = true;
      midway();
    }
    InferRequest request;
    request.model = "identity_fp32";
    const float value = static_cast<float>(i);
    request.inputs.push_back(
        MakeTensor<float>("INPUT0", DataType::kFp32, {2}, std::vector<float>{value, -value}));
    client.Infer(std::move(request), [&, i, value](Result<InferResponse> r) {
      if (!r.ok()) {
        ++errors;
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = r.status().ToString();
      } else if (r->outputs.size() != 1 || r->outputs[0].data.size() != 2 * sizeof(float) ||
                 r->outputs[0].data_as<float>()[0] != value ||
                 r->outputs[0].data_as<float>()[1] != -value) {
        ++wrong;
      }
      ++answers[i];
      ++completed;
    });
  }
  if (!triggered) midway();
  // Every callback runs exactly once; wait for all of them.
  while (completed.load() < total) std::this_thread::yield();
  RunResult result;
  for (auto& a : answers) {
    if (a.load() == 1) ++result.answered_once;
    if (a.load() > 1) ++result.answered_twice_or_more;
  }
  result.wrong = wrong.load();
  result.errors = errors.load();
  result.first_error = first_error;
  return result;
}

ClientOptions Options(std::vector<std::string> urls) {
  ClientOptions options;
  options.urls = std::move(urls);
  options.max_in_flight = 64;
  options.retry.max_attempts = 10;
  options.retry.initial_backoff = std::chrono::milliseconds(5);
  return options;
}

class FailoverTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FailoverTest, KillingOneOfTwoServersLosesNoRequest) {
  const std::string scheme = GetParam();
  ServerProcess first;
  ServerProcess second;
  ASSERT_TRUE(first.ok() && second.ok()) << "could not start " << QUIVER_BINARY;
  auto client = Client::Create(Options({first.Url(scheme), second.Url(scheme)}));
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  constexpr int kTotal = 10000;
  RunResult r = SendAll(**client, kTotal, 2000, [&] { first.Kill(); });
  EXPECT_EQ(r.answered_once, kTotal);
  EXPECT_EQ(r.answered_twice_or_more, 0);
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_EQ(r.wrong, 0);
  // Requests in flight on the killed server were retried on the other one.
  EXPECT_GT((*client)->Stats().retries, 0u);
}

INSTANTIATE_TEST_SUITE_P(Transports, FailoverTest, ::testing::Values("grpc", "http"));

TEST(FallbackTest, LocalFallbackServesWhenEveryServerIsDown) {
  ServerProcess first;
  ServerProcess second;
  ASSERT_TRUE(first.ok() && second.ok());
  ClientOptions options = Options({first.Url("grpc"), second.Url("http")});
  options.fallback = "local://" + kModels;
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  constexpr int kTotal = 2000;
  RunResult r = SendAll(**client, kTotal, 300, [&] {
    first.Kill();
    second.Kill();
  });
  EXPECT_EQ(r.answered_once, kTotal);
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_EQ(r.wrong, 0);
  EXPECT_GT((*client)->Stats().fallback_calls, 0u);
}

TEST(FallbackTest, WithoutFallbackAnAllDownErrorNamesEveryEndpoint) {
  std::string urls[2];
  {
    ServerProcess first;
    ServerProcess second;
    ASSERT_TRUE(first.ok() && second.ok());
    urls[0] = first.Url("grpc");
    urls[1] = second.Url("http");
  }  // both gone: their ports refuse connections
  ClientOptions options = Options({urls[0], urls[1]});
  options.retry.max_attempts = 3;
  options.validate_inputs = false;
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok());
  InferRequest request;
  request.model = "identity_fp32";
  request.inputs.push_back(
      MakeTensor<float>("INPUT0", DataType::kFp32, {1}, std::vector<float>{1}));
  auto r = (*client)->InferSync(std::move(request));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find(urls[0]), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(urls[1]), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace quiver::client

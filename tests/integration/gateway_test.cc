// The gateway end to end (issue 11, item 8): real `quiver serve` processes behind a real
// `quiver gateway`, a Client in front. Servers killed and restarted under load, models
// loaded on demand, the gateway itself restarted.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "http_get.h"
#include "server_process.h"

namespace quiver::client {
namespace {

using quiver::testing::HttpGet;
using quiver::testing::ServerProcess;
using namespace std::chrono_literals;

const std::string kModels = std::string(QUIVER_SOURCE_DIR) + "/models";

// A `quiver serve` with only `models` loaded (explicit control), on the given ports (0 = any).
std::unique_ptr<ServerProcess> StartServer(std::vector<std::string> models, int http_port = 0,
                                           int grpc_port = 0) {
  std::vector<std::string> command = {"serve", "--model-repository", kModels,
                                      "--model-control-mode", "explicit", "--http-port",
                                      std::to_string(http_port), "--grpc-port",
                                      std::to_string(grpc_port), "--metrics-port", "0"};
  for (auto& m : models) {
    command.push_back("--load-model");
    command.push_back(std::move(m));
  }
  return std::make_unique<ServerProcess>(ServerProcess::Options{.command = command});
}

// A facility file in a fresh temporary folder.
class FacilityFile {
 public:
  explicit FacilityFile(const std::string& yaml) {
    dir_ = std::filesystem::temp_directory_path() /
           ("quiver-gateway-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    std::ofstream(path()) << yaml;
  }
  ~FacilityFile() { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "facility.yaml").string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
};

std::unique_ptr<ServerProcess> StartGateway(const std::string& config, int http_port = 0,
                                            int grpc_port = 0) {
  return std::make_unique<ServerProcess>(ServerProcess::Options{
      .command = {"gateway", "--config", config, "--http-port", std::to_string(http_port),
                  "--grpc-port", std::to_string(grpc_port), "--metrics-port", "0"}});
}

// Polls `condition` until it holds or `limit` passes (the state it waits for is reached by
// the gateway's own poller, not by this test).
bool Eventually(const std::function<bool()>& condition, std::chrono::seconds limit = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

// quiver_gateway_upstream_healthy for `url` from the gateway's metrics (-1: no sample).
int Healthy(const ServerProcess& gateway, const std::string& url) {
  auto page = HttpGet(gateway.port("metrics"), "/metrics");
  std::smatch m;
  const std::regex re("quiver_gateway_upstream_healthy\\{upstream=\"" +
                      std::regex_replace(url, std::regex("[.:/]"), "\\$&") + "\"\\} (\\d)");
  if (!std::regex_search(page.body, m, re)) return -1;
  return std::stoi(m[1]);
}

// Successful requests of `model` on one server, from its statistics.
int Successes(const ServerProcess& server, const std::string& model) {
  auto page = HttpGet(server.port("http"), "/v2/models/" + model + "/stats");
  std::smatch m;
  if (!std::regex_search(page.body, m, std::regex("\"success\":\\{\"count\":(\\d+)"))) return -1;
  return std::stoi(m[1]);
}

InferRequest Identity(float value) {
  InferRequest request;
  request.model = "identity_fp32";
  request.inputs.push_back(
      MakeTensor<float>("INPUT0", DataType::kFp32, {2}, std::vector<float>{value, -value}));
  return request;
}

struct LoadResult {
  int ok = 0;
  int wrong = 0;
  int errors = 0;
  std::string first_error;
};

// `total` identity requests through `client`, `midway()` once `trigger` have completed.
LoadResult SendAll(Client& client, int total, int trigger, const std::function<void()>& midway) {
  std::atomic<int> completed{0}, ok{0}, wrong{0}, errors{0};
  std::mutex mutex;
  std::string first_error;
  bool triggered = false;
  for (int i = 0; i < total; ++i) {
    if (!triggered && completed.load() >= trigger) {
      triggered = true;
      midway();
    }
    const float value = static_cast<float>(i);
    client.Infer(Identity(value), [&, value](Result<InferResponse> r) {
      if (!r.ok()) {
        ++errors;
        std::lock_guard lock(mutex);
        if (first_error.empty()) first_error = r.status().ToString();
      } else if (r->outputs.size() != 1 || r->outputs[0].data_as<float>()[0] != value ||
                 r->outputs[0].data_as<float>()[1] != -value) {
        ++wrong;
      } else {
        ++ok;
      }
      ++completed;
    });
  }
  if (!triggered) midway();
  while (completed.load() < total) std::this_thread::yield();
  return {ok.load(), wrong.load(), errors.load(), first_error};
}

ClientOptions OneUrl(const std::string& url, int attempts) {
  ClientOptions options;
  options.urls = {url};
  options.max_in_flight = 32;
  options.retry.max_attempts = attempts;
  options.retry.initial_backoff = 10ms;
  options.retry.max_backoff = 200ms;
  options.retry.endpoint_cooldown = 0ms;
  return options;
}

// Three servers with overlapping models behind one gateway (gRPC and HTTP upstreams); one
// is killed under load: the gateway alone (the client does not retry) loses no request,
// ejects it, and re-admits it once it is back on the same ports.
TEST(GatewayTest, KilledServerCostsNoRequestIsEjectedAndReadmitted) {
  auto s1 = StartServer({"identity_fp32"});
  auto s2 = StartServer({"identity_fp32", "identity_bytes"});
  auto s3 = StartServer({"identity_fp32"});
  ASSERT_TRUE(s1->ok() && s2->ok() && s3->ok()) << "could not start " << QUIVER_BINARY;
  const std::string u1 = s1->Url("grpc");
  FacilityFile facility(
      "gateway:\n  poll_interval_ms: 100\n  outlier: {base_ejection_ms: 300}\n"
      "upstreams:\n  - url: " + u1 + "\n  - url: " + s2->Url("grpc") +
      "\n  - url: " + s3->Url("http") + "\n");
  auto gateway = StartGateway(facility.path());
  ASSERT_TRUE(gateway->ok());

  auto client = Client::Create(OneUrl(gateway->Url("grpc"), 1));  // no client retries
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const int s1_http = s1->port("http");
  const int s1_grpc = s1->port("grpc");
  constexpr int kTotal = 6000;
  LoadResult r = SendAll(**client, kTotal, 1500, [&] { s1->Kill(); });
  EXPECT_EQ(r.ok, kTotal);
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_EQ(r.wrong, 0);
  EXPECT_TRUE(Eventually([&] { return Healthy(*gateway, u1) == 0; })) << "not ejected";

  s1 = StartServer({"identity_fp32"}, s1_http, s1_grpc);  // back, same ports
  ASSERT_TRUE(s1->ok());
  EXPECT_TRUE(Eventually([&] { return Healthy(*gateway, u1) == 1; })) << "not re-admitted";
  // It gets traffic again (P2C over three idle upstreams: surely some of 300).
  r = SendAll(**client, 300, 300, [] {});
  EXPECT_EQ(r.ok, 300) << r.first_error;
  EXPECT_GT(Successes(*s1, "identity_fp32"), 0);
}

// A model in a server's repository but loaded nowhere is loaded on first request.
TEST(GatewayTest, ModelLoadedNowhereIsLoadedOnFirstRequest) {
  auto server = StartServer({"identity_fp32"});
  ASSERT_TRUE(server->ok());
  FacilityFile facility("upstreams: [" + server->Url("grpc") + "]\n");
  auto gateway = StartGateway(facility.path());
  ASSERT_TRUE(gateway->ok());
  EXPECT_NE(HttpGet(gateway->port("http"), "/v2/models/identity_bytes/ready").status, 200)
      << "identity_bytes should not be ready yet";

  auto client = Client::Create(OneUrl(gateway->Url("http"), 1));
  ASSERT_TRUE(client.ok());
  InferRequest request;
  request.model = "identity_bytes";
  Tensor text;
  text.name = "INPUT0";
  text.datatype = DataType::kBytes;
  text.shape = {1};
  const std::string payload("\x05\x00\x00\x00hello", 9);
  text.data = Buffer::Copy(payload.data(), payload.size());
  request.inputs.push_back(std::move(text));
  auto answer = (*client)->InferSync(std::move(request));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(HttpGet(gateway->port("http"), "/v2/models/identity_bytes/ready").status, 200);
  EXPECT_EQ(HttpGet(server->port("http"), "/v2/models/identity_bytes/ready").status, 200);
}

// Upstreams change at run time: through the admin API (HTTP and `quiver admin`) and by
// editing the facility file, which the gateway re-reads.
TEST(GatewayTest, UpstreamsChangeThroughTheAdminApiAndTheFile) {
  auto s1 = StartServer({"identity_fp32"});
  auto s2 = StartServer({"identity_fp32"});
  ASSERT_TRUE(s1->ok() && s2->ok());
  FacilityFile facility("gateway: {poll_interval_ms: 100}\nupstreams: [" + s1->Url("grpc") +
                        "]\n");
  auto gateway = StartGateway(facility.path());
  ASSERT_TRUE(gateway->ok());
  const int port = gateway->port("http");
  auto count = [&] {
    auto page = HttpGet(port, "/v2/gateway/upstreams");
    size_t n = 0;
    for (size_t at = 0; (at = page.body.find("\"url\"", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  EXPECT_EQ(count(), 1u);
  auto added = quiver::testing::HttpExchange(port, "POST", "/v2/gateway/upstreams",
                                             "{\"url\": \"" + s2->Url("http") + "\"}");
  EXPECT_EQ(added.status, 200) << added.body;
  EXPECT_EQ(count(), 2u);
  const std::string cli = std::string(QUIVER_BINARY) + " admin -g http://127.0.0.1:" +
                          std::to_string(port) + " remove " + s2->Url("http");
  EXPECT_EQ(std::system(cli.c_str()), 0) << cli;
  EXPECT_EQ(count(), 1u);

  std::ofstream(facility.path()) << "gateway: {poll_interval_ms: 100}\nupstreams: ["
                                 << s1->Url("grpc") << ", " << s2->Url("grpc") << "]\n";
  EXPECT_TRUE(Eventually([&] { return count() == 2; })) << "file change not applied";
  std::ofstream(facility.path()) << "gateway: {poll_interval_ms: 100}\nupstreams: ["
                                 << s2->Url("grpc") << "]\n";
  EXPECT_TRUE(Eventually([&] { return count() == 1; })) << "removal not applied";
  EXPECT_THAT(HttpGet(port, "/v2/gateway/upstreams").body, ::testing::HasSubstr(s2->Url("grpc")));
}

// The gateway restarts on the same ports while a client with retries keeps sending: the
// client loses nothing.
TEST(GatewayTest, GatewayRestartLosesNoRequestTheClientRetries) {
  auto s1 = StartServer({"identity_fp32"});
  auto s2 = StartServer({"identity_fp32"});
  ASSERT_TRUE(s1->ok() && s2->ok());
  FacilityFile facility("gateway: {poll_interval_ms: 100}\nupstreams: [" + s1->Url("grpc") +
                        ", " + s2->Url("grpc") + "]\n");
  auto gateway = StartGateway(facility.path());
  ASSERT_TRUE(gateway->ok());
  const int http_port = gateway->port("http");
  const int grpc_port = gateway->port("grpc");
  ClientOptions options = OneUrl(gateway->Url("grpc"), 100);
  options.retry.max_total = 60s;
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok());
  LoadResult r = SendAll(**client, 3000, 1000, [&] {
    gateway->Kill();
    gateway = StartGateway(facility.path(), http_port, grpc_port);
  });
  ASSERT_TRUE(gateway->ok());
  EXPECT_EQ(r.ok, 3000);
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_GT((*client)->Stats().retries, 0u);
}

}  // namespace
}  // namespace quiver::client

// Shared memory across real process and host boundaries, over both transports:
//   - a server in a container of its own (a private /dev/shm: its own mount namespace) on
//     this host's loopback cannot open our regions: it refuses the registration, the client
//     turns shared memory off and every call still succeeds, in the message;
//   - a server on another host (its own network namespace, reached over a veth pair) is
//     never offered shared memory.
// Both need root (namespaces); they are skipped, not failed, without it.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "client/remote_service.h"
#include "client/url.h"
#include "server_process.h"

namespace quiver::client {
namespace {

using quiver::testing::ServerProcess;

const std::string kModels = std::string(QUIVER_SOURCE_DIR) + "/models";

bool Shell(const std::string& command) { return std::system(command.c_str()) == 0; }

bool CanUseNamespaces() {
  return ::geteuid() == 0 && Shell("command -v ip >/dev/null && command -v unshare >/dev/null");
}

std::shared_ptr<RemoteService> Connect(const std::string& url_text) {
  auto url = ParseUrl(url_text);
  EXPECT_TRUE(url.ok()) << url.status().ToString();
  RemoteOptions o;
  o.host = url->host;
  o.port = url->port;
  o.shared_memory = true;
  o.shared_memory_min_bytes = 1024;
  return url->scheme == Scheme::kHttp ? MakeHttpService(o) : MakeGrpcService(o);
}

// Sends `n` identity_fp32 calls of 2048 floats (8 KiB, above the shm threshold) and checks
// every answer.
void CallsSucceed(RemoteService& service, int n) {
  for (int i = 0; i < n; ++i) {
    std::vector<float> values(2048, static_cast<float>(i));
    InferRequest request;
    request.model = "identity_fp32";
    request.inputs.push_back(MakeTensor<float>("INPUT0", DataType::kFp32, {2048}, values));
    std::promise<Result<InferResponse>> promise;
    service.Infer(std::move(request),
                  [&](Result<InferResponse> r) { promise.set_value(std::move(r)); });
    auto r = promise.get_future().get();
    ASSERT_TRUE(r.ok()) << "call " << i << ": " << r.status().ToString();
    ASSERT_EQ(r->outputs.size(), 1u);
    EXPECT_EQ(r->outputs[0].data_as<float>()[2047], static_cast<float>(i));
  }
}

class RemoteShmTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RemoteShmTest, ServerWithoutOurDevShmRefusesAndCallsTravelInTheMessage) {
  if (!CanUseNamespaces()) GTEST_SKIP() << "needs root, ip and unshare";
  ServerProcess server({kModels,
                        "127.0.0.1",
                        {"unshare", "--mount", "--propagation", "private", "sh", "-c",
                         "mount -t tmpfs tmpfs /dev/shm && exec \"$0\" \"$@\""},
                        {"--model-control-mode", "explicit", "--load-model", "identity_fp32"}});
  ASSERT_TRUE(server.ok());
  auto service = Connect(server.Url(GetParam()));
  EXPECT_TRUE(service->SharedMemoryActive()) << "loopback: shared memory is tried";
  CallsSucceed(*service, 5);
  EXPECT_FALSE(service->SharedMemoryActive()) << "the refusal turned it off";
  EXPECT_EQ(service->SharedMemoryInputs(), 0u);
}

TEST_P(RemoteShmTest, ServerOnAnotherHostIsNeverOfferedSharedMemory) {
  if (!CanUseNamespaces()) GTEST_SKIP() << "needs root, ip and unshare";
  // A host of our own: a network namespace behind a veth pair, 10.213.N.0/30.
  // Distinct per process and per transport (ctest may run both at once).
  const int n = static_cast<int>(::getpid() % 125) * 2 + (GetParam() == "grpc" ? 1 : 0);
  const std::string ns = "quiver" + std::to_string(::getpid());
  const std::string veth = "qv" + std::to_string(::getpid());
  const std::string here = "10.213." + std::to_string(n) + ".1";
  const std::string there = "10.213." + std::to_string(n) + ".2";
  struct Cleanup {
    std::string ns;
    ~Cleanup() { Shell("ip netns del " + ns + " 2>/dev/null"); }  // takes the veth pair along
  } cleanup{ns};
  ASSERT_TRUE(Shell("ip netns add " + ns));
  ASSERT_TRUE(Shell("ip link add " + veth + "a type veth peer name " + veth + "b netns " + ns));
  ASSERT_TRUE(
      Shell("ip addr add " + here + "/30 dev " + veth + "a && ip link set " + veth + "a up"));
  ASSERT_TRUE(Shell("ip -n " + ns + " addr add " + there + "/30 dev " + veth + "b && ip -n " + ns +
                    " link set " + veth + "b up && ip -n " + ns + " link set lo up"));
  ServerProcess server({kModels,
                        there,
                        {"ip", "netns", "exec", ns},
                        {"--model-control-mode", "explicit", "--load-model", "identity_fp32"}});
  ASSERT_TRUE(server.ok());
  auto service = Connect(server.Url(GetParam()));
  EXPECT_FALSE(service->SharedMemoryActive());
  CallsSucceed(*service, 5);
  EXPECT_EQ(service->SharedMemoryInputs(), 0u);
  server.Kill();
}

INSTANTIATE_TEST_SUITE_P(BothTransports, RemoteShmTest, ::testing::Values("http", "grpc"));

}  // namespace
}  // namespace quiver::client

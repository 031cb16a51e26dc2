// The HTTP transport's bearer token (RemoteOptions::token): sent on every request
// (inference, sync calls, shared-memory registration), absent without a token, never in an
// error message. Against a scripted server that records what it receives; the frontends'
// own authentication is not involved.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "client/http_service.h"
#include "client/http_test_fixture.h"
#include "testing/infer_helpers.h"

namespace quiver::client {
namespace {

using quiver::testing::InferAndWait;
using testing::RawHttpServer;
namespace http = boost::beast::http;

// What the server saw of one request.
struct Seen {
  std::string target;
  size_t authorization_headers = 0;
  std::string authorization;  // the first one's value
};

std::string InferAnswer() {
  // One FP32 output of one element, binary after the JSON header.
  const std::string json =
      R"({"model_name":"m","model_version":"1","outputs":[{"name":"OUT","datatype":"FP32",)"
      R"("shape":[1],"parameters":{"binary_data_size":4}}]})";
  const float v = 1.5f;
  const std::string body = json + std::string(reinterpret_cast<const char*>(&v), sizeof v);
  return "HTTP/1.1 200 OK\r\nInference-Header-Content-Length: " + std::to_string(json.size()) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A KServe v2 server in outline: health, metadata, index, load, shm registration and
// inference all succeed; `status` (when not 200) answers every request instead.
class RecordingServer {
 public:
  explicit RecordingServer(int status = 200) : status_(status) {}

  uint16_t port() const { return server_.port(); }
  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  RawHttpServer::Reply Answer(const RawHttpServer::Request& req) {
    Seen s;
    s.target = std::string(req.target());
    s.authorization_headers = req.count(http::field::authorization);
    s.authorization = std::string(req[http::field::authorization]);
    {
      std::lock_guard lock(mutex_);
      seen_.push_back(s);
    }
    if (status_ != 200) {
      return {RawHttpServer::Json(status_, R"({"error":"no valid token given"})")};
    }
    if (s.target.ends_with("/infer")) return {InferAnswer()};
    if (s.target == "/v2") {
      return {RawHttpServer::Json(200, R"({"name":"raw","version":"1","extensions":[]})")};
    }
    if (s.target == "/v2/repository/index") return {RawHttpServer::Json(200, "[]")};
    return {RawHttpServer::Json(200, "{}")};
  }

  const int status_;
  std::mutex mutex_;
  std::vector<Seen> seen_;  // guarded by mutex_
  RawHttpServer server_{[this](const RawHttpServer::Request& req) { return Answer(req); }};
};

RemoteOptions OptionsFor(const RecordingServer& server, std::string token) {
  RemoteOptions o;
  o.port = server.port();
  o.token = std::move(token);
  o.shared_memory = true;  // 127.0.0.1: registration goes to the server too
  o.shared_memory_min_bytes = 16;
  return o;
}

InferRequest Floats(size_t n) {
  InferRequest r;
  r.model = "m";
  std::vector<float> v(n, 1.f);
  r.inputs.push_back(MakeTensor<float>("INPUT0", DataType::kFp32, {static_cast<int64_t>(n)}, v));
  return r;
}

// Every kind of request the transport makes, once; then the service is destroyed (which
// unregisters the shared-memory region).
void UseEverything(const RemoteOptions& options) {
  HttpService service(options);
  EXPECT_TRUE(service.Live());
  EXPECT_TRUE(service.ModelReady("m", ""));
  EXPECT_TRUE(service.GetServerMetadata().ok());
  EXPECT_TRUE(service.Index().ok());
  EXPECT_TRUE(service.Load("m").ok());
  auto in_message = InferAndWait(service, Floats(1));
  EXPECT_TRUE(in_message.ok()) << in_message.status().ToString();
  auto in_shm = InferAndWait(service, Floats(64));
  EXPECT_TRUE(in_shm.ok()) << in_shm.status().ToString();
  EXPECT_EQ(service.SharedMemoryInputs(), 1u);
}

bool SawTarget(const std::vector<Seen>& seen, std::string_view suffix) {
  for (const Seen& s : seen) {
    if (s.target.ends_with(suffix)) return true;
  }
  return false;
}

TEST(HttpTokenTest, EveryRequestCarriesTheBearerToken) {
  RecordingServer server;
  UseEverything(OptionsFor(server, "s3cret-T0ken.x"));
  const std::vector<Seen> seen = server.seen();
  for (const char* target : {"/v2/health/live", "/ready", "/v2", "/index", "/load", "/register",
                             "/infer", "/unregister"}) {
    EXPECT_TRUE(SawTarget(seen, target)) << target;
  }
  for (const Seen& s : seen) {
    EXPECT_EQ(s.authorization_headers, 1u) << s.target;
    EXPECT_EQ(s.authorization, "Bearer s3cret-T0ken.x") << s.target;
  }
}

TEST(HttpTokenTest, NoTokenSendsNoAuthorizationHeader) {
  RecordingServer server;
  UseEverything(OptionsFor(server, ""));
  const std::vector<Seen> seen = server.seen();
  EXPECT_TRUE(SawTarget(seen, "/infer"));
  for (const Seen& s : seen) EXPECT_EQ(s.authorization_headers, 0u) << s.target;
}

TEST(HttpTokenTest, RefusalIsUnauthenticatedWithoutTheToken) {
  RecordingServer server(401);
  HttpService service(OptionsFor(server, "s3cret"));
  auto r = InferAndWait(service, Floats(1));
  ASSERT_EQ(r.status().code(), StatusCode::kUnauthenticated) << r.status().ToString();
  EXPECT_EQ(r.status().message(), service.endpoint() + ": no valid token given");
  auto metadata = service.GetModelMetadata("m", "");
  ASSERT_EQ(metadata.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(metadata.status().message().find("s3cret"), std::string::npos);
}

TEST(HttpTokenTest, ATokenThatCannotBeAHeaderFailsEveryCallWithoutSendingIt) {
  RecordingServer server;
  HttpService service(OptionsFor(server, "s3cret\r\nX-Injected: 1"));
  auto r = InferAndWait(service, Floats(1));
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(r.status().message().starts_with(service.endpoint())) << r.status().message();
  EXPECT_EQ(r.status().message().find("s3cret"), std::string::npos) << r.status().message();
  EXPECT_FALSE(service.Live());
  EXPECT_EQ(service.GetServerMetadata().status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.seen().empty());
}

TEST(HttpTokenTest, TransportErrorsNeverHoldTheToken) {
  RemoteOptions o;
  o.port = 1;  // nothing listens: connection refused
  o.token = "s3cret";
  HttpService service(o);
  auto r = InferAndWait(service, Floats(1));
  ASSERT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message().find("s3cret"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace quiver::client

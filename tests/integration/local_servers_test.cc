// `quiver serve` children of the gateway's local library (quiver up, the `local`
// autoscale provider): real processes on 127.0.0.1, identity models, ephemeral ports.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "gateway/local/child_process.h"
#include "gateway/local/http_probe.h"
#include "gateway/local/prometheus_process.h"
#include "gateway/local/server_pool.h"
#include "testing/temp_repository.h"

namespace quiver::gateway {
namespace {

using namespace std::chrono_literals;

const std::filesystem::path kModels = QUIVER_SOURCE_DIR "/models";
constexpr auto kDeadline = 60s;

// True once `pid` has exited (or never existed), waiting at most `timeout` on its pidfd.
bool WaitGone(pid_t pid, std::chrono::milliseconds timeout) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return n == 1;
}

bool Gone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

int Ready(int http_port, const std::string& model = "") {
  const std::string path = model.empty() ? "/v2/health/ready" : "/v2/models/" + model + "/ready";
  return HttpGetStatus(http_port, path, 5s);
}

// What the pool's callbacks saw, with a bounded wait for the next one.
class Events {
 public:
  ServerPoolOptions Options(const std::filesystem::path& log_dir) {
    ServerPoolOptions o;
    o.quiver_binary = QUIVER_BINARY;
    o.log_dir = log_dir;
    o.model_repository = kModels;
    o.stop_timeout = 10s;
    o.on_ready = [this](const std::string& url) { Add("ready " + url); };
    o.before_stop = [this](const std::string& url) { Add("stop " + url); };
    o.on_exit = [this](const std::string& url, const std::string& why) {
      Add("exit " + url + " " + why);
    };
    return o;
  }
  // The next event (in order), or "" after kDeadline.
  std::string Next() {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, kDeadline, [this] { return seen_ < events_.size(); })) return "";
    return events_[seen_++];
  }

 private:
  void Add(std::string e) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> events_;  // guarded by mutex_
  size_t seen_ = 0;                  // guarded by mutex_
};

class LocalServersTest : public ::testing::Test {
 protected:
  ServerProcessOptions ProcessOptions(const std::string& log) {
    ServerProcessOptions o;
    o.quiver_binary = QUIVER_BINARY;
    o.log_file = dir_.path() / log;
    return o;
  }
  testing::TempRepository dir_{"local-servers"};
};

TEST_F(LocalServersTest, ServerStartsWithItsModelsOnEphemeralPortsAndStops) {
  auto server =
      ServerProcess::Start({"a", kModels, {"identity_fp32"}, {}}, ProcessOptions("a.log"));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ServerProcess& s = **server;
  EXPECT_GT(s.http_port(), 0);
  EXPECT_GT(s.grpc_port(), 0);
  EXPECT_GT(s.metrics_port(), 0);
  EXPECT_EQ(s.GrpcUrl(), "grpc://127.0.0.1:" + std::to_string(s.grpc_port()));
  EXPECT_EQ(Ready(s.http_port()), 200);
  EXPECT_EQ(Ready(s.http_port(), "identity_fp32"), 200);
  EXPECT_NE(Ready(s.http_port(), "identity_bytes"), 200);  // explicit mode: not loaded
  EXPECT_EQ(HttpGetStatus(s.metrics_port(), "/metrics", 5s), 200);
  const pid_t pid = s.pid();
  s.process().Stop(10s);
  EXPECT_EQ(s.process().ExitDescription(), "exit code 0");  // SIGTERM: a clean shutdown
  EXPECT_TRUE(Gone(pid));
}

TEST_F(LocalServersTest, EarlyExitIsAnErrorWithTheLogTail) {
  // (An unknown --load-model does not stop `quiver serve`; a bad flag does.)
  auto server = ServerProcess::Start({"bad", kModels, {"identity_fp32"}, {"--no-such-flag"}},
                                     ProcessOptions("bad.log"));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kUnavailable);
  const std::string m = server.status().message();
  EXPECT_NE(m.find("server 'bad' exited before it was ready: exit code"), std::string::npos) << m;
  EXPECT_NE(m.find("--no-such-flag"), std::string::npos) << m;  // from the server's log
}

TEST_F(LocalServersTest, StartTimeoutIsAnErrorAndStopsTheChild) {
  ServerProcessOptions o = ProcessOptions("slow.log");
  o.start_timeout = 1ms;  // exec and the engine's start take longer
  auto server = ServerProcess::Start({"slow", kModels, {"identity_fp32"}, {}}, o);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("was not ready within 1 ms"), std::string::npos)
      << server.status().message();
}

TEST_F(LocalServersTest, PoolStartsFixedServersNoticesAKillAndStopsTheRest) {
  Events events;
  ServerPool pool(events.Options(dir_.path() / "logs"));
  ASSERT_TRUE(pool.StartServers({{"s1", kModels, {"identity_fp32", "identity_bytes"}, {}},
                                 {"s2", kModels, {"identity_bytes"}, {}}})
                  .ok());
  const auto servers = pool.Servers();
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(events.Next(), "ready " + servers[0].grpc_url);
  EXPECT_EQ(events.Next(), "ready " + servers[1].grpc_url);
  EXPECT_EQ(Ready(servers[0].http_port, "identity_fp32"), 200);
  EXPECT_EQ(Ready(servers[1].http_port, "identity_bytes"), 200);
  EXPECT_NE(Ready(servers[1].http_port, "identity_fp32"), 200);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "logs" / "s1.log"));
  EXPECT_EQ(pool.Replicas("identity_fp32"), 0u);  // fixed servers are not replicas
  EXPECT_EQ(pool.StartServers({{"s1", kModels, {}, {}}}).code(), StatusCode::kAlreadyExists);

  ::kill(servers[0].pid, SIGKILL);
  EXPECT_EQ(events.Next(), "exit " + servers[0].grpc_url + " killed by signal 9 (SIGKILL)");
  ASSERT_EQ(pool.Servers().size(), 1u);
  EXPECT_TRUE(Gone(servers[0].pid));  // reaped by the pool

  pool.StopAll();
  EXPECT_TRUE(pool.Servers().empty());
  EXPECT_TRUE(Gone(servers[1].pid));
  EXPECT_EQ(pool.ScaleTo("identity_fp32", 1).code(), StatusCode::kUnavailable);
}

TEST_F(LocalServersTest, PoolFailsAsAWholeWhenOneServerFails) {
  Events events;
  ServerPool pool(events.Options(dir_.path() / "logs"));
  const Status s = pool.StartServers({{"good", kModels, {"identity_fp32"}, {}},
                                      {"bad", kModels, {"identity_fp32"}, {"--no-such-flag"}}});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("server 'bad'"), std::string::npos) << s.message();
  EXPECT_TRUE(pool.Servers().empty());  // 'good' was stopped again
}

TEST_F(LocalServersTest, PoolScalesReplicasUpAndDownNewestFirst) {
  Events events;
  ServerPool pool(events.Options(dir_.path() / "logs"));
  ASSERT_TRUE(pool.ScaleTo("identity_fp32", 2).ok());
  const std::string first = events.Next();
  const std::string second = events.Next();
  ASSERT_EQ(first.rfind("ready grpc://127.0.0.1:", 0), 0u) << first;
  ASSERT_EQ(second.rfind("ready grpc://127.0.0.1:", 0), 0u) << second;
  EXPECT_NE(first, second);
  EXPECT_EQ(pool.Replicas("identity_fp32"), 2u);
  EXPECT_EQ(pool.Replicas("identity_bytes"), 0u);
  auto servers = pool.Servers();
  ASSERT_EQ(servers.size(), 2u);
  for (const auto& s : servers) {
    EXPECT_EQ(s.replica_of, "identity_fp32");
    EXPECT_EQ(Ready(s.http_port, "identity_fp32"), 200);
    EXPECT_NE(Ready(s.http_port, "identity_bytes"), 200);  // a replica serves its model only
  }

  ASSERT_TRUE(pool.ScaleTo("identity_fp32", 1).ok());
  EXPECT_EQ(events.Next(), "stop " + servers[1].grpc_url);  // the newest goes first
  EXPECT_TRUE(WaitGone(servers[1].pid, kDeadline));
  EXPECT_EQ(pool.Replicas("identity_fp32"), 1u);

  // A replica that dies is replaced.
  ::kill(servers[0].pid, SIGKILL);
  EXPECT_EQ(events.Next(), "exit " + servers[0].grpc_url + " killed by signal 9 (SIGKILL)");
  const std::string replaced = events.Next();
  EXPECT_EQ(replaced.rfind("ready grpc://", 0), 0u) << replaced;
  EXPECT_EQ(pool.Replicas("identity_fp32"), 1u);

  ASSERT_TRUE(pool.ScaleTo("identity_fp32", 0).ok());
  EXPECT_EQ(events.Next(), "stop " + replaced.substr(6));
  servers = pool.Servers();
  EXPECT_TRUE(servers.empty());
  EXPECT_EQ(pool.Replicas("identity_fp32"), 0u);
}

TEST_F(LocalServersTest, ScaleToNeedsARepositoryAndAModel) {
  Events events;
  ServerPoolOptions o = events.Options(dir_.path() / "logs");
  o.model_repository.clear();
  ServerPool pool(o);
  EXPECT_EQ(pool.ScaleTo("identity_fp32", 1).code(), StatusCode::kInvalidArgument);
  ServerPool with_repo(events.Options(dir_.path() / "logs"));
  EXPECT_EQ(with_repo.ScaleTo("", 1).code(), StatusCode::kInvalidArgument);
}

// The parent is SIGKILLed (no chance to stop anything): PR_SET_PDEATHSIG kills the server.
TEST_F(LocalServersTest, ServerDiesWithItsParent) {
  // Orphans are re-parented to us, so that we can reap the server (no zombie under init).
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto helper = ChildProcess::Spawn({{QUIVER_SPAWN_HELPER, QUIVER_BINARY, kModels.string(),
                                      "identity_fp32", (dir_.path() / "orphan.log").string()},
                                     dir_.path() / "helper.log",
                                     true});
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  std::string line;
  char c;
  while (::read((*helper)->stdout_fd(), &c, 1) == 1 && c != '\n') line += c;
  int server_pid = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "PID %d", &server_pid), 1) << line << "\n"
                                                                 << (*helper)->LogTail();
  EXPECT_FALSE(Gone(server_pid));

  ::kill((*helper)->pid(), SIGKILL);
  ASSERT_TRUE((*helper)->WaitExit(kDeadline));
  EXPECT_TRUE(WaitGone(server_pid, kDeadline));
  int status = 0;
  ASSERT_EQ(::waitpid(server_pid, &status, 0), server_pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)  // PDEATHSIG
      << status;
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(LocalServersTest, PrometheusScrapesTheServers) {
  if (!std::filesystem::exists("/usr/bin/prometheus")) GTEST_SKIP() << "no /usr/bin/prometheus";
  auto server =
      ServerProcess::Start({"a", kModels, {"identity_fp32"}, {}}, ProcessOptions("a.log"));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  PrometheusOptions o;
  o.port = 0;
  o.log_file = dir_.path() / "prometheus.log";
  o.scrape_interval = 1s;
  auto prometheus = PrometheusProcess::Start(o);  // no targets yet
  ASSERT_TRUE(prometheus.ok()) << prometheus.status().ToString();
  const int port = (*prometheus)->port();
  EXPECT_EQ(HttpGetStatus(port, "/-/ready", 5s), 200);
  // Added while it runs, as for a new replica (file_sd).
  ASSERT_TRUE((*prometheus)->SetTargets({(*server)->metrics_port()}).ok());
  // The first scrape comes a few seconds after start: poll the query API, bounded.
  const std::string target = "127.0.0.1:" + std::to_string((*server)->metrics_port());
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::string body;
  while (std::chrono::steady_clock::now() < deadline) {
    body = HttpGet(port, "/api/v1/query?query=up", 5s).body;
    if (body.find(target) != std::string::npos && body.find("\"1\"]") != std::string::npos) break;
    (*prometheus)->process().WaitExit(200ms);  // the poll interval; ends early if it dies
  }
  EXPECT_NE(body.find(target), std::string::npos) << body;
  EXPECT_NE(body.find("\"1\"]"), std::string::npos) << body;  // up == 1
  const pid_t pid = (*prometheus)->process().pid();
  prometheus->reset();
  EXPECT_TRUE(Gone(pid));
}

}  // namespace
}  // namespace quiver::gateway

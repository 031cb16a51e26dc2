// `quiver up` as a process: it starts its servers, prints their URLs, and leaves no child
// behind on SIGINT or when it is killed with SIGKILL.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gateway/local/child_process.h"
#include "gateway/local/http_probe.h"
#include "testing/temp_repository.h"

namespace quiver::gateway {
namespace {

using namespace std::chrono_literals;

struct Started {
  std::unique_ptr<ChildProcess> up;
  std::string out;
  std::vector<pid_t> server_pids;
  std::vector<int> http_ports;
  int gateway_http = 0;
};

class UpCliTest : public ::testing::Test {
 protected:
  UpCliTest() {
    dir_.Write("facility.yaml",
               "servers:\n"
               "  - name: a\n"
               "    model_repository: " QUIVER_SOURCE_DIR
               "/models\n"
               "    models: [identity_fp32]\n"
               "  - name: b\n"
               "    model_repository: " QUIVER_SOURCE_DIR
               "/models\n"
               "    models: [identity_bytes]\n");
  }
  // Starts `quiver up` (with the test's facility.yaml unless `embedded`) and reads its stdout
  // up to "Ctrl-C stops everything."
  Started Up(bool embedded = false) {
    Started s;
    std::vector<std::string> argv = {
        QUIVER_BINARY,    "up", "--log-dir",   (dir_.path() / "logs").string(),
        "--http-port",    "0",  "--grpc-port", "0",
        "--metrics-port", "0"};
    if (!embedded) argv.insert(argv.end(), {"--config", (dir_.path() / "facility.yaml").string()});
    auto up = ChildProcess::Spawn({argv, dir_.path() / "up.log", true});
    EXPECT_TRUE(up.ok()) << up.status().ToString();
    if (!up.ok()) return s;
    s.up = std::move(up).value();
    std::string line;
    char c;
    while (::read(s.up->stdout_fd(), &c, 1) == 1) {
      if (c != '\n') {
        line += c;
        continue;
      }
      s.out += line + "\n";
      int pid = 0, http = 0;
      if (const auto at = line.find("http://127.0.0.1:"); line.find("  server ") == 0) {
        std::sscanf(line.c_str() + at, "http://127.0.0.1:%d", &http);
        std::sscanf(line.c_str() + line.rfind("pid "), "pid %d", &pid);
        s.server_pids.push_back(pid);
        s.http_ports.push_back(http);
      }
      if (line.find("  gateway ") == 0) {
        std::sscanf(line.c_str() + line.find("http://"), "http://127.0.0.1:%d", &s.gateway_http);
      }
      if (line == "Ctrl-C stops everything.") break;
      line.clear();
    }
    return s;
  }
  testing::TempRepository dir_{"up-cli"};
};

TEST_F(UpCliTest, StartsTheServersAndStopsThemOnSigint) {
  Started s = Up();
  ASSERT_TRUE(s.up);
  ASSERT_EQ(s.server_pids.size(), 2u) << s.out << s.up->LogTail();
  EXPECT_EQ(HttpGetStatus(s.http_ports[0], "/v2/models/identity_fp32/ready", 5s), 200);
  EXPECT_EQ(HttpGetStatus(s.http_ports[1], "/v2/models/identity_bytes/ready", 5s), 200);
  EXPECT_NE(s.out.find("logs        " + (dir_.path() / "logs").string()), std::string::npos);
  EXPECT_NE(s.out.find("QUIVER_READY http="), std::string::npos) << s.out;
  // The gateway has both servers as upstreams: each one's model is ready through it.
  ASSERT_GT(s.gateway_http, 0) << s.out;
  EXPECT_EQ(HttpGetStatus(s.gateway_http, "/v2/models/identity_fp32/ready", 5s), 200);
  EXPECT_EQ(HttpGetStatus(s.gateway_http, "/v2/models/identity_bytes/ready", 5s), 200);
  EXPECT_NE(HttpGetStatus(s.gateway_http, "/v2/models/simple_mlp/ready", 5s), 200);

  // As Ctrl-C on a terminal: SIGINT to the whole process group of `quiver up`. The servers
  // are in groups of their own, so only `quiver up` gets it, and it stops them.
  for (pid_t pid : s.server_pids) EXPECT_EQ(::getpgid(pid), pid);
  ::kill(-s.up->pid(), SIGINT);
  ASSERT_TRUE(s.up->WaitExit(60s));
  EXPECT_EQ(s.up->ExitDescription(), "exit code 0") << s.up->LogTail();
  for (pid_t pid : s.server_pids) {  // `quiver up` reaped them before it exited
    EXPECT_EQ(::kill(pid, 0), -1) << pid;
  }
}

// The embedded deploy/facility.yaml: the test bed's taggers, from this tree's models/ (the
// test runs below the build folder, inside the source tree).
TEST_F(UpCliTest, DefaultFacilityServesTheTestBedModels) {
  Started s = Up(/*embedded=*/true);
  ASSERT_TRUE(s.up);
  ASSERT_EQ(s.server_pids.size(), 2u) << s.out << s.up->LogTail();
  EXPECT_NE(
      s.out.find("the embedded deploy/facility.yaml (paths from " QUIVER_SOURCE_DIR "/deploy)"),
      std::string::npos)
      << s.out;
  for (const char* model : {"emj_gnn", "emj_dnn", "emj_event"}) {
    EXPECT_EQ(HttpGetStatus(s.gateway_http, std::string("/v2/models/") + model + "/ready", 5s), 200)
        << model;
  }
  EXPECT_NE(HttpGetStatus(s.http_ports[0], "/v2/models/emj_event/ready", 5s), 200);  // s1
  ::kill(s.up->pid(), SIGTERM);
  ASSERT_TRUE(s.up->WaitExit(60s));
  EXPECT_EQ(s.up->ExitDescription(), "exit code 0") << s.up->LogTail();
}

TEST_F(UpCliTest, PrintsTheEmbeddedDefault) {
  auto up = ChildProcess::Spawn(
      {{QUIVER_BINARY, "up", "--print-default-config"}, dir_.path() / "up.log", true});
  ASSERT_TRUE(up.ok());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read((*up)->stdout_fd(), buf, sizeof buf)) > 0;) out.append(buf, n);
  ASSERT_TRUE((*up)->WaitExit(60s));
  std::ifstream file(QUIVER_SOURCE_DIR "/deploy/facility.yaml");
  const std::string expected((std::istreambuf_iterator<char>(file)),
                             std::istreambuf_iterator<char>());
  EXPECT_EQ(out, expected);
}

TEST_F(UpCliTest, BadConfigFailsNamingTheKey) {
  dir_.Write("bad.yaml", "servers:\n  - model_repository: /nonexistent\n");
  auto up =
      ChildProcess::Spawn({{QUIVER_BINARY, "up", "--config", (dir_.path() / "bad.yaml").string(),
                            "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"},
                           dir_.path() / "up.log",
                           false});
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE((*up)->WaitExit(60s));
  EXPECT_EQ((*up)->ExitDescription(), "exit code 1");
  EXPECT_NE((*up)->LogTail().find("servers[0].model_repository: no directory /nonexistent"),
            std::string::npos)
      << (*up)->LogTail();
}

TEST_F(UpCliTest, SigintWhileTheServersStartStopsWithoutWaitingForThem) {
  // A server that never gets ready: its model's config.pbtxt is a FIFO nobody writes, so
  // loading it blocks (and SIGTERM does not end it: the pool has to SIGKILL it).
  dir_.MakeDir("stuck/hang");
  ASSERT_EQ(::mkfifo((dir_.path() / "stuck/hang/config.pbtxt").c_str(), 0600), 0);
  dir_.Write("stuck.yaml", "servers:\n  - model_repository: stuck\n    models: [hang]\n");
  auto up =
      ChildProcess::Spawn({{QUIVER_BINARY, "up", "--config", (dir_.path() / "stuck.yaml").string(),
                            "--log-dir", (dir_.path() / "logs").string(), "--http-port", "0",
                            "--grpc-port", "0", "--metrics-port", "0"},
                           dir_.path() / "up.log",
                           true});
  ASSERT_TRUE(up.ok());
  std::string out;
  char c;
  // "  logs ..." is printed just before the servers are started.
  while (out.find("  logs") == std::string::npos && ::read((*up)->stdout_fd(), &c, 1) == 1) {
    out += c;
  }
  ::kill((*up)->pid(), SIGINT);
  // The start timeout is 120 s; the pool gives up at once and kills the stuck server.
  ASSERT_TRUE((*up)->WaitExit(30s)) << out;
  EXPECT_EQ((*up)->ExitDescription(), "exit code 1");
  EXPECT_NE((*up)->LogTail().find("interrupted while the servers were starting"), std::string::npos)
      << (*up)->LogTail();
}

// autoscale.provider local: the autoscaler keeps min_replicas of a model through the same
// pool; the replica becomes an upstream and stops with the rest.
TEST_F(UpCliTest, AutoscalesLocalReplicas) {
  dir_.Write("facility.yaml", "servers: [{name: a, model_repository: " QUIVER_SOURCE_DIR
                              "/models, models: [identity_fp32]}]\n"
                              "autoscale:\n"
                              "  provider: local\n"
                              "  interval_ms: 200\n"
                              "  model_repository: " QUIVER_SOURCE_DIR
                              "/models\n"
                              "  models: {identity_bytes: {min_replicas: 1, max_replicas: 2}}\n");
  Started s = Up();
  ASSERT_TRUE(s.up);
  ASSERT_EQ(s.server_pids.size(), 1u) << s.out << s.up->LogTail();
  // The replica starts after the gateway listens: poll the gateway, bounded.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int ready = -1;
  while (std::chrono::steady_clock::now() < deadline &&
         (ready = HttpGetStatus(s.gateway_http, "/v2/models/identity_bytes/ready", 5s)) != 200) {
    ASSERT_FALSE(s.up->WaitExit(100ms)) << s.up->LogTail();  // the interval; fails if up dies
  }
  EXPECT_EQ(ready, 200);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "logs" / "replica-identity_bytes-1.log"));
  ::kill(s.up->pid(), SIGTERM);
  ASSERT_TRUE(s.up->WaitExit(60s));
  EXPECT_EQ(s.up->ExitDescription(), "exit code 0") << s.up->LogTail();
}

TEST_F(UpCliTest, ServersDieWithAKilledUp) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // orphans come to us: we reap them
  Started s = Up();
  ASSERT_TRUE(s.up);
  ASSERT_EQ(s.server_pids.size(), 2u) << s.out << s.up->LogTail();
  ::kill(s.up->pid(), SIGKILL);
  ASSERT_TRUE(s.up->WaitExit(60s));
  for (pid_t pid : s.server_pids) {
    // PDEATHSIG (SIGKILL): wait for the exit on a pidfd, bounded, then reap it.
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    ASSERT_GE(fd, 0) << pid;
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 60000), 1) << "server " << pid << " still running";
    ::close(fd);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, WNOHANG), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << status << "\n"
        << FileTail(dir_.path() / "logs" / (pid == s.server_pids[0] ? "a.log" : "b.log"), 10);
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace quiver::gateway

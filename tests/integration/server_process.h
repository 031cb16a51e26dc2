#pragma once
// ServerProcess: one `quiver serve` child for multi-process tests, on ephemeral ports,
// optionally started through a wrapper command (another network or mount namespace).
// Killed (if still alive) and reaped on destruction.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace quiver::testing {

class ServerProcess {
 public:
  struct Options {
    std::string repository{};
    std::string address = "127.0.0.1";     // --http-address and --grpc-address
    std::vector<std::string> wrapper{};    // e.g. {"ip", "netns", "exec", "ns"}; execs quiver
    std::vector<std::string> extra_args{}; // more `quiver serve` flags
    // When set, the whole command line after the quiver binary (e.g. a `gateway` with its
    // flags) instead of `serve` and the options above.
    std::vector<std::string> command{};
  };

  explicit ServerProcess(Options options) : address_(options.address) {
    int out[2];
    if (::pipe(out) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<std::string> args = options.wrapper;
    args.emplace_back(QUIVER_BINARY);
    if (!options.command.empty()) {
      args.insert(args.end(), options.command.begin(), options.command.end());
    } else {
      for (const char* a : {"serve", "--http-port", "0", "--grpc-port", "0", "--allow-metrics",
                            "false"}) {
        args.emplace_back(a);
      }
      for (const std::string& a : {std::string("--model-repository"), options.repository,
                                   std::string("--http-address"), options.address,
                                   std::string("--grpc-address"), options.address}) {
        args.push_back(a);
      }
      args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      pid_ = -1;
      ::close(out[0]);
      return;
    }
    // Blocks until the server prints its ports (or exits: EOF).
    FILE* stream = ::fdopen(out[0], "r");
    char line[256];
    while (std::fgets(line, sizeof line, stream) != nullptr) {
      if (std::sscanf(line, "QUIVER_READY http=%d grpc=%d metrics=%d", &http_port_, &grpc_port_,
                      &metrics_port_) >= 2) {
        break;
      }
    }
    stdout_ = stream;  // kept open so the child never writes into a closed pipe
  }
  ~ServerProcess() {
    Kill();
    if (stdout_ != nullptr) std::fclose(stdout_);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return pid_ > 0 && http_port_ > 0 && grpc_port_ > 0; }
  int port(std::string_view scheme) const {
    if (scheme == "metrics") return metrics_port_;
    return scheme == "http" ? http_port_ : grpc_port_;
  }
  std::string Url(std::string_view scheme) const {
    return std::string(scheme) + "://" + address_ + ":" + std::to_string(port(scheme));
  }
  pid_t pid() const { return pid_; }
  // SIGTERM and wait: a graceful stop.
  void Terminate() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // SIGKILL: no draining, connections reset mid-request.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  std::string address_;
  pid_t pid_ = -1;
  int http_port_ = 0;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  FILE* stdout_ = nullptr;
};

}  // namespace quiver::testing

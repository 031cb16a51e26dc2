#include "gateway/local/server_process.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace quiver::gateway {

std::vector<std::string> ServerProcess::CommandLine(const ServerSpec& spec,
                                                    const std::filesystem::path& quiver_binary) {
  std::vector<std::string> argv = {
      quiver_binary.string(), "serve",    "--model-repository", spec.model_repository.string(),
      "--model-control-mode", "explicit", "--http-port",        "0",
      "--grpc-port",          "0",        "--metrics-port",     "0"};
  if (spec.models.empty()) argv.insert(argv.end(), {"--load-model", "*"});
  for (const auto& m : spec.models) argv.insert(argv.end(), {"--load-model", m});
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  return argv;
}

std::string ServerProcess::MetricsUrl() const {
  if (metrics_port_ == 0) return "";
  return "http://127.0.0.1:" + std::to_string(metrics_port_) + "/metrics";
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::Start(const ServerSpec& spec,
                                                            const ServerProcessOptions& options) {
  SpawnOptions spawn;
  spawn.argv = CommandLine(spec, options.quiver_binary);
  spawn.log_file = options.log_file;
  spawn.capture_stdout = true;
  // Not SIGTERM: see SpawnOptions::death_signal (several SIGTERMs made quiver serve exit 1
  // or crash). Its only client, the gateway, died with us anyway.
  spawn.death_signal = SIGKILL;
  auto child = ChildProcess::Spawn(spawn);
  if (!child.ok()) return child.status();
  std::unique_ptr<ServerProcess> server(new ServerProcess(spec, std::move(child).value()));
  QUIVER_RETURN_IF_ERROR(server->WaitReady(options));
  return server;
}

Status ServerProcess::WaitReady(const ServerProcessOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
  std::string out;  // stdout so far; the ready line is the first thing the server prints
  auto fail = [&](std::string why) {
    child_->Stop(std::chrono::seconds(5));
    std::string tail = child_->LogTail();
    return Status::Unavailable("server '" + spec_.name + "' " + why + " (log " +
                               child_->log_file().string() + ")" +
                               (tail.empty() ? "" : ":\n" + tail));
  };
  while (true) {
    for (size_t eol; (eol = out.find('\n')) != std::string::npos; out.erase(0, eol + 1)) {
      const std::string line = out.substr(0, eol);
      if (std::sscanf(line.c_str(), "QUIVER_READY http=%d grpc=%d metrics=%d", &http_port_,
                      &grpc_port_, &metrics_port_) == 3) {
        if (grpc_port_ > 0) return Status::Ok();
        return fail("started without gRPC (the gateway's upstreams are gRPC)");
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail("was not ready within " + std::to_string(options.start_timeout.count()) + " ms");
    }
    std::vector<pollfd> fds = {{child_->stdout_fd(), POLLIN, 0}};
    for (int fd : options.cancel_fds) fds.push_back({fd, POLLIN, 0});
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return fail(std::string("poll: ") + std::strerror(errno));
    if (n <= 0) continue;
    if (std::any_of(fds.begin() + 1, fds.end(), [](const pollfd& p) { return p.revents != 0; })) {
      child_->Stop(std::chrono::seconds(5));
      return Status::Cancelled("start of server '" + spec_.name + "' cancelled");
    }
    char buf[512];
    const ssize_t got = ::read(child_->stdout_fd(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {  // EOF: the server exited (or closed stdout) before it was ready
      child_->WaitExit(std::chrono::seconds(5));
      return fail("exited before it was ready: " + child_->ExitDescription());
    }
    out.append(buf, static_cast<size_t>(got));
  }
}

}  // namespace quiver::gateway

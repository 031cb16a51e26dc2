// A parent for PDEATHSIG tests: starts one `quiver serve` through ServerProcess, prints
// "PID <server pid>" and waits to be killed.
// Usage: quiver_local_spawn_helper <quiver binary> <model repository> <model> <log file>

#include <unistd.h>

#include <cstdio>

#include "gateway/local/server_process.h"

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  quiver::gateway::ServerSpec spec{"orphan", argv[2], {argv[3]}, {}};
  quiver::gateway::ServerProcessOptions options;  // no cancel fds
  options.quiver_binary = argv[1];
  options.log_file = argv[4];
  auto server = quiver::gateway::ServerProcess::Start(spec, options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("PID %d\n", static_cast<int>((*server)->pid()));
  std::fflush(stdout);
  while (true) ::pause();
}

#pragma once
// `quiver serve`: the Triton-compatible inference server process. An Engine over one or
// more model repositories, served by the KServe v2 HTTP/REST and gRPC frontends, with
// Triton's command-line flag names so existing launch scripts and clients work unchanged.
//
// Protocol with the parent process: once every enabled server is listening, exactly one
// line `QUIVER_READY http=<port> grpc=<port>` is written to stdout and flushed (the bound
// ports, so port 0 = ephemeral works; 0 for a disabled server). Logs go to stderr.
// SIGTERM or SIGINT stop accepting, let in-flight requests finish (up to
// --exit-timeout-secs) and exit 0; a second signal during that exits at once (code 1).

#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::cli {

// The flags of `quiver serve`; defaults are Triton's except the bind addresses
// (loopback, not 0.0.0.0: exposing the server is an explicit choice).
struct ServeOptions {
  std::vector<std::string> model_repositories;  // --model-repository (repeatable)
  std::string model_control_mode = "none";      // none | poll | explicit
  int repository_poll_secs = 15;                // poll mode; 0 = no background polling
  std::vector<std::string> load_models;         // explicit mode: loaded at start ("*" = all)
  bool exit_on_error = true;   // exit 1 when a model fails to load at start (Triton's default)
  int exit_timeout_secs = 30;  // how long shutdown waits for in-flight requests

  bool allow_http = true;
  std::string http_address = "127.0.0.1";
  int http_port = 8000;       // 0 = ephemeral
  int http_thread_count = 0;  // 0 = one per CPU this process may run on (UsableCpus)

  bool allow_grpc = true;
  std::string grpc_address = "127.0.0.1";
  int grpc_port = 8001;       // 0 = ephemeral
  int grpc_thread_count = 0;  // 0 = frontend::DefaultGrpcThreads()

  bool allow_metrics = true;
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 8002;  // 0 = ephemeral
};

// Adds the `serve` subcommand, its flags bound to `options`, to `app`.
CLI::App* AddServeCommand(CLI::App& app, ServeOptions& options);

// Runs the server until SIGTERM/SIGINT; returns the process exit code (0 after a clean
// shutdown, 1 when startup fails: bad flags, missing repository, port in use, or a model
// that failed to load while exit_on_error). Installs process-wide SIGTERM/SIGINT handlers
// (they only write to a self-pipe) and ignores SIGPIPE; call once, from the main thread.
int RunServe(const ServeOptions& options);

}  // namespace quiver::cli

// quiver_echo_server: the transport floor (issue 9, item 6). KServe v2 over HTTP and gRPC
// with the frontends' libraries and server settings but no engine: ModelInfer returns its
// inputs. perf_analyzer against it and against `quiver serve` (identity_fp32) tells what
// Quiver adds on top of the bare transport; see scripts/bench-echo and docs/benchmarks.md.
//
//   quiver_echo_server [--http-port 8000] [--grpc-port 8001] [--address 127.0.0.1]
//                      [--http-thread-count 0]
// prints `QUIVER_READY http=P grpc=Q` once listening, stops on SIGTERM/SIGINT (exit 0).

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "bench/echo_grpc.h"
#include "bench/echo_http.h"
#include "bench/echo_model.h"

int main(int argc, char** argv) {
  // Blocked before any thread starts, so that every thread inherits the mask and the
  // signals wait for sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"KServe v2 echo server (identity_fp32, no engine): the transport floor"};
  std::string address = "127.0.0.1";
  int http_port = 8000;
  int grpc_port = 8001;
  int http_threads = 0;
  app.add_option("--address", address, "address of both servers")->capture_default_str();
  app.add_option("--http-port", http_port, "HTTP port (0 = any free one)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--grpc-port", grpc_port, "gRPC port (0 = any free one)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--http-thread-count", http_threads,
                 "HTTP I/O threads (0 = one per hardware thread, as quiver serve)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  quiver::bench::EchoModel model;
  quiver::bench::EchoHttpServer http(
      model, {address, static_cast<uint16_t>(http_port), http_threads, size_t{1} << 30});
  quiver::bench::EchoGrpcServer grpc(model, address, grpc_port);
  for (quiver::Status s : {http.Start(), grpc.Start()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "quiver_echo_server: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf("QUIVER_READY http=%d grpc=%d\n", static_cast<int>(http.port()), grpc.port());
  std::fflush(stdout);

  int signo = 0;
  sigwait(&stop_signals, &signo);
  grpc.Stop();
  http.Stop();
  return 0;
}

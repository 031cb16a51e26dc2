#pragma once
// PrometheusProcess: Debian's prometheus as a child, scraping the facility's metrics ports
// on 127.0.0.1, with its storage in a temporary directory removed at stop.
//
// Targets live in a file_sd file that Prometheus re-reads on change, so SetTargets
// follows replicas that come and go without a restart.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/local/child_process.h"

namespace quiver::gateway {

struct PrometheusOptions {
  std::filesystem::path binary = "/usr/bin/prometheus";
  int port = 9090;                 // 127.0.0.1:port; 0 = a free port chosen here
  std::filesystem::path log_file;  // its stderr and stdout
  std::vector<int> metrics_ports;  // scraped at 127.0.0.1:<port>/metrics
  std::chrono::milliseconds scrape_interval{2000};
  std::chrono::milliseconds start_timeout{60000};
};

// Not thread-safe. The destructor stops it and removes its storage.
class PrometheusProcess {
 public:
  // Writes the config, starts Prometheus and waits until /-/ready answers 200.
  // UNAVAILABLE (with the log's tail) when it exits first or is not ready in time;
  // NOT_FOUND when the binary is missing.
  static Result<std::unique_ptr<PrometheusProcess>> Start(const PrometheusOptions& options);
  ~PrometheusProcess();
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  int port() const { return port_; }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Replaces the scraped ports (atomically: write, then rename).
  Status SetTargets(const std::vector<int>& metrics_ports);
  ChildProcess& process() { return *child_; }

 private:
  PrometheusProcess() = default;
  std::filesystem::path dir_;  // config, targets, storage
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
};

}  // namespace quiver::gateway

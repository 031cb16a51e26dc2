#include "gateway/local/prometheus_process.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/files.h"
#include "gateway/local/http_probe.h"

namespace quiver::gateway {

Result<std::unique_ptr<PrometheusProcess>> PrometheusProcess::Start(
    const PrometheusOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(options.binary, ec))
    return Status::NotFound("no prometheus at " + options.binary.string() +
                            " (Debian package 'prometheus')");
  std::unique_ptr<PrometheusProcess> p(new PrometheusProcess());
  std::string tmpl = (std::filesystem::temp_directory_path() / "quiver-prometheus-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Status::Unavailable(std::string("mkdtemp: ") + std::strerror(errno));
  p->dir_ = tmpl;
  QUIVER_RETURN_IF_ERROR(p->SetTargets(options.metrics_ports));
  const auto interval = std::to_string(options.scrape_interval.count()) + "ms";
  {
    std::ofstream config(p->dir_ / "prometheus.yml");
    config << "global:\n  scrape_interval: " << interval << "\n  scrape_timeout: " << interval
           << "\n  evaluation_interval: " << interval
           << "\nscrape_configs:\n  - job_name: quiver\n    metrics_path: /metrics\n"
           << "    file_sd_configs:\n      - files: ['" << (p->dir_ / "targets.json").string()
           << "']\n        refresh_interval: 5s\n";
    if (!config)
      return Status::Unavailable("cannot write " + (p->dir_ / "prometheus.yml").string());
  }
  p->port_ = options.port != 0 ? options.port : PickFreePort();
  if (p->port_ == 0) return Status::Unavailable("no free port for prometheus");
  SpawnOptions spawn;
  spawn.argv = {options.binary.string(), "--config.file=" + (p->dir_ / "prometheus.yml").string(),
                "--storage.tsdb.path=" + (p->dir_ / "data").string(),
                "--web.listen-address=127.0.0.1:" + std::to_string(p->port_)};
  spawn.log_file = options.log_file;
  auto child = ChildProcess::Spawn(spawn);
  if (!child.ok()) return child.status();
  p->child_ = std::move(child).value();
  // Prometheus has no ready line of its own: poll /-/ready, waiting on its pidfd between
  // tries so that an early exit is seen at once.
  const auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
  while (HttpGetStatus(p->port_, "/-/ready", std::chrono::milliseconds(1000)) != 200) {
    if (p->child_->WaitExit(std::chrono::milliseconds(100)) ||
        std::chrono::steady_clock::now() > deadline) {
      const bool exited = p->child_->Exited();
      p->child_->Stop(std::chrono::seconds(5));
      return Status::Unavailable(
          "prometheus on 127.0.0.1:" + std::to_string(p->port_) +
          (exited ? " exited (" + p->child_->ExitDescription() + ")" : " was not ready in time") +
          "; log " + options.log_file.string() + ":\n" + p->child_->LogTail());
    }
  }
  return p;
}

PrometheusProcess::~PrometheusProcess() {
  if (child_) child_->Stop(std::chrono::seconds(10));
  if (!dir_.empty()) RemoveTree(dir_);
}

Status PrometheusProcess::SetTargets(const std::vector<int>& metrics_ports) {
  std::string list;
  for (int port : metrics_ports) {
    list += (list.empty() ? "\"127.0.0.1:" : ", \"127.0.0.1:") + std::to_string(port) + "\"";
  }
  const auto tmp = dir_ / "targets.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "[{\"targets\": [" << list << "], \"labels\": {\"facility\": \"quiver-up\"}}]\n";
    if (!out) return Status::Unavailable("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir_ / "targets.json", ec);
  if (ec) return Status::Unavailable("cannot replace the targets file: " + ec.message());
  return Status::Ok();
}

}  // namespace quiver::gateway

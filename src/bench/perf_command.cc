#include "bench/perf_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/perf_inputs.h"
#include "bench/perf_load.h"
#include "bench/perf_report.h"
#include "client/client.h"
#include "client/grpc_service.h"
#include "client/http_service.h"
#include "client/local_service.h"
#include "core/strings.h"

namespace quiver::bench {
namespace {

void Fail(const Status& status) { std::cerr << "quiver perf: " << status.ToString() << "\n"; }

// `what` plus the endpoint, unless the transport's message names it already.
Status InContext(const Status& status, const std::string& what, const std::string& endpoint) {
  if (status.message().find(endpoint) != std::string::npos) return status.WithContext(what);
  return status.WithContext(endpoint + ": " + what);
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("--input-data: cannot read " + Quoted(path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::Internal("cannot write " + Quoted(path));
  return Status::Ok();
}

std::string LevelName(LoadMode mode, double level) {
  return mode == LoadMode::kConcurrency ? fmt::format("concurrency {}", level)
                                        : fmt::format("request rate {:g}/s", level);
}

// The client library over `plan.client_url`, as an analysis would use it, but with one
// attempt per call (a load generator must see every failure). Remote transports are made
// here with `remote` (shm for every input under --shared-memory system, as perf_analyzer)
// and returned through `grpc` / `http` for the shm report.
Result<std::shared_ptr<InferenceService>> MakeClient(
    const PerfPlan& plan, const client::RemoteOptions& remote,
    std::shared_ptr<client::GrpcService>& grpc,
    std::vector<std::shared_ptr<client::HttpService>>& http) {
  client::ClientOptions options;
  options.urls = {plan.client_url};
  options.retry.max_attempts = 1;
  options.connections = plan.connections;
  options.shared_memory = plan.shared_memory;
  options.token = plan.token;
  options.max_in_flight = std::max<size_t>(
      options.max_in_flight,
      plan.mode == LoadMode::kConcurrency ? static_cast<size_t>(plan.levels.back()) : 0);
  auto open = [&](const client::Url& url, const client::ClientOptions& o)
      -> Result<std::shared_ptr<InferenceService>> {
    if (url.scheme == client::Scheme::kLocal) return client::OpenService(url, o);
    if (url.scheme == client::Scheme::kGrpc) {
      grpc = std::make_shared<client::GrpcService>(remote);
      return std::shared_ptr<InferenceService>(grpc);
    }
    http.push_back(std::make_shared<client::HttpService>(remote));
    return std::shared_ptr<InferenceService>(http.back());
  };
  auto made = client::Client::Create(std::move(options), open);
  if (!made.ok()) return made.status();
  return std::shared_ptr<InferenceService>(std::move(made).value());
}

}  // namespace

int RunPerf(const PerfOptions& options) {
  client::EnableLocalUrls();  // -u local:///repo
  auto plan_or = MakePerfPlan(options);
  if (!plan_or.ok()) {
    Fail(plan_or.status());
    return kPerfBadFlags;
  }
  const PerfPlan& plan = *plan_or;

  // The single-endpoint transports: no retries, no failover (a load generator must see
  // every failure).
  client::RemoteOptions remote;
  remote.host = plan.endpoint.host;
  remote.port = plan.endpoint.port;
  remote.connections = plan.connections;
  remote.shared_memory = plan.shared_memory;
  remote.shared_memory_min_bytes = 0;  // --shared-memory system: every input, as perf_analyzer
  remote.token = plan.token;
  // Metadata, statistics and shm registration may be slow on a loaded machine (a server
  // pinned to a busy core): a load generator waits rather than failing its run.
  remote.connect_timeout = std::chrono::seconds(30);
  // gRPC: one service, its calls round-robin over `connections` channels (gRPC runs the
  // completions on its own threads). HTTP: one single-connection service per connection,
  // each with its own I/O thread, used by one concurrent request each (perf_analyzer's
  // synchronous mode: a thread and a connection per concurrent request).
  std::shared_ptr<client::GrpcService> grpc;
  std::vector<std::shared_ptr<client::HttpService>> http;
  std::vector<std::shared_ptr<InferenceService>> services;
  if (!plan.client_url.empty()) {
    auto made = MakeClient(plan, remote, grpc, http);
    if (!made.ok()) {
      Fail(made.status());
      return kPerfError;
    }
    services.push_back(std::move(made).value());
  } else if (plan.protocol == PerfProtocol::kGrpc) {
    grpc = std::make_shared<client::GrpcService>(remote);
    services.push_back(grpc);
  } else {
    remote.connections = 1;
    for (size_t i = 0; i < plan.connections; ++i) {
      http.push_back(std::make_shared<client::HttpService>(remote));
      services.push_back(http.back());
    }
  }
  const std::shared_ptr<InferenceService>& service = services.front();
  const std::string endpoint = !plan.client_url.empty() ? plan.client_url
                               : grpc                    ? grpc->endpoint()
                                                         : http.front()->endpoint();

  auto metadata = service->GetModelMetadata(plan.model, plan.version);
  if (!metadata.ok()) {
    Fail(InContext(metadata.status(), "model " + Quoted(plan.model), endpoint));
    return kPerfError;
  }
  auto config = service->GetModelConfig(plan.model, plan.version);
  if (!config.ok()) {
    Fail(InContext(config.status(), "config of " + Quoted(plan.model), endpoint));
    return kPerfError;
  }
  const int64_t max_batch_size = config->max_batch_size();
  if (max_batch_size == 0 && plan.batch > 1) {
    Fail(Status::InvalidArgument(fmt::format("-b {}: model '{}' does not batch (max_batch_size 0)",
                                             plan.batch, plan.model)));
    return kPerfBadFlags;
  }
  if (max_batch_size > 0 && plan.batch > max_batch_size) {
    Fail(Status::InvalidArgument(fmt::format("-b {}: above the max_batch_size {} of model '{}'",
                                             plan.batch, max_batch_size, plan.model)));
    return kPerfBadFlags;
  }
  auto inputs = ResolveInputs(*metadata, max_batch_size, plan.shapes);
  if (!inputs.ok()) {
    Fail(inputs.status());
    return kPerfBadFlags;
  }
  std::vector<std::vector<Tensor>> samples;
  if (plan.input_data == InputDataKind::kFile) {
    auto text = ReadFile(plan.input_file);
    if (!text.ok()) {
      Fail(text.status());
      return kPerfBadFlags;
    }
    auto parsed = SamplesFromJson(*text, *inputs);
    if (!parsed.ok()) {
      Fail(parsed.status());
      return kPerfBadFlags;
    }
    samples = std::move(parsed).value();
  } else {
    samples.push_back(SyntheticSample(*inputs, plan.input_data == InputDataKind::kZero,
                                      plan.string_length, plan.seed));
  }
  std::vector<InferRequest> requests =
      MakeRequests(plan.model, plan.version, samples, plan.batch, max_batch_size > 0);

  ServerStatsFn stats = [&]() -> Result<ServerCounters> {
    auto s = service->GetStatistics(plan.model, plan.version);
    if (!s.ok()) return s.status();
    return SumStatistics(*s);
  };
  if (auto probe = stats(); !probe.ok()) {
    std::cerr << "quiver perf: no server statistics (" << probe.status().ToString()
              << "); the server columns are left out\n";
    stats = nullptr;
  }

  PerfRunInfo info;
  info.model = plan.model;
  info.endpoint = endpoint;
  info.protocol = plan.local                               ? "local"
                  : plan.protocol == PerfProtocol::kGrpc ? "grpc"
                                                          : "http";
  info.via_client = !plan.client_url.empty();
  info.mode = plan.mode;
  info.batch = plan.batch;
  info.measurement_interval_ms = plan.measurement_interval_ms;
  info.stability = plan.stability;
  info.percentile = plan.percentile;
  info.shared_memory = plan.shared_memory;
  info.server_statistics = static_cast<bool>(stats);
  info.input_data = plan.input_data == InputDataKind::kFile   ? plan.input_file
                    : plan.input_data == InputDataKind::kZero ? "zero"
                                                              : "random";

  std::shared_ptr<LoadGenerator> load;
  if (plan.mode == LoadMode::kConcurrency) {
    load = ConcurrencyLoad::Create(services, std::move(requests));
  } else {
    load = RequestRateLoad::Create(services, std::move(requests), plan.distribution, plan.seed);
  }
  ProfileConfig profile;
  profile.batch = plan.batch;
  profile.interval = std::chrono::milliseconds(plan.measurement_interval_ms);
  profile.stability = plan.stability;
  profile.max_trials = plan.max_trials;
  profile.percentile = plan.percentile;

  std::ostream& table = plan.json ? std::cerr : std::cout;
  table << TableHeader(info) << std::endl;
  std::vector<LevelResult> results;
  int code = kPerfOk;
  for (double level : plan.levels) {
    auto result = ProfileLevel(*load, level, profile, stats);
    if (!result.ok()) {
      Fail(result.status().WithContext(LevelName(plan.mode, level)));
      code = kPerfError;
      break;
    }
    table << TableRow(*result, info) << std::endl;
    if (!result->stable) {
      std::cerr << fmt::format(
          "quiver perf: {}: not stable within {} windows (throughput or latency varied by more "
          "than {:g}% over the last 3); reported as measured over those 3. Try a longer "
          "--measurement-interval.\n",
          LevelName(plan.mode, level), plan.max_trials, plan.stability * 100);
      code = kPerfUnstable;
    }
    results.push_back(*result);
    const uint64_t latency_ms = StabilizingLatencyNs(*result, plan.percentile) / 1'000'000;
    if (plan.latency_threshold_ms > 0 && latency_ms >= plan.latency_threshold_ms) {
      std::cerr << fmt::format("quiver perf: {}: latency {} ms reached the limit of {} ms\n",
                               LevelName(plan.mode, level), latency_ms, plan.latency_threshold_ms);
      break;
    }
  }

  if (plan.shared_memory && (grpc || !http.empty())) {
    info.shared_memory_used =
        grpc ? grpc->SharedMemoryInputs() > 0 : http.front()->SharedMemoryInputs() > 0;
    if (!info.shared_memory_used) {
      std::cerr << "quiver perf: --shared-memory system was asked for but not used (server not "
                   "on this host, or it refused the region); tensors travelled in the messages\n";
    }
  }
  if (!results.empty() && !plan.csv_file.empty()) {
    if (Status s = WriteFile(plan.csv_file, PerfCsv(results, info)); !s.ok()) {
      Fail(s);
      return kPerfError;
    }
  }
  if (plan.json) std::cout << PerfJson(results, info) << std::flush;
  return code;
}

}  // namespace quiver::bench

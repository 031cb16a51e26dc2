#include "bench/perf_options.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

#include "client/remote_service.h"
#include "client/url.h"
#include "core/strings.h"

namespace quiver::bench {
namespace {

// Levels of an open range (END 0) before the search gives up without crossing the
// latency threshold.
constexpr size_t kOpenLevels = 1024;

Status Bad(std::string_view flag, std::string_view text, std::string_view why) {
  return Status::InvalidArgument(std::string(flag) + " " + Quoted(text) + ": " + std::string(why));
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  for (;;) {
    const size_t end = text.find(sep, begin);
    parts.push_back(text.substr(begin, end == std::string_view::npos ? end : end - begin));
    if (end == std::string_view::npos) return parts;
    begin = end + 1;
  }
}

bool ParseDouble(std::string_view s, double& out) {
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(out);
}

bool ParseInt(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

void AddPerfFlags(CLI::App& c, PerfOptions& o) {
  c.add_option("-m,--model", o.model, "model name")->required();
  c.add_option("-x,--model-version", o.version, "model version (default: the server's)");
  c.add_option("-u,--url", o.url,
               "server host:port (speaks -i; default localhost:8000 / :8001 for grpc), "
               "grpc://host:port or http://host:port (the scheme chooses the protocol), or "
               "local:///path/to/repository: the in-process Engine through the client library");
  CLI::Option* protocol = c.add_option("-i,--protocol", o.protocol, "http|grpc")
                              ->check(CLI::IsMember({"http", "grpc"}))
                              ->capture_default_str();
  // The default and an explicit "-i http" look the same in o.protocol; only an explicit
  // one may contradict a URL's scheme.
  c.callback([&o, protocol] { o.protocol_given = protocol->count() > 0; });
  c.add_option("-b,--batch-size", o.batch, "batch size of each request")->capture_default_str();
  c.add_option("--shape", o.shapes,
               "NAME:D1,D2,... shape of a variable-shape input, "
               "without the batch dimension (repeatable)");
  c.add_option("--concurrency-range", o.concurrency_range,
               "START[:END[:STEP]] requests kept outstanding (default 1)");
  c.add_option("--request-rate-range", o.request_rate_range,
               "START[:END[:STEP]] requests per second sent regardless of completions");
  c.add_option("--request-distribution", o.request_distribution,
               "constant|poisson spacing of requests in request-rate mode")
      ->check(CLI::IsMember({"constant", "poisson"}))
      ->capture_default_str();
  c.add_option("--shared-memory", o.shared_memory,
               "none|system: inputs through POSIX shared memory (server on this host)")
      ->check(CLI::IsMember({"none", "system"}))
      ->capture_default_str();
  c.add_flag("--client", o.client,
             "send through the client library (client::Client: input checks against the "
             "model metadata, in-flight window; retries off) instead of the bare transport");
  c.add_option("-p,--measurement-interval", o.measurement_interval_ms,
               "measurement window in milliseconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c.add_option("-s,--stability-percentage", o.stability_percentage,
               "max/min of throughput and latency over the last 3 windows within this %")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c.add_option("-r,--max-trials", o.max_trials, "windows per level before giving up")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c.add_option("--percentile", o.percentile,
               "stabilise on this latency percentile (1-99) instead of the average")
      ->capture_default_str();
  c.add_option("-l,--latency-threshold", o.latency_threshold_ms,
               "stop the sweep once the stabilising latency reaches this many ms (0 = none)")
      ->capture_default_str();
  c.add_option("--input-data", o.input_data,
               "random|zero|<file.json> (perf_analyzer's {\"data\": [{INPUT: [...]}]})")
      ->capture_default_str();
  c.add_option("--string-length", o.string_length, "bytes per BYTES element of random data")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c.add_option("-f,--latency-report-file", o.csv_file, "CSV report (perf_analyzer's columns)");
  c.add_flag("--json", o.json, "print the results as JSON on stdout (the table goes to stderr)");
  c.add_option("--connections", o.connections,
               "HTTP connections / gRPC channels (default: one per concurrent request for "
               "HTTP, one channel per 6 for gRPC, as perf_analyzer)")
      ->check(CLI::NonNegativeNumber);
  c.add_option("--seed", o.seed, "seed of the random input data and poisson arrivals")
      ->capture_default_str();
  // Not perf_analyzer's (it has -H for any header): the gateway's tenant token.
  c.add_option("--token", o.token,
               "bearer token sent with every request (the gateway's tenants); default: the "
               "environment variable QUIVER_TOKEN")
      ->envname("QUIVER_TOKEN");
}

Result<Range> ParseRange(std::string_view flag, std::string_view text, bool integral) {
  const auto parts = Split(text, ':');
  if (parts.size() > 3) return Bad(flag, text, "expected START[:END[:STEP]]");
  double values[3] = {0, 0, 1};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (integral) {
      int64_t v = 0;
      if (!ParseInt(parts[i], v)) return Bad(flag, text, "parts must be whole numbers");
      values[i] = static_cast<double>(v);
    } else if (!ParseDouble(parts[i], values[i])) {
      return Bad(flag, text, "parts must be numbers");
    }
  }
  Range r{values[0], parts.size() >= 2 ? values[1] : values[0], values[2]};
  if (r.start <= 0) return Bad(flag, text, "START must be > 0");
  if (r.step <= 0) return Bad(flag, text, "STEP must be > 0");
  if (r.end < 0) return Bad(flag, text, "END must be >= 0");
  if (r.end != 0 && r.end < r.start) return Bad(flag, text, "END must be >= START (or 0)");
  return r;
}

std::vector<double> ExpandRange(const Range& range, size_t open_levels) {
  std::vector<double> levels;
  if (range.end == 0) {
    for (size_t i = 0; i < open_levels; ++i) {
      levels.push_back(range.start + static_cast<double>(i) * range.step);
    }
    return levels;
  }
  // Level i is computed from i (not accumulated) so that 0.1 steps do not drift.
  const double slack = range.step * 1e-9;
  for (size_t i = 0;; ++i) {
    const double level = range.start + static_cast<double>(i) * range.step;
    if (level > range.end + slack) break;
    levels.push_back(level);
  }
  return levels;
}

Result<std::pair<std::string, Shape>> ParseShapeFlag(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return Bad("--shape", text, "expected NAME:D1,D2,...");
  }
  Shape shape;
  for (std::string_view d : Split(text.substr(colon + 1), ',')) {
    int64_t v = 0;
    if (!ParseInt(d, v) || v <= 0) return Bad("--shape", text, "dimensions must be > 0");
    shape.push_back(v);
  }
  return std::pair{std::string(text.substr(0, colon)), std::move(shape)};
}

Result<Endpoint> ParseEndpoint(std::string_view text, PerfProtocol protocol) {
  const uint16_t default_port = protocol == PerfProtocol::kGrpc ? 8001 : 8000;
  if (text.empty()) return Endpoint{"localhost", default_port};
  if (text.find("://") != std::string_view::npos) {
    return Bad("-u", text, "expected host:port, without a scheme");
  }
  std::string_view rest = text;
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  Endpoint e;
  std::string_view port;
  if (rest.starts_with('[')) {  // [v6]:port
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return Bad("-u", text, "unclosed '['");
    e.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Bad("-u", text, "expected ':' after ']'");
      port = rest.substr(1);
      if (port.empty()) return Bad("-u", text, "empty port");
    }
  } else {
    const size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.find(':') != colon) {
      return Bad("-u", text, "an IPv6 address needs brackets: [addr]:port");
    }
    e.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return Bad("-u", text, "empty port");
    }
  }
  if (e.host.empty()) return Bad("-u", text, "empty host");
  if (e.host.find('/') != std::string::npos) return Bad("-u", text, "no path allowed");
  e.port = default_port;
  if (!port.empty()) {
    int64_t p = 0;
    if (!ParseInt(port, p) || p <= 0 || p > 65535) return Bad("-u", text, "bad port");
    e.port = static_cast<uint16_t>(p);
  }
  return e;
}

Result<RemoteTarget> ParseRemoteTarget(std::string_view text, std::optional<PerfProtocol> given) {
  if (text.find("://") == std::string_view::npos) {
    const PerfProtocol protocol = given.value_or(PerfProtocol::kHttp);
    auto endpoint = ParseEndpoint(text, protocol);
    if (!endpoint.ok()) return endpoint.status();
    return RemoteTarget{protocol, std::move(endpoint).value()};
  }
  auto url = client::ParseUrl(text);
  if (!url.ok()) return url.status().WithContext("-u");
  if (url->scheme == client::Scheme::kLocal) {
    return Bad("-u", text, "local:// is not a remote server");
  }
  const PerfProtocol scheme =
      url->scheme == client::Scheme::kGrpc ? PerfProtocol::kGrpc : PerfProtocol::kHttp;
  if (given.has_value() && *given != scheme) {
    // Never a silent switch: the user asked for two different things.
    return Status::InvalidArgument(
        fmt::format("-u {} is a {} URL but -i {} was given: drop -i or make them agree", text,
                    scheme == PerfProtocol::kGrpc ? "gRPC" : "HTTP",
                    *given == PerfProtocol::kGrpc ? "grpc" : "http"));
  }
  return RemoteTarget{scheme, Endpoint{std::move(url->host), url->port}};
}

Result<PerfPlan> MakePerfPlan(const PerfOptions& o) {
  PerfPlan plan;
  if (o.model.empty()) return Status::InvalidArgument("-m: a model name is required");
  plan.model = o.model;
  plan.version = o.version;
  if (o.protocol != "http" && o.protocol != "grpc") {
    return Bad("-i", o.protocol, "expected http or grpc");
  }
  plan.protocol = o.protocol == "grpc" ? PerfProtocol::kGrpc : PerfProtocol::kHttp;
  if (o.url.starts_with("local://")) {
    auto url = client::ParseUrl(o.url);
    if (!url.ok()) return url.status().WithContext("-u");
    plan.client_url = o.url;
    plan.local = true;
    if (o.shared_memory != "none") {
      return Bad("--shared-memory", o.shared_memory, "local:// runs in-process: use none");
    }
  } else {
    auto target =
        ParseRemoteTarget(o.url, o.protocol_given ? std::optional(plan.protocol) : std::nullopt);
    if (!target.ok()) return target.status();
    plan.protocol = target->protocol;
    plan.endpoint = target->endpoint;
    if (o.client) {
      const bool v6 = plan.endpoint.host.find(':') != std::string::npos;
      plan.client_url =
          fmt::format("{}://{}{}{}:{}", plan.protocol == PerfProtocol::kGrpc ? "grpc" : "http",
                      v6 ? "[" : "", plan.endpoint.host, v6 ? "]" : "", plan.endpoint.port);
    }
  }
  // Not Bad(): the message must not hold the token.
  if (Status s = client::CheckToken(o.token); !s.ok()) return s.WithContext("--token");
  plan.token = o.token;
  if (o.batch < 1) return Bad("-b", std::to_string(o.batch), "must be >= 1");
  plan.batch = o.batch;
  for (const std::string& s : o.shapes) {
    auto shape = ParseShapeFlag(s);
    if (!shape.ok()) return shape.status();
    plan.shapes[shape->first] = shape->second;
  }

  if (!o.concurrency_range.empty() && !o.request_rate_range.empty()) {
    return Status::InvalidArgument(
        "--concurrency-range and --request-rate-range cannot be used together");
  }
  Range range;
  if (!o.request_rate_range.empty()) {
    plan.mode = LoadMode::kRequestRate;
    auto r = ParseRange("--request-rate-range", o.request_rate_range, /*integral=*/false);
    if (!r.ok()) return r.status();
    range = *r;
  } else if (!o.concurrency_range.empty()) {
    auto r = ParseRange("--concurrency-range", o.concurrency_range, /*integral=*/true);
    if (!r.ok()) return r.status();
    range = *r;
  }
  if (range.end == 0 && o.latency_threshold_ms == 0) {
    return Status::InvalidArgument(
        "a range with END 0 searches until --latency-threshold: set -l (ms) too");
  }
  plan.open_ended = range.end == 0;
  plan.levels = ExpandRange(range, kOpenLevels);
  if (o.request_distribution != "constant" && o.request_distribution != "poisson") {
    return Bad("--request-distribution", o.request_distribution, "expected constant or poisson");
  }
  plan.distribution =
      o.request_distribution == "poisson" ? Distribution::kPoisson : Distribution::kConstant;

  if (o.shared_memory != "none" && o.shared_memory != "system") {
    return Bad("--shared-memory", o.shared_memory,
               "expected none or system (cuda is not supported)");
  }
  plan.shared_memory = o.shared_memory == "system";
  if (o.measurement_interval_ms == 0) return Bad("-p", "0", "must be > 0");
  plan.measurement_interval_ms = o.measurement_interval_ms;
  if (o.stability_percentage < 0) {
    return Bad("-s", std::to_string(o.stability_percentage), "must be >= 0");
  }
  plan.stability = o.stability_percentage / 100.0;
  if (o.max_trials < 1) return Bad("-r", std::to_string(o.max_trials), "must be >= 1");
  plan.max_trials = o.max_trials;
  if (o.percentile != -1 && (o.percentile < 1 || o.percentile > 99)) {
    return Bad("--percentile", std::to_string(o.percentile), "must be 1..99 (or -1)");
  }
  plan.percentile = o.percentile;
  plan.latency_threshold_ms = o.latency_threshold_ms;

  if (o.input_data == "random") {
    plan.input_data = InputDataKind::kRandom;
  } else if (o.input_data == "zero") {
    plan.input_data = InputDataKind::kZero;
  } else if (o.input_data.empty()) {
    return Bad("--input-data", o.input_data, "expected random, zero or a JSON file");
  } else {
    plan.input_data = InputDataKind::kFile;
    plan.input_file = o.input_data;
  }
  if (o.string_length < 0) return Bad("--string-length", std::to_string(o.string_length), "< 0");
  plan.string_length = o.string_length;
  plan.csv_file = o.csv_file;
  plan.json = o.json;
  plan.seed = o.seed;

  if (o.connections < 0) return Bad("--connections", std::to_string(o.connections), "< 0");
  if (o.connections > 0) {
    plan.connections = static_cast<size_t>(o.connections);
  } else {
    // The most requests outstanding at once: the highest concurrency; in request-rate
    // mode a guess (perf_analyzer's default --max-threads for that mode is 4).
    size_t outstanding = 16;
    if (plan.mode == LoadMode::kConcurrency) {
      outstanding = plan.open_ended ? 16 : static_cast<size_t>(plan.levels.back());
    }
    plan.connections = plan.protocol == PerfProtocol::kHttp ? outstanding : (outstanding + 5) / 6;
  }
  return plan;
}

}  // namespace quiver::bench

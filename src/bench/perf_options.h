#pragma once
// `quiver perf`: flags and their parsed form. The flags are perf_analyzer's (same names,
// same defaults, same meaning) so that a command line written for NVIDIA's tool runs here
// unchanged, for the subset this tool implements (see docs/benchmarks.md, "quiver perf").

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::bench {

// The flags as given.
struct PerfOptions {
  std::string model;              // -m
  std::string version;            // -x; "" = the server's default version
  std::string url;                // -u host:port or a grpc:// http:// local:// URL; "" = localhost
  std::string protocol = "http";  // -i http|grpc
  bool protocol_given = false;    // -i was on the command line
  int64_t batch = 1;              // -b
  std::vector<std::string> shapes;                // --shape NAME:D1,D2 (repeatable)
  std::string concurrency_range;                  // --concurrency-range START[:END[:STEP]]
  std::string request_rate_range;                 // --request-rate-range START[:END[:STEP]]
  std::string request_distribution = "constant";  // constant|poisson
  std::string shared_memory = "none";             // none|system
  uint64_t measurement_interval_ms = 5000;        // -p
  double stability_percentage = 10;               // -s
  int max_trials = 10;                            // -r
  int percentile = -1;                // stabilise on this latency percentile; -1 = average
  uint64_t latency_threshold_ms = 0;  // -l; 0 = none
  std::string input_data = "random";  // random|zero|<JSON file>
  int string_length = 128;            // BYTES elements of random data
  std::string csv_file;               // -f
  bool json = false;                  // --json: a JSON document on stdout
  int connections = 0;                // 0 = as perf_analyzer (see PerfPlan::connections)
  uint64_t seed = 0;                  // random data and poisson arrivals
  bool client = false;                // --client: through client::Client (-u local:// implies it)
  std::string token;                  // --token, else $QUIVER_TOKEN; "" = none
};

// Registers the flags on the `perf` subcommand, and a callback on it that sets
// `protocol_given` after parsing (so `command` must have no callback of its own).
void AddPerfFlags(CLI::App& command, PerfOptions& options);

// START[:END[:STEP]] as perf_analyzer reads it: END defaults to START (one level), STEP to
// 1; END 0 means "until --latency-threshold is exceeded".
struct Range {
  double start = 1;
  double end = 1;
  double step = 1;
};

// INVALID_ARGUMENT naming the flag for a malformed or out-of-range value. `integral`:
// every part must be a whole number (concurrency).
Result<Range> ParseRange(std::string_view flag, std::string_view text, bool integral);

// The levels of a range with an END: start, start + step, ... <= end (with a little slack
// for floating-point steps). With END 0, `open_levels` levels from START.
std::vector<double> ExpandRange(const Range& range, size_t open_levels);

// "NAME:D1,D2,..." -> {NAME, [D1, D2, ...]}; dimensions must be positive.
Result<std::pair<std::string, Shape>> ParseShapeFlag(std::string_view text);

enum class PerfProtocol : uint8_t { kHttp, kGrpc };
enum class LoadMode : uint8_t { kConcurrency, kRequestRate };
enum class Distribution : uint8_t { kConstant, kPoisson };
enum class InputDataKind : uint8_t { kRandom, kZero, kFile };

// perf_analyzer's plain -u: "host:port" or "[v6]:port", no scheme; a missing port is the
// protocol's default (8000 / 8001), "" is localhost. An IPv6 address needs brackets.
struct Endpoint {
  std::string host;
  uint16_t port = 0;
};
Result<Endpoint> ParseEndpoint(std::string_view text, PerfProtocol protocol);

// A remote -u with -i: where to send and in which protocol. A grpc:// or http:// URL
// (client::ParseUrl) chooses the protocol; `given` (-i when it was on the command line)
// must then agree, else INVALID_ARGUMENT naming both. A plain host:port speaks `given`,
// http when absent (perf_analyzer's default). Not for local:// (see MakePerfPlan).
struct RemoteTarget {
  PerfProtocol protocol = PerfProtocol::kHttp;
  Endpoint endpoint;
};
Result<RemoteTarget> ParseRemoteTarget(std::string_view url, std::optional<PerfProtocol> given);

// Everything the run needs, checked.
struct PerfPlan {
  std::string model;
  std::string version;
  PerfProtocol protocol = PerfProtocol::kHttp;
  Endpoint endpoint;
  int64_t batch = 1;
  std::map<std::string, Shape> shapes;
  LoadMode mode = LoadMode::kConcurrency;
  std::vector<double> levels;  // concurrencies or request rates, in order
  bool open_ended = false;     // END was 0: levels continue until the latency threshold
  Distribution distribution = Distribution::kConstant;
  bool shared_memory = false;
  uint64_t measurement_interval_ms = 5000;
  double stability = 0.10;  // fraction
  int max_trials = 10;
  int percentile = -1;
  uint64_t latency_threshold_ms = 0;
  InputDataKind input_data = InputDataKind::kRandom;
  std::string input_file;
  int string_length = 128;
  std::string csv_file;
  bool json = false;
  // HTTP keep-alive connections / gRPC channels. perf_analyzer's synchronous mode uses one
  // HTTP connection per concurrent request and shares a gRPC channel among up to 6.
  size_t connections = 1;
  uint64_t seed = 0;
  // Non-empty: requests go through client::Client with this URL (grpc://, http:// or
  // local://: the in-process Engine) instead of the bare transport; "" = bare transport.
  std::string client_url;
  bool local = false;  // client_url is local://
  std::string token;   // bearer token for the server (RemoteOptions::token); "" = none
};

// Checks the flags and fills a plan; INVALID_ARGUMENT naming the flag otherwise.
Result<PerfPlan> MakePerfPlan(const PerfOptions& options);

}  // namespace quiver::bench

#pragma once
// `quiver analyze`: the emerging-jets analysis (src/analysis) over quiver-emj/1 HDF5 files,
// with inference through the Client (local://, grpc://, http://, or a failover list).
// Prints a cutflow table and the throughput; writes the contract's JSON with --output.
// `quiver generate`: runs the Python generator (`python -m quiver_testbed generate ...`)
// with the project venv's interpreter.

#include <string>
#include <vector>

#include "analysis/analysis_options.h"

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::cli {

struct AnalyzeOptions {
  std::vector<std::string> inputs;  // --input (repeatable)
  std::vector<std::string> urls;    // --url (repeatable or comma-separated): failover order
  std::string output;               // --output out.json ("" = none)
  std::string mode = "columnar";
  std::string tagger = "gnn";
  bool no_ml = false;
  bool no_gnn = false;  // --no-gnn: emj_dnn and emj_event only
  bool progress = false;  // --progress: force the bar when stderr is not a terminal
  int timeout_ms = 0;     // per call, 0 = none
  std::string token;      // --token, else $QUIVER_TOKEN; "" = none
  analysis::AnalysisOptions analysis;
};

// Adds `analyze` to `app`, its flags bound to `options`.
CLI::App* AddAnalyzeCommand(CLI::App& app, AnalyzeOptions& options);
// Runs it; exit code 0 when every chunk was processed, 1 on any failure (reported on
// stderr, counted in the JSON), 2 for bad flags.
int RunAnalyze(AnalyzeOptions options);

struct GenerateOptions {
  std::vector<std::string> args;  // passed through to quiver_testbed generate
};
CLI::App* AddGenerateCommand(CLI::App& app, GenerateOptions& options);
// Replaces this process with `<python> -m quiver_testbed generate <args>`, where python is
// $QUIVER_PYTHON or the source tree's .venv/bin/python (fixed at configure time); returns 1
// with a message when it is missing or cannot be run.
int RunGenerate(const GenerateOptions& options);

}  // namespace quiver::cli

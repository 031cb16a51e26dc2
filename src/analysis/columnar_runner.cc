// The columnar runner: chunk k+1 is read and prepared on this thread while chunk k's three
// batched model calls run on their own threads (RunBatched blocks, so each gets one);
// chunks are finished in file order, so selected events keep the file's order.

#include <future>
#include <memory>
#include <optional>
#include <utility>

#include "analysis/chunk_plan.h"
#include "analysis/file_runner.h"
#include "columnar/batch_runner.h"

namespace quiver::analysis {
namespace {

struct ModelCall {
  Result<columnar::TensorMap> outputs = Status::Cancelled("not run");
  double seconds = 0;
};

// A chunk whose inference is in flight.
struct Pending {
  physics::EventChunk chunk;
  ChunkPlan plan;
  std::future<ModelCall> gnn, dnn, event;
};

std::future<ModelCall> Launch(InferenceService& service, const char* model,
                              const std::vector<Tensor>& inputs, const AnalysisOptions& o) {
  return std::async(std::launch::async, [&service, model, &inputs, &o] {
    columnar::BatchOptions batch;
    batch.version = o.model_version;
    batch.requested_outputs = {"score"};
    batch.max_in_flight = o.max_in_flight;
    const auto start = std::chrono::steady_clock::now();
    ModelCall call;
    call.outputs = columnar::RunBatched(service, model, inputs, batch);
    call.seconds = SecondsSince(start);
    return call;
  });
}

Result<std::span<const float>> Scores(ModelCall& call, const char* model, int64_t rows,
                                      std::vector<Tensor>& keep) {
  if (!call.outputs.ok()) return call.outputs.status().WithContext(model);
  for (auto& [name, tensor] : *call.outputs) keep.push_back(tensor);
  auto scores = ScoresOf(keep, "score", rows);
  if (!scores.ok()) return scores.status().WithContext(model);
  return scores;
}

}  // namespace

void RunColumnar(FileRun& run) {
  const AnalysisOptions& o = run.options;
  RunTiming& timing = run.report.timing;
  const bool ml = o.use_ml && run.service != nullptr;

  // Waits for `p`'s scores and fills the results (the chunk's result is merged only
  // when the whole chunk succeeded).
  auto finish = [&](Pending& p) {
    std::vector<Tensor> keep[3];  // each model's outputs, alive while the spans are read
    std::span<const float> gnn, dnn, event;
    Status status;
    if (ml && p.plan.n_passing() > 0) {
      const auto wait = std::chrono::steady_clock::now();
      ModelCall calls[3];
      if (o.use_gnn) calls[0] = p.gnn.get();
      calls[1] = p.dnn.get();
      calls[2] = p.event.get();
      timing.inference_s += SecondsSince(wait);
      run.report.inference_calls += o.use_gnn ? 3 : 2;
      for (const ModelCall& c : calls) timing.inference_busy_s += c.seconds;
      auto g = o.use_gnn ? Scores(calls[0], kGnnModel, p.plan.n_lead(), keep[0])
                         : Result<std::span<const float>>(std::span<const float>());
      auto d = Scores(calls[1], kDnnModel, p.plan.n_lead(), keep[1]);
      auto e = Scores(calls[2], kEventModel, p.plan.n_passing(), keep[2]);
      status = !g.ok() ? g.status() : !d.ok() ? d.status() : e.status();
      if (status.ok()) {
        gnn = *g;
        dnn = *d;
        event = *e;
      }
    }
    SampleResult chunk_result;
    if (status.ok()) status = FinishChunk(p.chunk, p.plan, gnn, dnn, event, o, chunk_result);
    if (!status.ok()) {
      RecordFailure(run, p.chunk.begin, p.chunk.end, status);
      return;
    }
    run.result.Merge(chunk_result);
    RecordProcessed(run, p.chunk.size(), p.chunk.n_jets());
  };

  std::unique_ptr<Pending> in_flight;
  const int64_t n = run.file.n_events();
  for (int64_t a = 0; a < n; a += o.chunk_size) {
    const int64_t b = std::min(n, a + o.chunk_size);
    auto t = std::chrono::steady_clock::now();
    auto chunk = run.file.Read(a, b);
    timing.io_s += SecondsSince(t);
    if (!chunk.ok()) {
      RecordFailure(run, a, b, chunk.status());
      continue;
    }
    t = std::chrono::steady_clock::now();
    auto plan = PlanChunk(*chunk, o);
    timing.preprocess_s += SecondsSince(t);
    if (!plan.ok()) {
      RecordFailure(run, a, b, plan.status());
      continue;
    }
    auto next = std::make_unique<Pending>();
    next->chunk = std::move(chunk).value();
    next->plan = std::move(plan).value();
    if (ml && next->plan.n_passing() > 0) {
      if (o.use_gnn) next->gnn = Launch(*run.service, kGnnModel, next->plan.gnn_inputs, o);
      next->dnn = Launch(*run.service, kDnnModel, next->plan.dnn_inputs, o);
      next->event = Launch(*run.service, kEventModel, next->plan.event_inputs, o);
    }
    if (in_flight) finish(*in_flight);
    in_flight = std::move(next);
  }
  if (in_flight) finish(*in_flight);
}

}  // namespace quiver::analysis

#pragma once
// The columnar analysis of one chunk, as whole-chunk array operations: a jet mask, the
// selected jets compressed per event, HT as a segmented sum, the events passing the HT cut,
// their leading selected jets, and the padded model inputs for all of them at once.
// FinishChunk applies the tagger to the chunk's scores and fills a SampleResult.

#include <cstdint>
#include <span>
#include <vector>

#include "analysis/analysis_options.h"
#include "analysis/sample_result.h"
#include "core/status.h"
#include "core/tensor.h"
#include "physics/event_chunk.h"

namespace quiver::analysis {

struct ChunkPlan {
  std::vector<int32_t> n_selected;  // per event: selected jets
  std::vector<float> ht;            // per event: sum of selected-jet pt
  std::vector<int64_t> passing;     // events passing step 3 (chunk-local indices)
  // Leading selected jets of passing event k: lead_jets[lead_offsets[k] .. lead_offsets[k+1])
  // (chunk-local jet indices); these are the rows of gnn_inputs and dnn_inputs.
  std::vector<int64_t> lead_offsets;
  std::vector<int64_t> lead_jets;
  // Model inputs (empty without ML). Rows: lead jets (gnn, dnn), passing events (event).
  std::vector<Tensor> gnn_inputs;    // tracks [n_lead, 64, 8], mask [n_lead, 64]
  std::vector<Tensor> dnn_inputs;    // jet [n_lead, 6]
  std::vector<Tensor> event_inputs;  // jets [n_pass, 8, 6], mask [n_pass, 8]

  int64_t n_lead() const { return static_cast<int64_t>(lead_jets.size()); }
  int64_t n_passing() const { return static_cast<int64_t>(passing.size()); }
};

// Selection and model inputs of `chunk`. INVALID_ARGUMENT when the columns are
// inconsistent (they come from EmjFile::Read, which checks them).
Result<ChunkPlan> PlanChunk(const physics::EventChunk& chunk, const AnalysisOptions& options);

// Scores per lead jet (gnn, dnn: plan.n_lead() values) and per passing event (event:
// plan.n_passing()); empty spans without ML. Fills `out` (cutflow, histograms, selected).
Status FinishChunk(const physics::EventChunk& chunk, const ChunkPlan& plan,
                   std::span<const float> gnn, std::span<const float> dnn,
                   std::span<const float> event, const AnalysisOptions& options, SampleResult& out);

}  // namespace quiver::analysis

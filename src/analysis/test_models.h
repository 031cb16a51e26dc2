#pragma once
// Stand-ins for emj_gnn, emj_dnn and emj_event in tests: FakeBackend models with the
// contract's inputs and a deterministic per-row score (so batching cannot change a score),
// max_batch_size 16 with dynamic batching, so that a chunk's call is split.

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "analysis/analysis_options.h"
#include "testing/engine_fixture.h"

namespace quiver::analysis::testing {

inline float Sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// score[r] = f(row r of input 0, row r of input 1 or nullptr); `row` values per row.
template <typename RowFn>
std::shared_ptr<quiver::testing::FakeBackend> ScoreBackend(int64_t row0, int64_t row1, RowFn fn) {
  auto fake = std::make_shared<quiver::testing::FakeBackend>();
  fake->SetExecuteFn([row0, row1, fn](int, const engine::BackendBatch& batch,
                                      std::vector<Tensor>& outputs, engine::ComputeTimes&) {
    const int64_t rows = batch.batch_size;
    std::vector<float> scores(static_cast<size_t>(rows));
    const float* a = batch.inputs[0].data_as<float>();
    const float* b = batch.inputs.size() > 1 ? batch.inputs[1].data_as<float>() : nullptr;
    for (int64_t r = 0; r < rows; ++r) {
      scores[r] = fn(a + r * row0, b != nullptr ? b + r * row1 : nullptr);
    }
    outputs.push_back(MakeTensor<float>("score", DataType::kFp32, {rows, 1}, std::span(scores)));
    return Status::Ok();
  });
  return fake;
}

struct StandInModels {
  std::shared_ptr<quiver::testing::FakeBackend> gnn, dnn, event;
};

// Adds the three stand-ins to `builder`.
inline StandInModels AddStandInModels(quiver::testing::TestEngineBuilder& builder,
                                      int max_batch_size = 16) {
  StandInModels m;
  // gnn: how many tracks are displaced (|d0 / d0Err| > 10), squashed.
  m.gnn =
      ScoreBackend(kMaxTracks * kTrackFeatures, kMaxTracks, [](const float* t, const float* mask) {
        float displaced = 0;
        for (int64_t s = 0; s < kMaxTracks; ++s) {
          if (mask[s] > 0 && std::abs(t[s * kTrackFeatures + 5]) > 10) displaced += 1;
        }
        return Sigmoid(displaced - 3);
      });
  // dnn: the median log IP and the prompt fraction.
  m.dnn = ScoreBackend(kJetFeatures, 0, [](const float* j, const float*) {
    return Sigmoid(2 * (j[4] + 1) - 4 * j[5]);
  });
  // event: the mean median log IP of the real jets.
  m.event =
      ScoreBackend(kEventJets * kJetFeatures, kEventJets, [](const float* j, const float* mask) {
        float sum = 0, n = 0;
        for (int64_t s = 0; s < kEventJets; ++s) {
          if (mask[s] > 0) {
            sum += j[s * kJetFeatures + 4];
            n += 1;
          }
        }
        return Sigmoid(n > 0 ? sum / n + 1 : -5);
      });
  const std::string batching = "max_batch_size: " + std::to_string(max_batch_size) +
                               "\ndynamic_batching { max_queue_delay_microseconds: 100 }\n";
  using quiver::testing::TensorConfig;
  builder.WithFakeModel(kGnnModel, m.gnn,
                        batching + TensorConfig("input", "tracks", "TYPE_FP32", "64, 8") +
                            TensorConfig("input", "mask", "TYPE_FP32", "64") +
                            TensorConfig("output", "score", "TYPE_FP32", "1"));
  builder.WithFakeModel(kDnnModel, m.dnn,
                        batching + TensorConfig("input", "jet", "TYPE_FP32", "6") +
                            TensorConfig("output", "score", "TYPE_FP32", "1"));
  builder.WithFakeModel(kEventModel, m.event,
                        batching + TensorConfig("input", "jets", "TYPE_FP32", "8, 6") +
                            TensorConfig("input", "mask", "TYPE_FP32", "8") +
                            TensorConfig("output", "score", "TYPE_FP32", "1"));
  return m;
}

}  // namespace quiver::analysis::testing

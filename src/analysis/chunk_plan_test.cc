#include "analysis/chunk_plan.h"

#include <gtest/gtest.h>

#include <cmath>

namespace quiver::analysis {
namespace {

// Event 0: four central 200 GeV jets (HT 800), jets 0 and 2 displaced; event 1: three
// selected jets and one forward jet; event 2: four selected jets with HT 480.
physics::EventChunk HandMadeChunk() {
  physics::EventChunk c;
  c.begin = 0;
  c.end = 3;
  c.run = {1, 1, 1};
  c.luminosity_block = {7, 7, 8};
  c.event = {10, 11, 12};
  c.met_pt = c.met_phi = c.weight = {0, 0, 0};
  c.jet_offsets = {0, 4, 8, 12};
  c.jet_pt = {200, 200, 200, 200, 300, 300, 300, 300, 150, 120, 110, 100};
  c.jet_eta = {0, 0.5f, -1, 1.9f, 0, 0, 0, 2.1f, 0, 0, 0, 0};
  c.jet_phi = {3.1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  c.jet_mass = std::vector<float>(12, 10);
  c.jet_n_track = {2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  c.jet_median_log_ip2d = {0.5f, -3, 0, -3, -3, -3, -3, -3, 1, 1, 1, 1};
  c.jet_alpha3d = {0.1f, 0.9f, 0.2f, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f, 0, 0, 0, 0};
  c.jet_is_dark = std::vector<int8_t>(12, 0);
  c.track_offsets = {0, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
  c.track_pt = {10, 5, 2};
  c.track_eta = {0.1f, -0.1f, -1};
  c.track_phi = {-3.1f, 3.0f, 0};
  c.track_d0 = {1, -2, 0};
  c.track_d0_err = {0.5f, 0.5f, 1};
  c.track_dz = {0, 0, 3};
  c.track_dz_err = {1, 1, 1};
  c.track_charge = {1, -1, 1};
  c.track_from_dark = {1, 1, 0};
  return c;
}

TEST(ChunkPlanTest, SelectsAndBuildsInputs) {
  const physics::EventChunk c = HandMadeChunk();
  AnalysisOptions o;
  auto plan = PlanChunk(c, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->n_selected, (std::vector<int32_t>{4, 3, 4}));
  EXPECT_FLOAT_EQ(plan->ht[0], 800);
  EXPECT_FLOAT_EQ(plan->ht[2], 480);
  EXPECT_EQ(plan->passing, (std::vector<int64_t>{0}));
  EXPECT_EQ(plan->lead_jets, (std::vector<int64_t>{0, 1, 2, 3}));

  const Tensor& tracks = plan->gnn_inputs[0];
  const Tensor& mask = plan->gnn_inputs[1];
  EXPECT_EQ(tracks.name, "tracks");
  EXPECT_EQ(tracks.shape, (Shape{4, 64, 8}));
  EXPECT_EQ(mask.shape, (Shape{4, 64}));
  const float* t = tracks.data_as<float>();
  EXPECT_FLOAT_EQ(t[0], std::log(10.f));
  EXPECT_NEAR(t[2], -6.2f + 2 * 3.14159265f, 1e-5);  // -3.1 - 3.1 wrapped
  EXPECT_FLOAT_EQ(t[5], 2);                          // d0 / d0Err
  EXPECT_FLOAT_EQ(t[8 + 3], -1);                     // second track's charge
  EXPECT_FLOAT_EQ(t[2 * 8], 0);                      // padding
  const float* m = mask.data_as<float>();
  EXPECT_EQ(m[0] + m[1] + m[2], 2.f);
  EXPECT_EQ(m[64], 0.f);                    // jet 1 has no track
  EXPECT_EQ(m[2 * 64], 1.f);                // jet 2 has one
  EXPECT_FLOAT_EQ(t[2 * 64 * 8 + 7], 3.f);  // sqrt(0 + 3^2)

  EXPECT_EQ(plan->dnn_inputs[0].shape, (Shape{4, 6}));
  EXPECT_FLOAT_EQ(plan->dnn_inputs[0].data_as<float>()[3], 2.f);  // nTrack of jet 0
  EXPECT_EQ(plan->event_inputs[0].shape, (Shape{1, 8, 6}));
  EXPECT_EQ(plan->event_inputs[1].data_as<float>()[3], 1.f);
  EXPECT_EQ(plan->event_inputs[1].data_as<float>()[4], 0.f);
}

TEST(ChunkPlanTest, CutTaggerSelectsTheDisplacedEvent) {
  const physics::EventChunk c = HandMadeChunk();
  AnalysisOptions o;
  o.use_ml = false;
  auto plan = PlanChunk(c, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->gnn_inputs.empty());
  SampleResult r;
  ASSERT_TRUE(FinishChunk(c, *plan, {}, {}, {}, o, r).ok());
  EXPECT_EQ(r.cutflow, (std::array<int64_t, 4>{3, 2, 1, 1}));
  ASSERT_EQ(r.selected.size(), 1u);
  EXPECT_EQ(r.selected[0], (EventId{1, 7, 10}));
  EXPECT_EQ(static_cast<double>(r.n_tagged.at(2)), 1.0);  // jets 0 and 2
  EXPECT_EQ(static_cast<double>(r.ht.at(4)), 1.0);        // 480 GeV, bin [400, 500)
  EXPECT_EQ(static_cast<double>(r.ht.at(8)), 1.0);        // 800 GeV
}

TEST(ChunkPlanTest, ScoresDecideWithTheGnnTagger) {
  const physics::EventChunk c = HandMadeChunk();
  AnalysisOptions o;
  auto plan = PlanChunk(c, o);
  ASSERT_TRUE(plan.ok());
  const std::vector<float> gnn = {0.9f, 0.1f, 0.2f, 0.3f}, dnn = {0, 0, 0, 0}, event = {0.72f};
  SampleResult r;
  ASSERT_TRUE(FinishChunk(c, *plan, gnn, dnn, event, o, r).ok());
  EXPECT_EQ(r.cutflow[3], 0);  // one tagged jet only
  EXPECT_EQ(static_cast<double>(r.n_tagged.at(1)), 1.0);
  EXPECT_EQ(static_cast<double>(r.event_score.at(14)), 1.0);
  EXPECT_FALSE(FinishChunk(c, *plan, {}, dnn, event, o, r).ok());  // scores missing
}

}  // namespace
}  // namespace quiver::analysis

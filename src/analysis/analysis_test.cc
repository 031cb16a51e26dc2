#include "analysis/analysis.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "analysis/test_models.h"
#include "client/client.h"
#include "client/local_service.h"
#include "physics/emj_test_file.h"
#include "testing/engine_fixture.h"
#include "testing/fake_inference_service.h"

namespace quiver::analysis {
namespace {

using physics::testing::MakeSyntheticSample;
using physics::testing::WriteEmjFile;

class AnalysisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    quiver::testing::TestEngineBuilder builder("analysis");
    models_ = testing::AddStandInModels(builder);
    engine_ = builder.Build();
    ASSERT_TRUE(engine_);
    // A Client over the in-process engine, as `quiver analyze` has for local:// URLs.
    client::ClientOptions options;
    options.urls = {"local://" + engine_.repo().path().string()};
    engine::Engine* engine = engine_.get();
    auto made = client::Client::Create(
        options,
        [engine](const client::Url&,
                 const client::ClientOptions&) -> Result<std::shared_ptr<InferenceService>> {
          return std::shared_ptr<InferenceService>(engine, [](InferenceService*) {});
        });
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    client_ = std::move(made).value();

    physics::testing::EmjAttributes signal;
    signal.sample = "emj_ctau25";
    signal.process = "signal";
    signal.ctau_mm = 25;
    signal_ = (dir_.path() / "signal.h5").string();
    ASSERT_TRUE(WriteEmjFile(signal_, MakeSyntheticSample(700, 11, true, 2), signal));
    physics::testing::EmjAttributes qcd;
    qcd.sample = "qcd";
    qcd.process = "qcd";
    qcd_ = (dir_.path() / "qcd.h5").string();
    ASSERT_TRUE(WriteEmjFile(qcd_, MakeSyntheticSample(600, 12, false, 1), qcd));
  }
  void TearDown() override {
    client_.reset();
    engine_.reset();
  }

  RunReport Run(AnalysisOptions options, std::vector<std::string> inputs = {}) {
    if (inputs.empty()) inputs = {signal_, qcd_};
    auto report = RunAnalysis(inputs, options.use_ml ? client_.get() : nullptr, options);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? std::move(report).value() : RunReport{};
  }

  quiver::testing::TempRepository dir_{"analysis-data"};
  testing::StandInModels models_;
  quiver::testing::TestEngine engine_;
  std::shared_ptr<client::Client> client_;
  std::string signal_, qcd_;
};

nlohmann::json Samples(const RunReport& report, const AnalysisOptions& options) {
  return report.ToJson(options)["samples"];
}

TEST_F(AnalysisTest, ColumnarAndEventLoopAgreeWithTheGnnTagger) {
  AnalysisOptions columnar;
  columnar.chunk_size = 97;  // chunks that do not divide the files
  AnalysisOptions event_loop = columnar;
  event_loop.mode = Mode::kEventLoop;
  event_loop.chunk_size = 250;
  const RunReport a = Run(columnar);
  const RunReport b = Run(event_loop);
  EXPECT_EQ(Samples(a, columnar), Samples(b, event_loop));

  // Something was selected, and not everything: the comparison means something.
  const SampleResult& sig = a.samples.at("emj_ctau25");
  const SampleResult& bkg = a.samples.at("qcd");
  EXPECT_EQ(sig.cutflow[0], 700);
  EXPECT_EQ(bkg.cutflow[0], 600);
  EXPECT_GT(sig.cutflow[2], 10);
  EXPECT_GT(sig.cutflow[3], 0);
  EXPECT_LT(sig.cutflow[3], sig.cutflow[2]);
  EXPECT_GT(static_cast<double>(sig.cutflow[3]) / sig.cutflow[2],
            static_cast<double>(bkg.cutflow[3]) / std::max<int64_t>(bkg.cutflow[2], 1));
  EXPECT_EQ(static_cast<int64_t>(sig.selected.size()), sig.cutflow[3]);
  // Every scored jet is in the score histograms (4 per event after step 3).
  EXPECT_EQ(boost::histogram::algorithm::sum(sig.gnn_score, boost::histogram::coverage::all),
            4.0 * sig.cutflow[2]);
  EXPECT_EQ(boost::histogram::algorithm::sum(sig.event_score, boost::histogram::coverage::all),
            1.0 * sig.cutflow[2]);

  // Columnar: 3 calls per chunk with passing events; event loop: 3 per passing event.
  EXPECT_EQ(b.inference_calls, 3 * (sig.cutflow[2] + bkg.cutflow[2]));
  EXPECT_LE(a.inference_calls, 3 * (8 + 7));
  EXPECT_EQ(a.events_processed, 1300);
  EXPECT_EQ(a.events_failed, 0);
  EXPECT_EQ(a.chunks_processed, 8 + 7);
}

TEST_F(AnalysisTest, BatchedCallsAreSplitByMaxBatchSize) {
  AnalysisOptions options;
  options.chunk_size = 1000;
  const RunReport report = Run(options, {signal_});
  ASSERT_GT(report.samples.at("emj_ctau25").cutflow[2], 16 / 4);  // > one request of jets
  int64_t rows = 0;
  for (const auto& e : models_.gnn->executions()) {
    EXPECT_LE(e.batch_size, 16);
    rows += e.batch_size;
  }
  EXPECT_EQ(rows, 4 * report.samples.at("emj_ctau25").cutflow[2]);
}

TEST_F(AnalysisTest, ColumnarAndEventLoopAgreeWithTheDnnAndCutTaggers) {
  for (bool ml : {true, false}) {
    AnalysisOptions columnar;
    columnar.tagger = Tagger::kDnn;
    columnar.use_ml = ml;
    columnar.chunk_size = 128;
    AnalysisOptions event_loop = columnar;
    event_loop.mode = Mode::kEventLoop;
    event_loop.chunk_size = 33;
    const int executions_before = models_.dnn->execution_count();
    const RunReport a = Run(columnar);
    const RunReport b = Run(event_loop);
    EXPECT_EQ(Samples(a, columnar), Samples(b, event_loop)) << "ml " << ml;
    EXPECT_GT(a.samples.at("emj_ctau25").cutflow[3], 0) << "ml " << ml;
    if (!ml) {
      EXPECT_EQ(a.inference_calls, 0);
      EXPECT_EQ(b.inference_calls, 0);
      EXPECT_EQ(models_.dnn->execution_count(), executions_before);
    }
  }
}

TEST_F(AnalysisTest, WithoutTheGnnNoGnnRequestIsSentAndBothStylesAgree) {
  AnalysisOptions columnar;
  columnar.tagger = Tagger::kDnn;
  columnar.use_gnn = false;
  columnar.chunk_size = 128;
  AnalysisOptions event_loop = columnar;
  event_loop.mode = Mode::kEventLoop;
  const int gnn_before = models_.gnn->execution_count();
  const RunReport a = Run(columnar);
  const RunReport b = Run(event_loop);
  EXPECT_EQ(Samples(a, columnar), Samples(b, event_loop));
  EXPECT_EQ(models_.gnn->execution_count(), gnn_before);
  const SampleResult& sig = a.samples.at("emj_ctau25");
  ASSERT_GT(sig.cutflow[2], 0);
  EXPECT_EQ(boost::histogram::algorithm::sum(sig.gnn_score, boost::histogram::coverage::all), 0);
  EXPECT_EQ(boost::histogram::algorithm::sum(sig.dnn_score, boost::histogram::coverage::all),
            4.0 * sig.cutflow[2]);
  // Event loop: emj_dnn and emj_event per passing event.
  EXPECT_EQ(b.inference_calls, 2 * (sig.cutflow[2] + b.samples.at("qcd").cutflow[2]));
}

TEST_F(AnalysisTest, NextChunkIsSentBeforeTheCurrentOneIsAnswered) {
  // Every call is held until the test answers it. Chunks of 16 events give at most one
  // emj_event request each (max_batch_size 16), so two emj_event requests outstanding at
  // once mean chunk k+1 was read, prepared and sent while chunk k's inference was open.
  quiver::testing::FakeInferenceService held(*engine_);
  AnalysisOptions options;
  options.chunk_size = 16;
  Result<RunReport> report = Status::Unknown("not run");
  std::thread runner([&] { report = RunAnalysis({signal_}, &held, options); });
  std::vector<quiver::testing::FakeInferenceService::Held> taken;
  int event_requests = 0;
  while (event_requests < 2) {
    for (auto& h : held.TakeHeld(1)) {
      event_requests += h.request.model == kEventModel;
      taken.push_back(std::move(h));
    }
  }
  EXPECT_EQ(held.answered(), 0);
  held.set_mode(quiver::testing::FakeInferenceService::Mode::kAnswer);
  for (auto& h : taken) held.Answer(std::move(h));
  while (held.ReleaseOne()) {
  }
  runner.join();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->events_processed, 700);
  EXPECT_EQ(report->events_failed, 0);
}

TEST_F(AnalysisTest, BadChunkIsReportedAndTheRestIsProcessed) {
  const auto all = MakeSyntheticSample(300, 5, true);
  physics::testing::WriteOptions broken;
  broken.jet_offset_index = 150;
  broken.jet_offset_value = all.n_jets() + 99;
  const std::string bad = (dir_.path() / "bad.h5").string();
  ASSERT_TRUE(WriteEmjFile(bad, all, {}, broken));
  for (Mode mode : {Mode::kColumnar, Mode::kEventLoop}) {
    AnalysisOptions options;
    options.mode = mode;
    options.chunk_size = 100;
    const RunReport report = Run(options, {bad, (dir_.path() / "missing.h5").string(), qcd_});
    EXPECT_EQ(report.files_failed, 1);
    EXPECT_EQ(report.events_total, 900);
    EXPECT_EQ(report.events_failed, 100);  // only [100, 200) reads jets/offsets[150]
    EXPECT_EQ(report.events_processed, 800);
    ASSERT_EQ(report.failures.size(), 2u);
    EXPECT_NE(report.failures[0].file.find("missing.h5"), std::string::npos);
    EXPECT_EQ(report.failures[1].begin, 100);
    EXPECT_EQ(report.failures[1].end, 200);
    EXPECT_NE(report.failures[1].message.find("bad.h5"), std::string::npos);
    EXPECT_EQ(report.chunks_failed, 1);
    EXPECT_EQ(report.samples.at("test").cutflow[0], 200);
  }
}

TEST_F(AnalysisTest, FailedInferenceFailsItsChunkOnly) {
  models_.event->FailNextExecutions(1, Status::Internal("boom"));
  AnalysisOptions options;
  options.chunk_size = 100;
  options.max_in_flight = 1;
  const RunReport report = Run(options, {signal_});
  // One failed execution fails its chunk (two, if the batcher joined rows of both chunks
  // in flight); the others are processed.
  EXPECT_GE(report.chunks_failed, 1);
  EXPECT_LE(report.chunks_failed, 2);
  EXPECT_EQ(report.events_failed, 100 * report.chunks_failed);
  EXPECT_EQ(report.events_processed + report.events_failed, 700);
  ASSERT_GE(report.failures.size(), 1u);
  EXPECT_NE(report.failures[0].message.find("emj_event"), std::string::npos)
      << report.failures[0].message;
}

TEST_F(AnalysisTest, JsonHasTheContractShape) {
  AnalysisOptions options;
  const nlohmann::json j = Run(options).ToJson(options);
  const auto& sample = j["samples"]["qcd"];
  EXPECT_EQ(sample["cutflow"].size(), 4u);
  EXPECT_EQ(sample["histograms"]["ht"]["edges"].size(), 41u);
  EXPECT_EQ(sample["histograms"]["ht"]["counts"].size(), 40u);
  EXPECT_DOUBLE_EQ(sample["histograms"]["ht"]["edges"].back().get<double>(), 4000.0);
  EXPECT_EQ(sample["histograms"]["n_tagged"]["counts"].size(), 5u);
  EXPECT_EQ(sample["histograms"]["gnn_score"]["counts"].size(), 20u);
  if (!sample["selected"].empty()) {
    EXPECT_EQ(sample["selected"][0].size(), 3u);
  }
  EXPECT_EQ(j["timing"]["events_processed"].get<int64_t>(), 1300);
  for (const char* key :
       {"io_s", "preprocess_s", "inference_s", "rest_s", "events_per_s", "jets_per_s"}) {
    EXPECT_TRUE(j["timing"].contains(key)) << key;
  }
}

// local:// for real: the Client opens an Engine with the libtorch backend over TorchScript
// stand-ins (src/analysis/testdata, made by python/models/make_emj_standins.py).
TEST_F(AnalysisTest, ColumnarAndEventLoopAgreeOverLocalUrlWithTorchStandIns) {
#ifndef QUIVER_WITH_TORCH
  GTEST_SKIP() << "built without libtorch (QUIVER_WITH_TORCH=OFF)";
#endif
  client::EnableLocalUrls();
  client::ClientOptions options;
  options.urls = {std::string("local://") + QUIVER_SOURCE_DIR + "/src/analysis/testdata/models"};
  auto local = client::Client::Create(options);
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  AnalysisOptions columnar;
  columnar.chunk_size = 300;
  AnalysisOptions event_loop = columnar;
  event_loop.mode = Mode::kEventLoop;
  auto a = RunAnalysis({signal_, qcd_}, local->get(), columnar);
  auto b = RunAnalysis({signal_, qcd_}, local->get(), event_loop);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->events_failed + b->events_failed, 0);
  EXPECT_EQ(Samples(*a, columnar), Samples(*b, event_loop));
  EXPECT_GT(a->samples.at("emj_ctau25").cutflow[3], 0);
  // The stand-ins score like the fake backends of the other tests: same selection.
  const RunReport fake = Run(columnar);
  EXPECT_EQ(Samples(*a, columnar), Samples(fake, columnar));
}

TEST(AnalysisOptionsTest, ParsesNames) {
  EXPECT_EQ(*ParseTagger("dnn"), Tagger::kDnn);
  EXPECT_FALSE(ParseTagger("bdt").ok());
  EXPECT_EQ(*ParseMode("eventloop"), Mode::kEventLoop);
  EXPECT_FALSE(ParseMode("loop").ok());
}

}  // namespace
}  // namespace quiver::analysis

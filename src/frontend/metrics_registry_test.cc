#include "frontend/metrics_registry.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "frontend/metrics_test_util.h"
#include "testing/fake_inference_service.h"
#include "testing/temp_repository.h"

namespace quiver::frontend {
namespace {

using testing::Lines;
using testing::MetricsEngineFixture;
using testing::ParseExposition;
using testing::Sample;

bool HasLine(const std::string& text, const std::string& line) {
  const auto lines = Lines(text);
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

const Sample* Find(const std::vector<Sample>& samples, const std::string& name) {
  for (const auto& s : samples) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

constexpr const char* kModelCounters[] = {
    "nv_inference_request_success",           "nv_inference_request_failure",
    "nv_inference_count",                     "nv_inference_exec_count",
    "nv_inference_request_duration_us",       "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us"};

using MetricsRegistryEngineTest = MetricsEngineFixture;

TEST_F(MetricsRegistryEngineTest, CountsInferencesPerModelVersion) {
  MetricsOptions options;
  options.cpu_metrics = false;
  MetricsRegistry registry(*engine_, options);

  const std::string before = registry.Render();
  ParseExposition(before);
  EXPECT_TRUE(HasLine(before, "nv_inference_request_success{model=\"m\",version=\"1\"} 0"))
      << before;

  constexpr int kN = 5;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(InferOnce());

  const std::string text = registry.Render();
  const auto samples = ParseExposition(text);
  const std::string n = std::to_string(kN);
  EXPECT_TRUE(HasLine(text, "nv_inference_request_success{model=\"m\",version=\"1\"} " + n))
      << text;
  EXPECT_TRUE(HasLine(text, "nv_inference_request_failure{model=\"m\",version=\"1\"} 0"))
      << text;
  // No batching: one inference and one execution per request.
  EXPECT_TRUE(HasLine(text, "nv_inference_count{model=\"m\",version=\"1\"} " + n)) << text;
  EXPECT_TRUE(HasLine(text, "nv_inference_exec_count{model=\"m\",version=\"1\"} " + n)) << text;
  EXPECT_TRUE(HasLine(text, "nv_inference_pending_request_count{model=\"m\",version=\"1\"} 0"))
      << text;
  EXPECT_TRUE(HasLine(text, "# TYPE nv_inference_request_success counter")) << text;
  EXPECT_TRUE(HasLine(text, "# TYPE nv_inference_request_duration_us counter")) << text;
  EXPECT_TRUE(HasLine(text, "# TYPE nv_inference_pending_request_count gauge")) << text;

  // Every family has one sample for m/1, and durations agree with the statistics.
  auto stats = engine_->GetStatistics("m", "1");
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  const ModelStatistics& st = stats->front();
  for (const char* family : kModelCounters) {
    const Sample* s = Find(samples, family);
    ASSERT_NE(s, nullptr) << family;
    EXPECT_EQ(s->labels.at("model"), "m");
    EXPECT_EQ(s->labels.at("version"), "1");
  }
  EXPECT_EQ(Find(samples, "nv_inference_request_duration_us")->value,
            static_cast<double>(st.success.ns / 1000));
  EXPECT_EQ(Find(samples, "nv_inference_queue_duration_us")->value,
            static_cast<double>(st.queue.ns / 1000));
  EXPECT_EQ(Find(samples, "nv_inference_compute_infer_duration_us")->value,
            static_cast<double>(st.compute_infer.ns / 1000));
  // No CPU metrics when disabled, and no server-wide pending gauge without a callback.
  EXPECT_EQ(text.find("nv_cpu_"), std::string::npos);
  EXPECT_EQ(text.find("quiver_pending_request_count"), std::string::npos);
}

TEST_F(MetricsRegistryEngineTest, LatencyHistogramsPerModelVersion) {
  MetricsOptions options;
  options.cpu_metrics = false;
  MetricsRegistry registry(*engine_, options);

  // Before any request: every bucket 0, one series per family for m/1.
  const std::string before = registry.Render();
  ParseExposition(before);
  EXPECT_TRUE(HasLine(before, "quiver_request_duration_us_count{model=\"m\",version=\"1\"} 0"))
      << before;
  EXPECT_TRUE(HasLine(
      before, "quiver_request_duration_us_bucket{model=\"m\",version=\"1\",le=\"+Inf\"} 0"))
      << before;

  constexpr int kN = 6;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(InferOnce());
  const std::string text = registry.Render();
  const auto samples = ParseExposition(text);
  auto stats = engine_->GetStatistics("m", "1");
  ASSERT_TRUE(stats.ok());
  const ModelStatistics& st = stats->front();

  const std::pair<const char*, const HistogramSnapshot*> families[] = {
      {"quiver_request_duration_us", &st.request_histogram},
      {"quiver_queue_duration_us", &st.queue_histogram},
      {"quiver_compute_infer_duration_us", &st.compute_infer_histogram}};
  const auto bounds = LatencyBucketsNs();
  for (const auto& [family, h] : families) {
    SCOPED_TRACE(family);
    EXPECT_TRUE(HasLine(text, std::string("# TYPE ") + family + " histogram")) << text;
    std::vector<std::string> les;
    std::vector<double> counts;
    const Sample* sum = nullptr;
    const Sample* count = nullptr;
    for (const Sample& x : samples) {
      if (x.family != family) continue;
      EXPECT_EQ(x.labels.at("model"), "m");
      EXPECT_EQ(x.labels.at("version"), "1");
      if (x.name == std::string(family) + "_bucket") {
        les.push_back(x.labels.at("le"));
        counts.push_back(x.value);
      } else if (x.name == std::string(family) + "_sum") {
        sum = &x;
      } else if (x.name == std::string(family) + "_count") {
        count = &x;
      }
    }
    // le: the latency bounds in microseconds, then +Inf.
    ASSERT_EQ(les.size(), bounds.size() + 1);
    EXPECT_EQ(les.front(), "50");
    EXPECT_EQ(les[bounds.size() - 1], "10000000");
    EXPECT_EQ(les.back(), "+Inf");
    for (size_t i = 0; i < bounds.size(); ++i) EXPECT_EQ(les[i], std::to_string(bounds[i] / 1000));
    // Cumulative counts as in the statistics; no batching: kN requests and kN executions.
    const auto cumulative = h->Cumulative();
    for (size_t i = 0; i < counts.size(); ++i) {
      EXPECT_EQ(counts[i], static_cast<double>(cumulative[i])) << "le=" << les[i];
    }
    ASSERT_NE(count, nullptr);
    EXPECT_EQ(count->value, kN);
    ASSERT_NE(sum, nullptr);
    EXPECT_DOUBLE_EQ(sum->value, static_cast<double>(h->sum) / 1000.0);
  }
  EXPECT_EQ(st.request_histogram.sum, st.success.ns);
}

TEST_F(MetricsRegistryEngineTest, PendingCallbacks) {
  MetricsOptions options;
  options.cpu_metrics = false;
  options.pending_count = [](std::string_view model, std::string_view version) -> size_t {
    return model == "m" && version == "1" ? 7 : 0;
  };
  engine::Engine* engine = engine_.get();
  options.total_pending_count = [engine] { return engine->PendingCount(); };
  MetricsRegistry registry(*engine_, options);
  const std::string text = registry.Render();
  ParseExposition(text);
  EXPECT_TRUE(HasLine(text, "nv_inference_pending_request_count{model=\"m\",version=\"1\"} 7"))
      << text;
  EXPECT_TRUE(HasLine(text, "# TYPE quiver_pending_request_count gauge")) << text;
  EXPECT_TRUE(HasLine(text, "quiver_pending_request_count 0")) << text;
}

TEST_F(MetricsRegistryEngineTest, UnloadedModelDisappears) {
  MetricsOptions options;
  options.cpu_metrics = false;
  MetricsRegistry registry(*engine_, options);
  ASSERT_TRUE(InferOnce());
  ASSERT_TRUE(engine_->Unload("m").ok());
  const std::string text = registry.Render();
  const auto samples = ParseExposition(text);
  EXPECT_TRUE(samples.empty()) << text;
  // Families are still announced.
  EXPECT_TRUE(HasLine(text, "# TYPE nv_inference_request_success counter")) << text;
}

TEST(MetricsRegistryTest, EscapesLabelValues) {
  ModelStatistics a;
  a.name = "we\"ird\\na\nme";
  a.version = "1";
  a.success.count = 3;
  a.success.ns = 4'567'890;  // 4567 us, truncated
  ModelStatistics b;
  b.name = "plain";
  b.version = "12";
  b.fail.count = 2;
  quiver::testing::FakeInferenceService service;
  service.set_statistics(std::vector<ModelStatistics>{a, b});
  MetricsOptions options;
  options.cpu_metrics = false;
  MetricsRegistry registry(service, options);
  const std::string text = registry.Render();
  const auto samples = ParseExposition(text);
  EXPECT_TRUE(HasLine(
      text, R"(nv_inference_request_success{model="we\"ird\\na\nme",version="1"} 3)"))
      << text;
  EXPECT_TRUE(HasLine(
      text, R"(nv_inference_request_duration_us{model="we\"ird\\na\nme",version="1"} 4567)"))
      << text;
  EXPECT_TRUE(HasLine(text, R"(nv_inference_request_failure{model="plain",version="12"} 2)"))
      << text;
  // The parser unescapes back to the original name.
  const Sample* s = Find(samples, "nv_inference_request_success");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->labels.at("model"), a.name);
  // Two model versions: two samples per model family, contiguous under one header.
  size_t successes = 0;
  for (const auto& x : samples) successes += x.name == "nv_inference_request_success";
  EXPECT_EQ(successes, 2u);
}

TEST(MetricsRegistryTest, HistogramExposition) {
  ModelStatistics a;
  a.name = "plain";
  a.version = "12";
  a.request_histogram.bounds = {1'500, 50'000, 100'000};  // 1.5, 50, 100 us
  a.request_histogram.counts = {1, 2, 0, 3};
  a.request_histogram.sum = 1'234'567;
  a.queue_histogram.bounds = {1'000};
  a.queue_histogram.counts = {1};  // malformed (needs 2 entries): left out
  ModelStatistics b;  // no histograms at all (e.g. a remote Triton's statistics)
  b.name = "remote";
  b.version = "1";
  quiver::testing::FakeInferenceService service;
  service.set_statistics(std::vector<ModelStatistics>{a, b});
  MetricsOptions options;
  options.cpu_metrics = false;
  MetricsRegistry registry(service, options);
  const std::string text = registry.Render();
  const auto samples = ParseExposition(text);

  const std::vector<std::string> expected = {
      "# HELP quiver_request_duration_us Distribution of successful inference request "
      "durations in microseconds (from arrival at the model's scheduler to the response)",
      "# TYPE quiver_request_duration_us histogram",
      R"(quiver_request_duration_us_bucket{model="plain",version="12",le="1.5"} 1)",
      R"(quiver_request_duration_us_bucket{model="plain",version="12",le="50"} 3)",
      R"(quiver_request_duration_us_bucket{model="plain",version="12",le="100"} 3)",
      R"(quiver_request_duration_us_bucket{model="plain",version="12",le="+Inf"} 6)",
      R"(quiver_request_duration_us_sum{model="plain",version="12"} 1234.567)",
      R"(quiver_request_duration_us_count{model="plain",version="12"} 6)",
      "# HELP quiver_queue_duration_us Distribution of queuing durations of successful "
      "inference requests in microseconds",
      "# TYPE quiver_queue_duration_us histogram",
  };
  const auto lines = Lines(text);
  auto first = std::find(lines.begin(), lines.end(), expected.front());
  ASSERT_NE(first, lines.end()) << text;
  ASSERT_GE(static_cast<size_t>(lines.end() - first), expected.size()) << text;
  EXPECT_EQ(std::vector<std::string>(first, first + static_cast<long>(expected.size())),
            expected)
      << text;
  for (const Sample& x : samples) {
    if (x.family.starts_with("quiver_")) {
      EXPECT_EQ(x.labels.at("model"), "plain") << x.name;
    }
    if (x.family == "quiver_queue_duration_us") ADD_FAILURE() << "malformed snapshot rendered";
  }
  EXPECT_TRUE(HasLine(text, "# TYPE quiver_compute_infer_duration_us histogram")) << text;
}

// The exposition checker itself notices broken histograms (one failure each).
TEST(MetricsRegistryTest, ExpositionCheckerCatchesBrokenHistograms) {
  EXPECT_NONFATAL_FAILURE(ParseExposition("# HELP h x\n# TYPE h histogram\n"
                                          "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                                          "h_sum 1\nh_count 1\n"),
                          "buckets not cumulative");
  EXPECT_NONFATAL_FAILURE(ParseExposition("# HELP h x\n# TYPE h histogram\n"
                                          "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
                          "last bucket is not");
  EXPECT_NONFATAL_FAILURE(ParseExposition("# HELP h x\n# TYPE h histogram\n"
                                          "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n"),
                          "_count != +Inf bucket");
  EXPECT_NONFATAL_FAILURE(ParseExposition("# HELP h x\n# TYPE h histogram\n"
                                          "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                                          "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
                          "le not ascending");
}

TEST(MetricsRegistryTest, FormatsBucketBoundsInMicroseconds) {
  EXPECT_EQ(FormatLeMicros(50'000), "50");
  EXPECT_EQ(FormatLeMicros(10'000'000'000), "10000000");  // no exponent
  EXPECT_EQ(FormatLeMicros(1'500), "1.5");
  EXPECT_EQ(FormatLeMicros(0), "0");
}

TEST(MetricsRegistryTest, EscapingHelpers) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");
  EXPECT_EQ(FormatValue(0.75), "0.75");
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(MetricsRegistryTest, ParsesProcFiles) {
  auto t = ParseProcStat(
      "cpu  10 1 5 100 4 2 3 1 7 0\ncpu0 5 0 2 50 2 1 1 0 0 0\nintr 1 2 3\n");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->busy, 10u + 1 + 5 + 2 + 3 + 1);  // guest (7) is already in user
  EXPECT_EQ(t->total, t->busy + 100 + 4);
  EXPECT_FALSE(ParseProcStat("cpu0 1 2 3 4\n").has_value());
  EXPECT_FALSE(ParseProcStat("").has_value());
  // Old kernels: only four fields.
  auto old = ParseProcStat("cpu 1 2 3 4\n");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->busy, 6u);
  EXPECT_EQ(old->total, 10u);

  auto m = ParseMemInfo(
      "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     250 kB\n"
      "Buffers:           10 kB\n");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->total_bytes, 1024000u);
  EXPECT_EQ(m->available_bytes, 256000u);
  auto no_available = ParseMemInfo(
      "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 40 kB\n");
  ASSERT_TRUE(no_available.has_value());
  EXPECT_EQ(no_available->available_bytes, 150u * 1024);
  EXPECT_FALSE(ParseMemInfo("MemFree: 100 kB\n").has_value());
}

// A fake /proc: utilization is the busy share of the jiffies between two scrapes.
class FakeProcTest : public ::testing::Test {
 protected:
  quiver::testing::TempRepository proc_{"metrics-proc"};
};

TEST_F(FakeProcTest, CpuUtilizationAndMemory) {
  proc_.Write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\n");  // busy 200, total 1000
  proc_.Write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
  quiver::testing::FakeInferenceService service;
  service.set_statistics(std::vector<ModelStatistics>{});
  MetricsOptions options;
  options.model_metrics = false;
  options.proc_root = proc_.path().string();
  MetricsRegistry registry(service, options);  // samples /proc/stat once

  // No jiffies elapsed since construction: 0.
  std::string text = registry.Render();
  ParseExposition(text);
  EXPECT_TRUE(HasLine(text, "# TYPE nv_cpu_utilization gauge")) << text;
  EXPECT_TRUE(HasLine(text, "nv_cpu_utilization 0")) << text;
  EXPECT_TRUE(HasLine(text, "# TYPE nv_cpu_memory_total_bytes gauge")) << text;
  EXPECT_TRUE(HasLine(text, "nv_cpu_memory_total_bytes 1024000")) << text;
  EXPECT_TRUE(HasLine(text, "nv_cpu_memory_used_bytes 768000")) << text;
  EXPECT_EQ(text.find("nv_inference_"), std::string::npos);

  proc_.Write("stat", "cpu  300 0 200 900 0 0 0 0 0 0\n");  // +300 busy of +400
  text = registry.Render();
  EXPECT_TRUE(HasLine(text, "nv_cpu_utilization 0.75")) << text;

  // Same counters again (scrapes within one jiffy): the last figure stays.
  text = registry.Render();
  EXPECT_TRUE(HasLine(text, "nv_cpu_utilization 0.75")) << text;

  proc_.Write("stat", "cpu  300 0 200 1300 0 0 0 0 0 0\n");  // all idle
  text = registry.Render();
  EXPECT_TRUE(HasLine(text, "nv_cpu_utilization 0")) << text;
}

TEST_F(FakeProcTest, MissingProcFilesStillValid) {
  quiver::testing::FakeInferenceService service;
  service.set_statistics(std::vector<ModelStatistics>{});
  MetricsOptions options;
  options.proc_root = (proc_.path() / "nowhere").string();
  MetricsRegistry registry(service, options);
  const std::string text = registry.Render();
  ParseExposition(text);
  EXPECT_TRUE(HasLine(text, "nv_cpu_utilization 0")) << text;
  EXPECT_TRUE(HasLine(text, "# TYPE nv_cpu_memory_total_bytes gauge")) << text;
  EXPECT_EQ(text.find("\nnv_cpu_memory_total_bytes "), std::string::npos) << text;
}

TEST(MetricsRegistryTest, RealProcIsReadable) {
  quiver::testing::FakeInferenceService service;
  service.set_statistics(std::vector<ModelStatistics>{});
  MetricsRegistry registry(service);
  const std::string text = registry.Render();
  const auto samples = ParseExposition(text);
  const Sample* util = Find(samples, "nv_cpu_utilization");
  ASSERT_NE(util, nullptr) << text;
  EXPECT_GE(util->value, 0.0);
  EXPECT_LE(util->value, 1.0);
  const Sample* total = Find(samples, "nv_cpu_memory_total_bytes");
  const Sample* used = Find(samples, "nv_cpu_memory_used_bytes");
  ASSERT_NE(total, nullptr) << text;
  ASSERT_NE(used, nullptr) << text;
  EXPECT_GT(total->value, 0.0);
  EXPECT_LE(used->value, total->value);
}

}  // namespace
}  // namespace quiver::frontend

#include "columnar/batch_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "columnar/pad.h"
#include "columnar/reduce.h"
#include "engine/engine.h"
#include "testing/engine_fixture.h"
#include "testing/fake_inference_service.h"

namespace quiver::columnar {
namespace {

using ::testing::HasSubstr;

// The fake model "m": input X [rows, F] FP32 -> SUM [rows] (row sums) and TWICE [rows, F].
// Applied to the whole tensor at once it is the single-shot reference.
std::vector<Tensor> FakeModel(const Tensor& x) {
  const int64_t rows = x.shape[0], width = x.shape[1];
  std::vector<float> sum(size_t(rows), 0.f), twice(size_t(rows * width));
  const float* in = x.data_as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      sum[size_t(r)] += in[r * width + c];
      twice[size_t(r * width + c)] = 2.f * in[r * width + c];
    }
  }
  return {MakeTensor<float>("SUM", DataType::kFp32, {rows}, sum),
          MakeTensor<float>("TWICE", DataType::kFp32, {rows, width}, twice)};
}

enum class Order { kInline, kReverse, kShuffle };

using quiver::testing::FakeInferenceService;

// Scripts a FakeInferenceService as the model "m" (FakeModel) and answers its requests
// from a thread of its own in batches of `window` (or fewer, once fewer remain), each batch
// in reversed or shuffled order; or lets the fake answer inline, before Infer returns. The
// fake counts calls and the peak outstanding, and records each request's input (to check
// the zero-copy slices).
class DeferredResponder {
 public:
  struct Options {
    int64_t max_batch_size = 8;
    Order order = Order::kShuffle;
    int window = 4;
    int64_t expected_requests = 0;
    uint32_t seed = 1;
    const std::byte* base = nullptr;  // X's buffer, to tell the chunk's first row
    size_t row_bytes = 0;
    int64_t fail_row = -1;          // the chunk starting at this row fails
    bool hold_after_first = false;  // after the first answer, wait for Release()
  };

  explicit DeferredResponder(Options o) : o_(o), rng_(o.seed) {
    fake.AddModel(ConfigM(o_.max_batch_size));
    fake.set_answer([o](const InferRequest& request) { return Answer(o, request); });
    if (o_.order != Order::kInline) {
      fake.set_mode(FakeInferenceService::Mode::kHold);
      responder_ = std::thread([this] { Respond(); });
    }
  }
  ~DeferredResponder() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
    fake.Close();
    if (responder_.joinable()) responder_.join();
  }

  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Rows of each request, in order of arrival.
  std::vector<int64_t> chunk_rows() const {
    std::vector<int64_t> rows;
    for (const InferRequest& r : fake.requests()) rows.push_back(r.inputs.at(0).shape[0]);
    return rows;
  }
  // First row of X of each request, in order of arrival (needs Options::base).
  std::vector<int64_t> chunk_begins() const {
    std::vector<int64_t> begins;
    for (const InferRequest& r : fake.requests()) {
      begins.push_back(int64_t(size_t(r.inputs.at(0).data.data() - o_.base) / o_.row_bytes));
    }
    return begins;
  }

  FakeInferenceService fake;

 private:
  static ModelConfig ConfigM(int64_t max_batch_size) {
    ModelConfig c;
    c.set_name("m");
    c.set_max_batch_size(static_cast<int32_t>(max_batch_size));
    auto* in = c.add_input();
    in->set_name("X");
    in->set_data_type(inference::TYPE_FP32);
    in->add_dims(-1);
    auto* sum = c.add_output();
    sum->set_name("SUM");
    sum->set_data_type(inference::TYPE_FP32);
    auto* twice = c.add_output();
    twice->set_name("TWICE");
    twice->set_data_type(inference::TYPE_FP32);
    twice->add_dims(-1);
    return c;
  }

  static Result<InferResponse> Answer(const Options& o, const InferRequest& request) {
    const Tensor& x = request.inputs.at(0);
    if (o.base != nullptr && o.fail_row >= 0 &&
        x.data.data() == o.base + size_t(o.fail_row) * o.row_bytes) {
      return Status::Unavailable("instance lost its GPU");
    }
    InferResponse response;
    response.model = request.model;
    for (Tensor& t : FakeModel(x)) {
      if (request.requested_outputs.empty() ||
          std::count(request.requested_outputs.begin(), request.requested_outputs.end(), t.name)) {
        response.outputs.push_back(std::move(t));
      }
    }
    return response;
  }

  void Respond() {
    int64_t taken = 0;
    bool held = false;
    while (true) {
      const int64_t want =
          std::max<int64_t>(1, std::min<int64_t>(o_.window, o_.expected_requests - taken));
      std::vector<FakeInferenceService::Held> batch = fake.TakeHeld(size_t(want));
      if (batch.empty()) return;  // closed
      taken += static_cast<int64_t>(batch.size());
      if (o_.order == Order::kReverse) {
        std::reverse(batch.begin(), batch.end());
      } else {
        std::shuffle(batch.begin(), batch.end(), rng_);
      }
      for (FakeInferenceService::Held& h : batch) {
        // Counted before the callback: once it runs, the runner may send the next request.
        fake.Answer(std::move(h));
        if (o_.hold_after_first && !held) {
          held = true;
          std::unique_lock lock(mu_);
          cv_.wait(lock, [&] { return released_; });
        }
      }
    }
  }

  const Options o_;
  std::mt19937 rng_;  // responder thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;  // guarded by mu_
  std::thread responder_;
};

Tensor RandomX(std::mt19937& rng, int64_t rows, int64_t width) {
  std::vector<float> x(size_t(rows * width));
  for (float& v : x) v = std::uniform_real_distribution<float>(-3, 3)(rng);
  return MakeTensor<float>("X", DataType::kFp32, {rows, width}, x);
}

void ExpectSameTensor(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.datatype, want.datatype);
  EXPECT_EQ(got.shape, want.shape);
  ASSERT_EQ(got.data.size(), want.data.size());
  EXPECT_EQ(std::memcmp(got.data.data(), want.data.data(), got.data.size()), 0) << got.name;
}

TEST(RunBatchedTest, OutOfOrderAnswersGiveTheSingleShotResult) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 200; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const int64_t rows = std::uniform_int_distribution<int64_t>(1, 120)(rng);
    const int64_t width = std::uniform_int_distribution<int64_t>(1, 5)(rng);
    const int64_t model_max = std::uniform_int_distribution<int64_t>(1, 16)(rng);
    BatchOptions options;
    options.max_in_flight = std::uniform_int_distribution<int>(1, 6)(rng);
    options.max_batch_size = std::bernoulli_distribution(0.3)(rng)
                                 ? std::uniform_int_distribution<int64_t>(1, 20)(rng)
                                 : 0;
    const int64_t chunk =
        options.max_batch_size > 0 ? std::min(options.max_batch_size, model_max) : model_max;
    const int64_t requests = (rows + chunk - 1) / chunk;
    if (std::bernoulli_distribution(0.3)(rng)) options.requested_outputs = {"TWICE"};
    Tensor x = RandomX(rng, rows, width);

    DeferredResponder::Options so;
    so.max_batch_size = model_max;
    so.order = static_cast<Order>(iter % 3);
    so.window = options.max_in_flight;
    so.expected_requests = requests;
    so.seed = uint32_t(iter);
    so.base = x.data.data();
    so.row_bytes = size_t(width) * sizeof(float);
    DeferredResponder deferred(so);
    FakeInferenceService& service = deferred.fake;

    auto result = RunBatched(service, "m", std::span(&x, 1), options);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    std::vector<Tensor> want = FakeModel(x);
    if (!options.requested_outputs.empty()) want.erase(want.begin());
    ASSERT_EQ(result->size(), want.size());
    for (const Tensor& w : want) ExpectSameTensor(result->at(w.name), w);

    EXPECT_EQ(service.calls(), requests);
    EXPECT_LE(service.peak_outstanding(), options.max_in_flight);
    // Every chunk fits the batch size and is a slice of X, in order: no copies.
    std::vector<int64_t> expected_begins;
    for (int64_t b = 0; b < rows; b += chunk) expected_begins.push_back(b);
    EXPECT_EQ(deferred.chunk_begins(), expected_begins);
    for (int64_t r : deferred.chunk_rows()) EXPECT_LE(r, chunk);
  }
}

TEST(RunBatchedTest, PeakInFlightReachesButNeverExceedsTheLimit) {
  std::mt19937 rng(5);
  Tensor x = RandomX(rng, 100, 2);
  DeferredResponder::Options so;
  so.max_batch_size = 4;
  so.order = Order::kShuffle;
  so.window = 3;
  so.expected_requests = 25;
  DeferredResponder deferred(so);
  FakeInferenceService& service = deferred.fake;
  BatchOptions options;
  options.max_in_flight = 3;
  auto result = RunBatched(service, "m", std::span(&x, 1), options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(service.peak_outstanding(), 3);
  EXPECT_EQ(service.calls(), 25);
}

TEST(RunBatchedTest, ChunkErrorFailsTheCallAfterEveryCallback) {
  std::mt19937 rng(3);
  Tensor x = RandomX(rng, 50, 3);  // chunks of 8: [0,8) ... [48,50)
  DeferredResponder::Options so;
  so.max_batch_size = 8;
  so.order = Order::kReverse;  // the last chunk, which fails, is answered first
  so.window = 7;
  so.expected_requests = 7;
  so.base = x.data.data();
  so.row_bytes = 3 * sizeof(float);
  so.fail_row = 48;
  so.hold_after_first = true;
  DeferredResponder deferred(so);
  FakeInferenceService& service = deferred.fake;
  BatchOptions options;
  options.max_in_flight = 7;

  auto future = std::async(std::launch::async,
                           [&] { return RunBatched(service, "m", std::span(&x, 1), options); });
  service.WaitForAnswered(1);
  // The error is in, six callbacks are not: the call must still be waiting.
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  deferred.Release();
  auto result = future.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(),
              HasSubstr("model 'm' rows [48, 50) of 50: instance lost its GPU"));
  EXPECT_EQ(service.answered(), 7);
}

TEST(RunBatchedTest, StopsSendingAfterAnError) {
  std::mt19937 rng(4);
  Tensor x = RandomX(rng, 80, 1);  // 10 chunks of 8; the first fails inline
  DeferredResponder::Options so;
  so.order = Order::kInline;
  so.base = x.data.data();
  so.row_bytes = sizeof(float);
  so.fail_row = 0;
  DeferredResponder deferred(so);
  FakeInferenceService& service = deferred.fake;
  auto result = RunBatched(service, "m", std::span(&x, 1), BatchOptions{});
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("rows [0, 8) of 80"));
  EXPECT_EQ(service.calls(), 1);
}

TEST(RunBatchedTest, ZeroRowsGiveZeroRowOutputsWithoutInferring) {
  Tensor x{"X", DataType::kFp32, {0, 4}, Buffer::Allocate(0)};
  DeferredResponder::Options so;
  so.order = Order::kInline;
  DeferredResponder deferred(so);
  FakeInferenceService& service = deferred.fake;
  auto result = RunBatched(service, "m", std::span(&x, 1), BatchOptions{});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(service.calls(), 0);
  EXPECT_EQ(result->at("SUM").shape, (Shape{0}));
  EXPECT_EQ(result->at("TWICE").shape, (Shape{0, 0}));  // variable dim -> 0
  EXPECT_EQ(result->at("TWICE").datatype, DataType::kFp32);

  BatchOptions unknown;
  unknown.requested_outputs = {"NOPE"};
  auto bad = RunBatched(service, "m", std::span(&x, 1), unknown);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("no output 'NOPE'"));
}

TEST(RunBatchedTest, RejectsBadInputs) {
  DeferredResponder::Options so;
  so.order = Order::kInline;
  DeferredResponder deferred(so);
  FakeInferenceService& service = deferred.fake;
  std::vector<float> v(12);
  std::vector<Tensor> mismatched{MakeTensor<float>("X", DataType::kFp32, {4, 3}, v),
                                 MakeTensor<float>("Y", DataType::kFp32, {3, 4}, v)};
  auto r = RunBatched(service, "m", mismatched, BatchOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("input 'Y' has 3 rows but input 'X' has 4"));

  Tensor short_buffer{"X", DataType::kFp32, {4, 4}, Buffer::Allocate(12)};
  r = RunBatched(service, "m", std::span(&short_buffer, 1), BatchOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("holds 12 bytes"));

  r = RunBatched(service, "m", {}, BatchOptions{});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  BatchOptions zero_window;
  zero_window.max_in_flight = 0;
  r = RunBatched(service, "m", mismatched, zero_window);
  EXPECT_THAT(r.status().message(), HasSubstr("max_in_flight 0"));
  r = RunBatched(service, "other", std::span(&short_buffer, 1), BatchOptions{});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service.calls(), 0);
}

TEST(SplitRowsTest, CoversRowsInOrder) {
  for (int64_t rows = 0; rows < 40; ++rows) {
    for (int64_t chunk = 1; chunk < 12; ++chunk) {
      auto ranges = SplitRows(rows, chunk);
      int64_t next = 0;
      for (auto [b, e] : ranges) {
        EXPECT_EQ(b, next);
        EXPECT_GT(e, b);
        EXPECT_LE(e - b, chunk);
        next = e;
      }
      EXPECT_EQ(next, rows);
      EXPECT_EQ(int64_t(ranges.size()), (rows + chunk - 1) / chunk);
    }
  }
}

TEST(SliceRowsTest, SharesTheBuffer) {
  std::vector<int32_t> v{0, 1, 2, 3, 4, 5};
  Tensor t = MakeTensor<int32_t>("t", DataType::kInt32, {3, 2}, v);
  auto s = SliceRows(t, 1, 3);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->shape, (Shape{2, 2}));
  EXPECT_EQ(s->data.data(), t.data.data() + 2 * sizeof(int32_t));
  EXPECT_EQ(s->data_as<int32_t>()[0], 2);
  EXPECT_FALSE(SliceRows(t, 2, 4).ok());
  Tensor bytes{"b", DataType::kBytes, {1}, MakeBytesBuffer(std::vector<std::string>{"x"})};
  EXPECT_EQ(SliceRows(bytes, 0, 1).status().code(), StatusCode::kUnsupported);
}

// End to end with the real Engine and the identity backend.
class RunBatchedEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Constituents [jets, slots, features] plus a BOOL mask, batched by 16, dynamic batcher on.
    engine_ =
        quiver::testing::TestEngineBuilder("columnar")
            .WithRepository(std::filesystem::path(QUIVER_SOURCE_DIR) / "models")
            .WithModel("padded_identity", "identity",
                       "max_batch_size: 16\n"
                       "input { name: \"PF\" data_type: TYPE_FP32 dims: [ -1, 3 ] }\n"
                       "input { name: \"MASK\" data_type: TYPE_BOOL dims: [ -1 ] }\n"
                       "output { name: \"PF_OUT\" data_type: TYPE_FP32 dims: [ -1, 3 ] }\n"
                       "output { name: \"MASK_OUT\" data_type: TYPE_BOOL dims: [ -1 ] }\n"
                       "instance_group { count: 2 kind: KIND_CPU }\n"
                       "dynamic_batching { max_queue_delay_microseconds: 100 }\n")
            .WithStartupModels({"identity_fp32", "padded_identity"})
            .Build();
    ASSERT_TRUE(engine_);
    ASSERT_TRUE(engine_->ModelReady("identity_fp32", ""));
    ASSERT_TRUE(engine_->ModelReady("padded_identity", ""));
  }
  void TearDown() override { engine_.reset(); }

  quiver::testing::TestEngine engine_;
};

TEST_F(RunBatchedEngineTest, ShippedIdentityModelWholeAndForcedSplit) {
  // models/identity_fp32: max_batch_size 0, INPUT0 dims [-1]: one request by default.
  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i) * 0.5f;
  Tensor in = MakeTensor<float>("INPUT0", DataType::kFp32, {1000}, values);
  auto whole = RunBatched(*engine_, "identity_fp32", std::span(&in, 1), BatchOptions{});
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ExpectSameTensor(whole->at("OUTPUT0"), Tensor{"OUTPUT0", in.datatype, in.shape, in.data});

  BatchOptions split;
  split.max_batch_size = 7;  // the caller asserts rows are independent
  split.max_in_flight = 3;
  auto parts = RunBatched(*engine_, "identity_fp32", std::span(&in, 1), split);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ExpectSameTensor(parts->at("OUTPUT0"), Tensor{"OUTPUT0", in.datatype, in.shape, in.data});

  Tensor empty{"INPUT0", DataType::kFp32, {0}, Buffer::Allocate(0)};
  auto none = RunBatched(*engine_, "identity_fp32", std::span(&empty, 1), BatchOptions{});
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->at("OUTPUT0").shape, (Shape{0}));
}

TEST_F(RunBatchedEngineTest, PaddedJetsRoundTripThroughTheEngine) {
  // 300 jets with 0..12 constituents, 3 features; pad to 8 slots keeping the top 8 by pT.
  std::mt19937 rng(11);
  std::vector<int64_t> offsets{0};
  for (int j = 0; j < 300; ++j) {
    offsets.push_back(offsets.back() + std::uniform_int_distribution<int>(0, 12)(rng));
  }
  const size_t content = size_t(offsets.back());
  std::vector<float> pt(content), eta(content), phi(content);
  for (size_t i = 0; i < content; ++i) {
    pt[i] = std::uniform_real_distribution<float>(0, 100)(rng);
    eta[i] = std::uniform_real_distribution<float>(-2.5, 2.5)(rng);
    phi[i] = std::uniform_real_distribution<float>(-3.14f, 3.14f)(rng);
  }
  JaggedView jets{"jets", offsets, {{"pt", pt}, {"eta", eta}, {"phi", phi}}};
  PadOptions pad{.max_len = 8,
                 .truncation = Truncation::kTopByKey,
                 .sort_key = {"pt", pt},
                 .values_name = "PF",
                 .mask_name = "MASK"};
  auto padded = PadJagged(jets, pad);
  ASSERT_TRUE(padded.ok()) << padded.status().ToString();

  std::vector<Tensor> inputs{padded->values, padded->mask};
  BatchOptions options;
  options.max_in_flight = 5;
  auto out = RunBatched(*engine_, "padded_identity", inputs, options);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSameTensor(out->at("PF_OUT"),
                   Tensor{"PF_OUT", DataType::kFp32, padded->values.shape, padded->values.data});
  ExpectSameTensor(out->at("MASK_OUT"),
                   Tensor{"MASK_OUT", DataType::kBool, padded->mask.shape, padded->mask.data});

  // Back to the constituents: kept ones get their own features, truncated ones the fill.
  auto back = UnpadToContent(out->at("PF_OUT"), jets, pad, -1.f);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->shape, (Shape{offsets.back(), 3}));
  const float* b = back->data_as<float>();
  for (size_t j = 0; j + 1 < offsets.size(); ++j) {
    const int64_t len = offsets[j + 1] - offsets[j];
    int64_t kept = 0;
    for (int64_t p = offsets[j]; p < offsets[j + 1]; ++p) {
      if (b[p * 3] == -1.f) continue;
      ++kept;
      EXPECT_EQ(b[p * 3], pt[size_t(p)]);
      EXPECT_EQ(b[p * 3 + 1], eta[size_t(p)]);
      EXPECT_EQ(b[p * 3 + 2], phi[size_t(p)]);
    }
    EXPECT_EQ(kept, std::min<int64_t>(len, 8)) << "jet " << j;
  }
  // And per jet: the leading constituent's pT is the maximum over the kept ones.
  std::vector<float> lead_pt(content);
  for (size_t i = 0; i < content; ++i) lead_pt[i] = b[i * 3];
  auto lead = ReduceLists(MakeTensor<float>("pt", DataType::kFp32, {offsets.back()}, lead_pt),
                          offsets, Reduction::kMax, 0.f);
  ASSERT_TRUE(lead.ok());
  const float* first_slot = out->at("PF_OUT").data_as<float>();
  for (size_t j = 0; j + 1 < offsets.size(); ++j) {
    if (offsets[j + 1] > offsets[j]) {
      EXPECT_EQ(lead->data_as<float>()[j], first_slot[j * 8 * 3]);
    }
  }

  // Zero jets: zero-row outputs, the engine is not asked.
  std::vector<int64_t> no_jets{0};
  auto empty = PadJagged({"jets", no_jets, jets.fields}, pad);
  ASSERT_TRUE(empty.ok());
  std::vector<Tensor> empty_inputs{empty->values, empty->mask};
  auto none = RunBatched(*engine_, "padded_identity", empty_inputs, options);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->at("PF_OUT").shape, (Shape{0, 0, 3}));
  EXPECT_EQ(none->at("MASK_OUT").shape, (Shape{0, 0}));
}

TEST_F(RunBatchedEngineTest, ServerErrorsNameTheChunk) {
  // A [20, 5] PF tensor does not match dims [-1, 3]: every chunk is rejected.
  std::vector<float> v(20 * 4 * 5);
  std::vector<uint8_t> m(20 * 4, 1);
  std::vector<Tensor> inputs{MakeTensor<float>("PF", DataType::kFp32, {20, 4, 5}, v),
                             MakeTensor<uint8_t>("MASK", DataType::kBool, {20, 4}, m)};
  BatchOptions options;
  options.max_in_flight = 1;
  auto r = RunBatched(*engine_, "padded_identity", inputs, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model 'padded_identity' rows [0, 16) of 20"));
}

}  // namespace
}  // namespace quiver::columnar

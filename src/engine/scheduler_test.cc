#include "engine/scheduler.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "testing/fake_backend.h"

namespace quiver::engine {
namespace {

using quiver::testing::FakeBackend;
using std::chrono::microseconds;

// A [batch, width] FP32 request whose values are base, base + 1, ...
InferRequest MakeRequest(std::string id, int64_t batch, float base, int64_t width = 2) {
  std::vector<float> values(static_cast<size_t>(batch * width));
  for (size_t k = 0; k < values.size(); ++k) values[k] = base + static_cast<float>(k);
  InferRequest r;
  r.model = "m";
  r.id = std::move(id);
  r.inputs.push_back(
      MakeTensor<float>("INPUT0", DataType::kFp32, {batch, width}, std::span<const float>(values)));
  return r;
}

std::vector<float> ExpectedValues(int64_t batch, float base, int64_t width = 2) {
  std::vector<float> values(static_cast<size_t>(batch * width));
  for (size_t k = 0; k < values.size(); ++k) values[k] = base + static_cast<float>(k);
  return values;
}

std::vector<float> Values(const Tensor& t) {
  std::vector<float> v(t.data.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

std::vector<std::string> Strings(const Tensor& t) {
  std::vector<std::string> out;
  auto offsets = BytesElementOffsets(t.data.bytes());
  EXPECT_TRUE(offsets.ok());
  if (!offsets.ok()) return out;
  for (size_t i = 0; i + 1 < offsets->size(); ++i) {
    const size_t begin = (*offsets)[i] + 4;
    out.emplace_back(reinterpret_cast<const char*>(t.data.data()) + begin,
                     (*offsets)[i + 1] - begin);
  }
  return out;
}

// Collects callback results by key and counts calls. Thread-safe.
class Collector {
 public:
  InferCallback Callback(std::string key) {
    return [this, key = std::move(key)](Result<InferResponse> result) {
      std::lock_guard lock(mutex_);
      ++calls_[key];
      order_.push_back(key);
      results_.insert_or_assign(key, std::move(result));
      cv_.notify_all();
    };
  }
  void WaitFor(size_t count) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return order_.size() >= count; });
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return order_.size();
  }
  std::vector<std::string> order() const {
    std::lock_guard lock(mutex_);
    return order_;
  }
  int calls(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(key);
    return it == calls_.end() ? 0 : it->second;
  }
  Result<InferResponse> Get(const std::string& key) const {
    std::lock_guard lock(mutex_);
    return results_.at(key);
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, int> calls_;
  std::map<std::string, Result<InferResponse>> results_;
  std::vector<std::string> order_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    backend_.OpenGate();
    scheduler_.reset();
  }

  static SchedulerOptions Options() {
    SchedulerOptions o;
    o.model_name = "m";
    o.model_version = "1";
    o.output_names = {"OUTPUT0"};
    return o;
  }
  static SchedulerOptions Batching(int64_t max_batch_size, uint64_t delay_us) {
    SchedulerOptions o = Options();
    o.max_batch_size = max_batch_size;
    o.dynamic_batching = true;
    o.max_queue_delay_us = delay_us;
    return o;
  }

  Scheduler& Make(SchedulerOptions options, int instances = 1) {
    scheduler_ =
        std::make_unique<Scheduler>(std::move(options), backend_.MakeInstances(instances), clock_);
    return *scheduler_;
  }

  void ExpectOk(const std::string& key, int64_t batch, float base) {
    Result<InferResponse> r = collector_.Get(key);
    ASSERT_TRUE(r.ok()) << key << ": " << r.status().ToString();
    EXPECT_EQ(r->model, "m");
    EXPECT_EQ(r->version, "1");
    EXPECT_EQ(r->id, key);
    ASSERT_EQ(r->outputs.size(), 1u);
    EXPECT_EQ(r->outputs[0].name, "OUTPUT0");
    EXPECT_EQ(r->outputs[0].shape, (Shape{batch, 2}));
    EXPECT_EQ(Values(r->outputs[0]), ExpectedValues(batch, base)) << key;
  }

  std::vector<int64_t> BatchSizes() const {
    std::vector<int64_t> sizes;
    for (const auto& e : backend_.executions()) sizes.push_back(e.batch_size);
    return sizes;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  FakeBackend backend_;
  Collector collector_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, RunsInlineWhenInstanceIdleWithoutBatching) {
  Scheduler& s = Make(Options(), 2);
  std::thread::id callback_thread;
  bool done = false;
  s.Enqueue(MakeRequest("a", 1, 0), 0, [&](Result<InferResponse> r) {
    EXPECT_TRUE(r.ok());
    callback_thread = std::this_thread::get_id();
    done = true;
  });
  EXPECT_TRUE(done) << "callback must run before Enqueue returns";
  EXPECT_EQ(callback_thread, std::this_thread::get_id());
  EXPECT_EQ(s.PendingCount(), 0u);
}

TEST_F(SchedulerTest, RunsInlineWithZeroDelayBatching) {
  Scheduler& s = Make(Batching(8, 0));
  s.Enqueue(MakeRequest("a", 3, 1), 3, collector_.Callback("a"));
  ASSERT_EQ(collector_.size(), 1u);
  ExpectOk("a", 3, 1);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{3}));
}

// A request that alone reaches a preferred size would be dispatched at once anyway, so
// it skips the hand-off even though the model has a queue delay.
TEST_F(SchedulerTest, RunsInlineWhenRequestAloneReachesPreferredSize) {
  SchedulerOptions o = Batching(16, 1000);
  o.preferred_batch_sizes = {4, 8};
  Scheduler& s = Make(o);
  s.Enqueue(MakeRequest("p", 4, 1), 4, collector_.Callback("p"));
  ASSERT_EQ(collector_.size(), 1u) << "a preferred-size request must run before Enqueue returns";
  ExpectOk("p", 4, 1);
  s.Enqueue(MakeRequest("q", 3, 2), 3, collector_.Callback("q"));
  EXPECT_EQ(collector_.size(), 1u) << "a smaller request waits for the queue delay";
  clock_->Advance(std::chrono::microseconds(1000));
  s.WaitIdleForTest();
  ASSERT_EQ(collector_.size(), 2u);
  ExpectOk("q", 3, 2);
}

TEST_F(SchedulerTest, PassesAllOutputsWhenNoneRequested) {
  SchedulerOptions o = Options();
  o.output_names = {"OUTPUT0", "OUTPUT1"};
  Scheduler& s = Make(o);
  s.Enqueue(MakeRequest("all", 1, 0), 0, collector_.Callback("all"));
  InferRequest some = MakeRequest("some", 1, 0);
  some.requested_outputs = {"OUTPUT1"};
  s.Enqueue(std::move(some), 0, collector_.Callback("some"));
  auto executions = backend_.executions();
  ASSERT_EQ(executions.size(), 2u);
  EXPECT_EQ(executions[0].requested_outputs, (std::vector<std::string>{"OUTPUT0", "OUTPUT1"}));
  EXPECT_EQ(executions[1].requested_outputs, (std::vector<std::string>{"OUTPUT1"}));
  EXPECT_EQ(collector_.Get("all")->outputs.size(), 2u);
  ASSERT_EQ(collector_.Get("some")->outputs.size(), 1u);
  EXPECT_EQ(collector_.Get("some")->outputs[0].name, "OUTPUT1");
}

TEST_F(SchedulerTest, FlushesOnMaxQueueDelay) {
  Scheduler& s = Make(Batching(8, 100));
  s.Enqueue(MakeRequest("a", 1, 0), 1, collector_.Callback("a"));
  s.Enqueue(MakeRequest("b", 2, 10), 2, collector_.Callback("b"));
  s.WaitIdleForTest();
  EXPECT_EQ(backend_.execution_count(), 0);
  EXPECT_EQ(s.PendingCount(), 2u);
  clock_->Advance(microseconds(99));
  s.WaitIdleForTest();
  EXPECT_EQ(backend_.execution_count(), 0);
  EXPECT_EQ(collector_.size(), 0u);
  clock_->Advance(microseconds(1));
  collector_.WaitFor(2);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{3}));
  ExpectOk("a", 1, 0);
  ExpectOk("b", 2, 10);
}

TEST_F(SchedulerTest, DispatchesPreferredBatchSizeWithoutWaiting) {
  SchedulerOptions o = Batching(8, 1000);
  o.preferred_batch_sizes = {2, 4};
  Scheduler& s = Make(o);
  // Occupies the instance: a preferred size leaves at once (inline, on its own thread),
  // then blocks at the gate.
  backend_.CloseGate();
  std::thread occupier(
      [&] { s.Enqueue(MakeRequest("first", 2, 0), 2, collector_.Callback("first")); });
  backend_.WaitForBlocked(1);
  for (int i = 0; i < 5; ++i) {
    const std::string id = "r" + std::to_string(i);
    s.Enqueue(MakeRequest(id, 1, static_cast<float>(10 * i)), 1, collector_.Callback(id));
  }
  backend_.OpenGate();
  occupier.join();
  // Prefix sums 1..5 of the queue: 4 is the largest preferred one; the fifth waits.
  collector_.WaitFor(5);
  s.WaitIdleForTest();
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(collector_.calls("r4"), 0);
  clock_->Advance(microseconds(1000));
  collector_.WaitFor(6);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{2, 4, 1}));
  for (int i = 0; i < 5; ++i) {
    // (std::string("r") + ...: g++ 12 -O3 flags "r" + std::string with a false -Wrestrict.)
    ExpectOk(std::string("r") + std::to_string(i), 1, static_cast<float>(10 * i));
  }
}

TEST_F(SchedulerTest, RequestLargerThanPreferredSizeWaitsForDelay) {
  SchedulerOptions o = Batching(8, 100);
  o.preferred_batch_sizes = {2};
  Scheduler& s = Make(o);
  s.Enqueue(MakeRequest("big", 3, 0), 3, collector_.Callback("big"));
  s.WaitIdleForTest();
  EXPECT_EQ(backend_.execution_count(), 0);
  clock_->Advance(microseconds(100));
  collector_.WaitFor(1);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{3}));
  ExpectOk("big", 3, 0);
}

TEST_F(SchedulerTest, FullMaxBatchSizeDispatchesImmediately) {
  Scheduler& s = Make(Batching(4, 1000000));
  s.Enqueue(MakeRequest("a", 2, 0), 2, collector_.Callback("a"));
  s.Enqueue(MakeRequest("b", 2, 100), 2, collector_.Callback("b"));
  collector_.WaitFor(2);  // no Advance: the full batch did not wait
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{4}));
  ExpectOk("a", 2, 0);
  ExpectOk("b", 2, 100);
}

TEST_F(SchedulerTest, UnmergeableRequestsRunApart) {
  SchedulerOptions o = Batching(8, 100);
  o.output_names = {"OUTPUT0", "OUTPUT1"};
  Scheduler& s = Make(o);
  s.Enqueue(MakeRequest("w2", 1, 0, 2), 1, collector_.Callback("w2"));
  s.Enqueue(MakeRequest("w3", 1, 0, 3), 1, collector_.Callback("w3"));  // other dim 1
  InferRequest other_outputs = MakeRequest("out1", 1, 0, 3);
  other_outputs.requested_outputs = {"OUTPUT1"};
  s.Enqueue(std::move(other_outputs), 1, collector_.Callback("out1"));
  s.Enqueue(MakeRequest("out1b", 1, 5, 3), 1, collector_.Callback("out1b"));
  // w2 and w3 cannot grow (the next request is incompatible): they ran at once.
  collector_.WaitFor(2);
  s.WaitIdleForTest();
  EXPECT_EQ(collector_.size(), 3u);  // out1 too: its successor wants other outputs
  EXPECT_EQ(collector_.calls("out1b"), 0);
  clock_->Advance(microseconds(100));
  collector_.WaitFor(4);
  auto executions = backend_.executions();
  ASSERT_EQ(executions.size(), 4u);
  EXPECT_EQ(executions[0].input_shapes[0], (Shape{1, 2}));
  EXPECT_EQ(executions[1].input_shapes[0], (Shape{1, 3}));
  EXPECT_EQ(executions[2].requested_outputs, (std::vector<std::string>{"OUTPUT1"}));
  EXPECT_EQ(executions[3].requested_outputs, (std::vector<std::string>{"OUTPUT0", "OUTPUT1"}));
  for (const auto& e : executions) EXPECT_EQ(e.batch_size, 1);
  for (const char* key : {"w2", "w3", "out1", "out1b"}) EXPECT_TRUE(collector_.Get(key).ok());
}

TEST_F(SchedulerTest, MergesInputsListedInAnotherOrder) {
  Scheduler& s = Make(Batching(4, 1000000));
  auto two_inputs = [](std::string id, float base, bool swapped) {
    InferRequest r = MakeRequest(std::move(id), 2, base);
    std::vector<int32_t> y = {static_cast<int32_t>(base), static_cast<int32_t>(base) + 1};
    r.inputs.push_back(MakeTensor<int32_t>("Y", DataType::kInt32, {2, 1}, std::span(y)));
    if (swapped) std::swap(r.inputs[0], r.inputs[1]);
    return r;
  };
  s.Enqueue(two_inputs("a", 0, false), 2, collector_.Callback("a"));
  s.Enqueue(two_inputs("b", 50, true), 2, collector_.Callback("b"));
  collector_.WaitFor(2);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{4}));
  ExpectOk("a", 2, 0);
  ExpectOk("b", 2, 50);
}

TEST_F(SchedulerTest, SplitsOutputsToEachRequest) {
  Scheduler& s = Make(Batching(8, 100));
  s.Enqueue(MakeRequest("a", 1, 0), 1, collector_.Callback("a"));
  s.Enqueue(MakeRequest("b", 2, 100), 2, collector_.Callback("b"));
  s.Enqueue(MakeRequest("c", 3, 200), 3, collector_.Callback("c"));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(3);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{6}));
  EXPECT_EQ(backend_.executions()[0].input_shapes[0], (Shape{6, 2}));
  ExpectOk("a", 1, 0);
  ExpectOk("b", 2, 100);
  ExpectOk("c", 3, 200);
  // Zero-copy split: the outputs are views of one buffer, back to back.
  const Tensor a = collector_.Get("a")->outputs[0];
  const Tensor b = collector_.Get("b")->outputs[0];
  EXPECT_EQ(a.data.data() + a.data.size(), b.data.data());
}

TEST_F(SchedulerTest, BatchesBytesTensors) {
  Scheduler& s = Make(Batching(8, 100));
  auto bytes_request = [](std::string id, std::vector<std::string> values) {
    InferRequest r;
    r.id = std::move(id);
    const auto n = static_cast<int64_t>(values.size());
    r.inputs.push_back(Tensor{"TEXT", DataType::kBytes, {n, 1}, MakeBytesBuffer(values)});
    return r;
  };
  s.Enqueue(bytes_request("a", {"x", ""}), 2, collector_.Callback("a"));
  s.Enqueue(bytes_request("b", {"hello"}), 1, collector_.Callback("b"));
  s.Enqueue(bytes_request("c", {"long string here", "y", "zz"}), 3, collector_.Callback("c"));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(3);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{6}));
  auto check = [&](const std::string& key, std::vector<std::string> expected) {
    Result<InferResponse> r = collector_.Get(key);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->outputs.size(), 1u);
    EXPECT_EQ(r->outputs[0].datatype, DataType::kBytes);
    EXPECT_EQ(r->outputs[0].shape, (Shape{static_cast<int64_t>(expected.size()), 1}));
    EXPECT_EQ(Strings(r->outputs[0]), expected);
  };
  check("a", {"x", ""});
  check("b", {"hello"});
  check("c", {"long string here", "y", "zz"});
}

TEST_F(SchedulerTest, QueueFullReturnsResourceExhausted) {
  SchedulerOptions o = Batching(8, 1000);
  o.max_queue_size = 2;
  Scheduler& s = Make(o);
  s.Enqueue(MakeRequest("a", 1, 0), 1, collector_.Callback("a"));
  s.Enqueue(MakeRequest("b", 1, 0), 1, collector_.Callback("b"));
  s.Enqueue(MakeRequest("c", 1, 0), 1, collector_.Callback("c"));
  ASSERT_EQ(collector_.size(), 1u);  // answered inline, never blocked
  Result<InferResponse> c = collector_.Get("c");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(c.status().message(), "queue of model 'm' version '1' is full (2 requests)");
  clock_->Advance(microseconds(1000));
  collector_.WaitFor(3);
  EXPECT_TRUE(collector_.Get("a").ok());
  EXPECT_TRUE(collector_.Get("b").ok());
  EXPECT_EQ(s.Statistics().fail.count, 1u);
}

TEST_F(SchedulerTest, TimesOutQueuedRequestWhileInstancesBusy) {
  SchedulerOptions o = Options();
  o.allow_timeout_override = true;
  Scheduler& s = Make(o, 2);
  backend_.CloseGate();
  // Both instances run a request inline on their callers' threads, blocked at the gate.
  std::thread t1([&] { s.Enqueue(MakeRequest("busy1", 1, 0), 0, collector_.Callback("busy1")); });
  std::thread t2([&] { s.Enqueue(MakeRequest("busy2", 1, 0), 0, collector_.Callback("busy2")); });
  backend_.WaitForBlocked(2);
  InferRequest timed = MakeRequest("timed", 1, 0);
  timed.timeout_us = 100;
  s.Enqueue(std::move(timed), 0, collector_.Callback("timed"));
  s.Enqueue(MakeRequest("patient", 1, 7), 0, collector_.Callback("patient"));
  clock_->Advance(microseconds(99));
  s.WaitIdleForTest(2);
  EXPECT_EQ(collector_.size(), 0u);
  clock_->Advance(microseconds(1));
  collector_.WaitFor(1);
  Result<InferResponse> r = collector_.Get("timed");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "request timeout expired");
  EXPECT_EQ(s.Statistics().fail.count, 1u);
  EXPECT_EQ(s.Statistics().fail.ns, 100000u);
  backend_.OpenGate();
  t1.join();
  t2.join();
  collector_.WaitFor(4);
  EXPECT_EQ(collector_.calls("timed"), 1);
  ExpectOk("patient", 1, 7);
  EXPECT_EQ(backend_.execution_count(), 3);
}

TEST_F(SchedulerTest, TimeoutOverrideOnlyShortensDefault) {
  SchedulerOptions o = Options();
  o.default_timeout_us = 100;
  o.allow_timeout_override = true;
  Scheduler& s = Make(o);
  backend_.CloseGate();
  std::thread busy([&] { s.Enqueue(MakeRequest("busy", 1, 0), 0, collector_.Callback("busy")); });
  backend_.WaitForBlocked(1);
  InferRequest shorter = MakeRequest("shorter", 1, 0);
  shorter.timeout_us = 50;
  InferRequest longer = MakeRequest("longer", 1, 0);
  longer.timeout_us = 5000;  // may not extend the default
  s.Enqueue(std::move(shorter), 0, collector_.Callback("shorter"));
  s.Enqueue(std::move(longer), 0, collector_.Callback("longer"));
  s.Enqueue(MakeRequest("default", 1, 0), 0, collector_.Callback("default"));
  clock_->Advance(microseconds(50));
  collector_.WaitFor(1);
  s.WaitIdleForTest(1);
  EXPECT_EQ(collector_.order(), (std::vector<std::string>{"shorter"}));
  clock_->Advance(microseconds(50));
  collector_.WaitFor(3);
  for (const char* id : {"shorter", "longer", "default"}) {
    EXPECT_EQ(collector_.Get(id).status().code(), StatusCode::kUnavailable) << id;
  }
  backend_.OpenGate();
  busy.join();
  EXPECT_TRUE(collector_.Get("busy").ok());
  EXPECT_EQ(backend_.execution_count(), 1);
}

TEST_F(SchedulerTest, OverrideIgnoredWhenNotAllowed) {
  SchedulerOptions o = Batching(8, 100);
  o.default_timeout_us = 0;
  Scheduler& s = Make(o);
  InferRequest r = MakeRequest("r", 1, 0);
  r.timeout_us = 10;
  s.Enqueue(std::move(r), 1, collector_.Callback("r"));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(1);
  EXPECT_TRUE(collector_.Get("r").ok());
}

TEST_F(SchedulerTest, BackendErrorFailsEveryRequestInBatch) {
  Scheduler& s = Make(Batching(8, 100));
  backend_.FailNextExecutions(1, Status::Internal("boom"));
  for (const char* id : {"a", "b", "c"})
    s.Enqueue(MakeRequest(id, 1, 0), 1, collector_.Callback(id));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(3);
  for (const char* id : {"a", "b", "c"}) {
    Result<InferResponse> r = collector_.Get(id);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_EQ(r.status().message(), "model 'm' version '1': boom");
  }
  ModelStatistics stats = s.Statistics();
  EXPECT_EQ(stats.fail.count, 3u);
  EXPECT_EQ(stats.success.count, 0u);
  EXPECT_EQ(stats.execution_count, 0u);
  // The next batch is fine again.
  s.Enqueue(MakeRequest("d", 1, 3), 1, collector_.Callback("d"));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(4);
  ExpectOk("d", 1, 3);
}

TEST_F(SchedulerTest, WrongOutputBatchDimensionFailsBatch) {
  Scheduler& s = Make(Batching(8, 100));
  backend_.SetExecuteFn(
      [](int, const BackendBatch& batch, std::vector<Tensor>& outputs, ComputeTimes&) {
        std::vector<float> v = {1, 2};
        outputs.push_back(MakeTensor<float>("OUTPUT0", DataType::kFp32, {1, 2}, std::span(v)));
        return Status::Ok();
      });
  s.Enqueue(MakeRequest("a", 1, 0), 1, collector_.Callback("a"));
  s.Enqueue(MakeRequest("b", 1, 0), 1, collector_.Callback("b"));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(2);
  for (const char* id : {"a", "b"}) {
    Result<InferResponse> r = collector_.Get(id);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_NE(r.status().message().find("output 'OUTPUT0'"), std::string::npos)
        << r.status().message();
  }
}

TEST_F(SchedulerTest, BackendExceptionBecomesInternalError) {
  Scheduler& s = Make(Options());
  backend_.SetExecuteFn([](int, const BackendBatch&, std::vector<Tensor>&,
                           ComputeTimes&) -> Status { throw std::runtime_error("kaput"); });
  s.Enqueue(MakeRequest("a", 1, 0), 0, collector_.Callback("a"));
  Result<InferResponse> r = collector_.Get("a");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("kaput"), std::string::npos);
}

TEST_F(SchedulerTest, ThrowingCallbackDoesNotEscape) {
  Scheduler& s = Make(Options());
  s.Enqueue(MakeRequest("a", 1, 0), 0,
            [](Result<InferResponse>) { throw std::runtime_error("callback"); });
  s.Enqueue(MakeRequest("b", 1, 0), 0, collector_.Callback("b"));
  EXPECT_TRUE(collector_.Get("b").ok());
}

TEST_F(SchedulerTest, PreservesOrdering) {
  SchedulerOptions o = Batching(8, 100);
  o.preserve_ordering = true;
  Scheduler& s = Make(o, 2);
  std::mutex mutex;
  std::condition_variable cv;
  bool first_started = false;
  bool release_first = false;
  backend_.SetExecuteFn(
      [&](int, const BackendBatch& batch, std::vector<Tensor>& outputs, ComputeTimes&) {
        if (batch.inputs[0].shape[1] == 2) {  // "first"
          std::unique_lock lock(mutex);
          first_started = true;
          cv.notify_all();
          cv.wait(lock, [&] { return release_first; });
        }
        outputs.push_back(batch.inputs[0]);
        return Status::Ok();
      });
  s.Enqueue(MakeRequest("first", 1, 0, 2), 1, collector_.Callback("first"));
  // Incompatible: "first" leaves at once, "second" after the delay, on the other instance.
  s.Enqueue(MakeRequest("second", 1, 0, 3), 1, collector_.Callback("second"));
  clock_->Advance(microseconds(100));
  // "second" has finished executing; only "first"'s batch is still out. Its worker may have
  // taken it without having reached Execute yet ("second" can overtake it), so wait for that.
  s.WaitIdleForTest(1);
  {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return first_started; });
  }
  EXPECT_EQ(backend_.execution_count(), 2);
  EXPECT_EQ(collector_.size(), 0u) << "second must wait for first";
  EXPECT_EQ(s.PendingCount(), 2u);
  {
    std::lock_guard lock(mutex);
    release_first = true;
  }
  cv.notify_all();
  collector_.WaitFor(2);
  EXPECT_EQ(collector_.order(), (std::vector<std::string>{"first", "second"}));
  s.Shutdown();  // before the captured locals go away
}

TEST_F(SchedulerTest, CallbackMayEnqueue) {
  Scheduler& s = Make(Options());
  std::mutex mutex;
  std::condition_variable cv;
  int depth = 0;
  std::function<void(Result<InferResponse>)> again = [&](Result<InferResponse> r) {
    EXPECT_TRUE(r.ok());
    std::lock_guard lock(mutex);
    if (++depth < 100) {
      s.Enqueue(MakeRequest("next", 1, 0), 0, again);
    }
    cv.notify_all();
  };
  s.Enqueue(MakeRequest("first", 1, 0), 0, [&](Result<InferResponse> r) {
    EXPECT_TRUE(r.ok());
    s.Enqueue(MakeRequest("next", 1, 0), 0, again);
  });
  {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return depth == 100; });
  }
  s.Shutdown();  // before the captured locals go away
}

TEST_F(SchedulerTest, ShutdownDrainsQueuedRequestsAndRejectsNew) {
  Scheduler& s = Make(Batching(8, 1000000));
  for (const char* id : {"a", "b", "c"})
    s.Enqueue(MakeRequest(id, 1, 0), 1, collector_.Callback(id));
  EXPECT_EQ(s.PendingCount(), 3u);
  s.Shutdown();  // the clock never moves: the queued batch is flushed, not timed
  EXPECT_EQ(collector_.size(), 3u);
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(collector_.calls(id), 1);
    EXPECT_TRUE(collector_.Get(id).ok());
  }
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{3}));
  s.Enqueue(MakeRequest("late", 1, 0), 1, collector_.Callback("late"));
  ASSERT_EQ(collector_.calls("late"), 1);
  EXPECT_EQ(collector_.Get("late").status().code(), StatusCode::kUnavailable);
  s.Shutdown();  // idempotent
  EXPECT_EQ(s.PendingCount(), 0u);
}

TEST_F(SchedulerTest, ShutdownWaitsForExecutingRequests) {
  Scheduler& s = Make(Options(), 1);
  backend_.CloseGate();
  std::thread caller(
      [&] { s.Enqueue(MakeRequest("running", 1, 0), 0, collector_.Callback("running")); });
  backend_.WaitForBlocked(1);
  s.Enqueue(MakeRequest("queued1", 1, 1), 0, collector_.Callback("queued1"));
  s.Enqueue(MakeRequest("queued2", 1, 2), 0, collector_.Callback("queued2"));
  std::thread stopper([&] { s.Shutdown(); });
  backend_.OpenGate();
  stopper.join();
  EXPECT_EQ(collector_.size(), 3u);
  for (const char* id : {"running", "queued1", "queued2"}) EXPECT_EQ(collector_.calls(id), 1);
  ExpectOk("queued2", 1, 2);
  caller.join();
}

TEST_F(SchedulerTest, RecordsStatistics) {
  Scheduler& s = Make(Batching(8, 100));
  backend_.SetComputeTimes({1000, 2000, 3000});
  s.Enqueue(MakeRequest("a", 1, 0), 1, collector_.Callback("a"));
  s.Enqueue(MakeRequest("b", 2, 0), 2, collector_.Callback("b"));
  clock_->Advance(microseconds(100));
  collector_.WaitFor(2);
  ModelStatistics st = s.Statistics();
  EXPECT_EQ(st.name, "m");
  EXPECT_EQ(st.version, "1");
  EXPECT_EQ(st.execution_count, 1u);
  EXPECT_EQ(st.inference_count, 3u);
  EXPECT_GT(st.last_inference_ms, 0u);
  EXPECT_EQ(st.success.count, 2u);
  EXPECT_EQ(st.success.ns, 200000u);
  EXPECT_EQ(st.queue.count, 2u);
  EXPECT_EQ(st.queue.ns, 200000u);
  EXPECT_EQ(st.compute_input.count, 2u);
  EXPECT_EQ(st.compute_input.ns, 2000u);
  EXPECT_EQ(st.compute_infer.ns, 4000u);
  EXPECT_EQ(st.compute_output.ns, 6000u);
  EXPECT_EQ(st.fail.count, 0u);
  ASSERT_EQ(st.batch_stats.size(), 1u);
  EXPECT_EQ(st.batch_stats[0].batch_size, 3u);
  EXPECT_EQ(st.batch_stats[0].compute_infer.count, 1u);
  EXPECT_EQ(st.batch_stats[0].compute_infer.ns, 2000u);
  EXPECT_EQ(st.batch_stats[0].compute_output.ns, 3000u);
}

TEST_F(SchedulerTest, MeasuresInferTimeWhenBackendReportsNone) {
  Scheduler& s = Make(Options());
  backend_.SetExecuteFn(
      [&](int, const BackendBatch& batch, std::vector<Tensor>& outputs, ComputeTimes&) {
        clock_->Advance(microseconds(5));
        outputs.push_back(batch.inputs[0]);
        return Status::Ok();
      });
  s.Enqueue(MakeRequest("a", 1, 0), 0, collector_.Callback("a"));
  ModelStatistics st = s.Statistics();
  EXPECT_EQ(st.compute_infer.ns, 5000u);
  EXPECT_EQ(st.success.ns, 5000u);
  EXPECT_EQ(st.queue.ns, 0u);
  EXPECT_EQ(st.inference_count, 1u);  // no batch dimension: one inference
  ASSERT_EQ(st.batch_stats.size(), 1u);
  EXPECT_EQ(st.batch_stats[0].batch_size, 1u);
}

TEST(SchedulerOptionsTest, FromConfig) {
  ModelConfig config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                              name: "m"
                                                              max_batch_size: 16
                                                              output { name: "A" }
                                                              output { name: "B" }
                                                              dynamic_batching {
                                                                preferred_batch_size: [ 4, 8 ]
                                                                max_queue_delay_microseconds: 250
                                                                preserve_ordering: true
                                                                default_queue_policy {
                                                                  default_timeout_microseconds: 1000
                                                                  allow_timeout_override: true
                                                                  max_queue_size: 32
                                                                }
                                                              }
                                                            )pb",
                                                            &config));
  SchedulerOptions o = SchedulerOptions::FromConfig(config, "7");
  EXPECT_EQ(o.model_name, "m");
  EXPECT_EQ(o.model_version, "7");
  EXPECT_EQ(o.max_batch_size, 16);
  EXPECT_TRUE(o.dynamic_batching);
  EXPECT_EQ(o.preferred_batch_sizes, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(o.max_queue_delay_us, 250u);
  EXPECT_TRUE(o.preserve_ordering);
  EXPECT_EQ(o.default_timeout_us, 1000u);
  EXPECT_TRUE(o.allow_timeout_override);
  EXPECT_EQ(o.max_queue_size, 32u);
  EXPECT_EQ(o.output_names, (std::vector<std::string>{"A", "B"}));

  ModelConfig plain;
  plain.set_name("p");
  SchedulerOptions p = SchedulerOptions::FromConfig(plain, "1");
  EXPECT_FALSE(p.dynamic_batching);
  EXPECT_EQ(p.max_batch_size, 0);
  EXPECT_EQ(p.default_timeout_us, 0u);
}

// Many threads, mixed batch sizes and shapes, two instances, the real clock: every
// callback runs exactly once with its own values.
void Stress(bool preserve_ordering, int threads, int per_thread) {
  FakeBackend backend;
  SchedulerOptions o;
  o.model_name = "m";
  o.model_version = "1";
  o.output_names = {"OUTPUT0"};
  o.max_batch_size = 8;
  o.dynamic_batching = true;
  o.preferred_batch_sizes = {4, 8};
  o.max_queue_delay_us = 50;
  o.preserve_ordering = preserve_ordering;
  Scheduler scheduler(o, backend.MakeInstances(2));

  std::mutex mutex;
  std::vector<std::vector<int>> calls(static_cast<size_t>(threads),
                                      std::vector<int>(static_cast<size_t>(per_thread), 0));
  std::vector<int> last_seen(static_cast<size_t>(threads), -1);
  int errors = 0;
  int out_of_order = 0;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const int64_t batch = 1 + (i + t) % 4;
        const int64_t width = (i % 3 == 0) ? 3 : 2;
        const float base = static_cast<float>(t * 100000 + i * 10);
        scheduler.Enqueue(MakeRequest(std::to_string(i), batch, base, width), batch,
                          [&, t, i, batch, width, base](Result<InferResponse> r) {
                            bool good = r.ok() && r->id == std::to_string(i) &&
                                        r->outputs.size() == 1 &&
                                        r->outputs[0].shape == Shape{batch, width} &&
                                        Values(r->outputs[0]) == ExpectedValues(batch, base, width);
                            std::lock_guard lock(mutex);
                            ++calls[static_cast<size_t>(t)][static_cast<size_t>(i)];
                            if (!good) ++errors;
                            if (i < last_seen[static_cast<size_t>(t)]) ++out_of_order;
                            last_seen[static_cast<size_t>(t)] = i;
                          });
      }
    });
  }
  for (auto& w : workers) w.join();
  scheduler.Shutdown();
  EXPECT_EQ(errors, 0);
  if (preserve_ordering) {
    EXPECT_EQ(out_of_order, 0);
  }
  for (const auto& per : calls) {
    for (int c : per) ASSERT_EQ(c, 1);
  }
  ModelStatistics st = scheduler.Statistics();
  EXPECT_EQ(st.success.count, static_cast<uint64_t>(threads * per_thread));
  EXPECT_EQ(st.fail.count, 0u);
  EXPECT_EQ(st.execution_count, static_cast<uint64_t>(backend.execution_count()));
  EXPECT_EQ(scheduler.PendingCount(), 0u);
  ::testing::Test::RecordProperty("executions", std::to_string(st.execution_count));
  ::testing::Test::RecordProperty("inferences", std::to_string(st.inference_count));
}

TEST(SchedulerStressTest, ManyThreadsEveryCallbackOnce) { Stress(false, 8, 2000); }

TEST(SchedulerStressTest, ManyThreadsPreservingOrder) { Stress(true, 4, 1000); }

// queue_for_batching (Python's infer_async over local://): a preferred-size request that
// would run inline goes to the worker instead, so Enqueue returns at once, and requests
// sent in a row while the instance is busy are batched.
TEST_F(SchedulerTest, QueuesRequestMarkedForBatchingInsteadOfRunningInline) {
  SchedulerOptions o = Batching(16, 1000);
  o.preferred_batch_sizes = {4, 8};
  Scheduler& s = Make(o);
  backend_.CloseGate();  // inline execution would block this thread here
  auto send = [&](Scheduler& to, const char* key, int64_t batch) {
    InferRequest request = MakeRequest(key, batch, 1);
    request.queue_for_batching = true;
    to.Enqueue(std::move(request), batch, collector_.Callback(key));
  };
  send(s, "a", 4);
  backend_.WaitForBlocked(1);  // "a" alone occupies the instance
  send(s, "b", 4);
  send(s, "c", 4);
  EXPECT_EQ(collector_.size(), 0u);
  backend_.OpenGate();
  s.WaitIdleForTest();
  ASSERT_EQ(collector_.size(), 3u);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{4, 8}));
  // A model without dynamic batching runs it inline as before (nothing to batch).
  send(Make(Options()), "d", 0);
  EXPECT_EQ(collector_.size(), 4u);
}

// The worker keeps its instance until it has delivered the batch's responses, so the
// requests their callbacks send (a client keeping N calls in flight) join one batch; with
// the instance released first, the first of them would leave alone.
TEST_F(SchedulerTest, RequestsSentFromABatchsCallbacksJoinOneBatch) {
  SchedulerOptions o = Batching(16, 1000);
  o.preferred_batch_sizes = {4, 8};
  Scheduler& s = Make(o);
  auto queued = [](const std::string& key) {
    InferRequest request = MakeRequest(key, 4, 1);
    request.queue_for_batching = true;  // to the worker, never inline on this thread
    return request;
  };
  auto then_send = [&](const std::string& key, const std::string& next) -> InferCallback {
    return [&, key, next, record = collector_.Callback(key)](Result<InferResponse> r) {
      s.Enqueue(queued(next), 4, collector_.Callback(next));
      record(std::move(r));
    };
  };
  backend_.CloseGate();
  s.Enqueue(queued("a"), 4, collector_.Callback("a"));
  backend_.WaitForBlocked(1);  // "a" occupies the instance
  s.Enqueue(queued("b"), 4, then_send("b", "b2"));
  s.Enqueue(queued("c"), 4, then_send("c", "c2"));
  backend_.OpenGate();
  collector_.WaitFor(5);
  s.WaitIdleForTest();
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{4, 8, 8}));
  s.Shutdown();  // before the callbacks' captures go away
}

// Responses delivered in a row by a worker carry a DeliveryBatch: the work a callback hands
// to it runs after the batch's last callback. A batch of one carries none.
TEST_F(SchedulerTest, WorkDeferredByCallbacksRunsAfterTheBatchsLastCallback) {
  SchedulerOptions o = Batching(16, 1000);
  o.preferred_batch_sizes = {4, 8};
  Scheduler& s = Make(o);
  std::mutex mutex;
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    std::lock_guard lock(mutex);
    order.push_back(std::move(what));
  };
  auto deferring = [&](const std::string& key) -> InferCallback {
    return [&, key, record = collector_.Callback(key)](Result<InferResponse> r) {
      EXPECT_TRUE(r.ok()) << key;  // (an ASSERT here would leave the test waiting)
      if (!r.ok()) {
        note("failed " + key);
      } else if (r->delivery_batch == nullptr) {
        note("alone " + key);
      } else {
        note("callback " + key);
        r->delivery_batch->AfterDelivery([&, key] { note("after " + key); });
      }
      record(std::move(r));
    };
  };
  auto queued = [](const std::string& key) {
    InferRequest request = MakeRequest(key, 4, 1);
    request.queue_for_batching = true;
    return request;
  };
  backend_.CloseGate();
  s.Enqueue(queued("a"), 4, deferring("a"));
  backend_.WaitForBlocked(1);
  s.Enqueue(queued("b"), 4, deferring("b"));
  s.Enqueue(queued("c"), 4, deferring("c"));
  backend_.OpenGate();
  collector_.WaitFor(3);
  s.WaitIdleForTest();
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{4, 8}));
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(order, (std::vector<std::string>{"alone a", "callback b", "callback c",
                                               "after b", "after c"}));
  }
  s.Shutdown();  // before the callbacks' captures go away
}

// caller_serves_io (a network frontend's thread): such a request runs inline only while the
// model's executions are known to be short, so a long model never holds an I/O thread.
TEST_F(SchedulerTest, IoThreadRunsOnlyShortExecutionsInline) {
  Scheduler& s = Make(Options());  // inline_limit_us: 1000
  auto from_io = [](const char* key) {
    InferRequest request = MakeRequest(key, 0, 1);
    request.caller_serves_io = true;
    return request;
  };
  // Nothing measured yet: to the worker, and Enqueue returns while it executes.
  backend_.CloseGate();
  s.Enqueue(from_io("unknown"), 0, collector_.Callback("unknown"));
  backend_.WaitForBlocked(1);
  EXPECT_EQ(collector_.size(), 0u);
  clock_->Advance(std::chrono::milliseconds(2));  // this execution takes 2 ms
  backend_.OpenGate();
  s.WaitIdleForTest();
  ASSERT_EQ(collector_.size(), 1u);

  // 2 ms measured: still to the worker.
  backend_.CloseGate();
  s.Enqueue(from_io("long"), 0, collector_.Callback("long"));
  backend_.WaitForBlocked(1);
  EXPECT_EQ(collector_.size(), 1u);
  backend_.OpenGate();
  s.WaitIdleForTest();
  ASSERT_EQ(collector_.size(), 2u);

  // Instant executions (this thread's own calls run inline) bring the mean under 1 ms...
  for (int i = 0; i < 16; ++i) {
    const std::string key = "quick" + std::to_string(i);
    s.Enqueue(MakeRequest(key, 0, 1), 0, collector_.Callback(key));
  }
  ASSERT_EQ(collector_.size(), 18u);
  // ...and then an I/O thread's request runs inline too: answered before Enqueue returns.
  s.Enqueue(from_io("short"), 0, collector_.Callback("short"));
  EXPECT_EQ(collector_.size(), 19u);
  EXPECT_TRUE(collector_.Get("short").ok());
}

// hold_for_waiters: a request whose sender will wait for it (InferRequest::waiter), sent
// while everything is idle, stays queued without waking a worker, for the waiting thread.
class HoldTest : public SchedulerTest {
 protected:
  static SchedulerOptions Holding() {
    SchedulerOptions o = Batching(16, 1000);
    o.preferred_batch_sizes = {4, 8};
    o.hold_for_waiters = true;
    o.hold_for_waiter_us = 200;
    o.hold_backoff_us = 100000;
    return o;
  }
  // A 4-row request with a waiter link, as Python's infer_async sends it.
  static InferRequest WithWaiter(const std::string& key, std::shared_ptr<WaiterLink>& link) {
    InferRequest r = MakeRequest(key, 4, 1);
    r.queue_for_batching = true;
    link = std::make_shared<WaiterLink>();
    r.waiter = link;
    return r;
  }
  static InferRequest WithoutWaiter(const std::string& key) {
    InferRequest r = MakeRequest(key, 4, 1);
    r.queue_for_batching = true;
    return r;
  }
  // Records the thread that delivered `key`.
  InferCallback OnThread(const std::string& key) {
    return [this, key, record = collector_.Callback(key)](Result<InferResponse> r) {
      {
        std::lock_guard lock(threads_mutex_);
        threads_[key] = std::this_thread::get_id();
      }
      record(std::move(r));
    };
  }
  std::thread::id ThreadOf(const std::string& key) {
    std::lock_guard lock(threads_mutex_);
    return threads_.at(key);
  }

  std::mutex threads_mutex_;
  std::map<std::string, std::thread::id> threads_;
};

TEST_F(HoldTest, TheWaitingThreadRunsHeldRequestsAsOneBatch) {
  Scheduler& s = Make(Holding());
  std::shared_ptr<WaiterLink> a, b;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  s.Enqueue(WithWaiter("b", b), 4, OnThread("b"));
  s.WaitIdleForTest();  // nothing left to do before the hold runs out
  EXPECT_EQ(backend_.execution_count(), 0);
  EXPECT_EQ(collector_.size(), 0u);
  std::shared_ptr<QueueHelper> helper = a->Helper();
  ASSERT_NE(helper, nullptr);
  EXPECT_EQ(b->Helper(), helper);

  EXPECT_TRUE(helper->RunQueued());
  ASSERT_EQ(collector_.size(), 2u);
  ExpectOk("a", 4, 1);
  ExpectOk("b", 4, 1);
  EXPECT_EQ(ThreadOf("a"), std::this_thread::get_id());
  EXPECT_EQ(ThreadOf("b"), std::this_thread::get_id());
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{8}));
  EXPECT_FALSE(helper->RunQueued()) << "nothing is held any more";
}

TEST_F(HoldTest, WhatTheWaiterDoesNotTakeGoesToAWorker) {
  SchedulerOptions o = Holding();
  o.max_batch_size = 4;
  o.preferred_batch_sizes = {4};
  Scheduler& s = Make(o);
  std::shared_ptr<WaiterLink> a, b;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  s.Enqueue(WithWaiter("b", b), 4, OnThread("b"));
  EXPECT_TRUE(a->Helper()->RunQueued());  // "a" here; "b" to the worker as "a" releases
  collector_.WaitFor(2);
  EXPECT_EQ(ThreadOf("a"), std::this_thread::get_id());
  EXPECT_NE(ThreadOf("b"), std::this_thread::get_id());
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{4, 4}));
}

TEST_F(HoldTest, WhatTheWaiterLeavesStartsAtOnceOnAnotherIdleInstance) {
  SchedulerOptions o = Holding();
  o.max_batch_size = 4;
  o.preferred_batch_sizes = {4};
  Scheduler& s = Make(o, /*instances=*/2);
  std::shared_ptr<WaiterLink> a, b;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  s.Enqueue(WithWaiter("b", b), 4, OnThread("b"));
  backend_.CloseGate();
  std::thread::id waiter_thread;
  std::thread waiter([&] {
    waiter_thread = std::this_thread::get_id();
    EXPECT_TRUE(a->Helper()->RunQueued());
  });
  // "a" executes on the waiter's thread and "b" on the other instance's worker, both at
  // once (were "b" left for when "a" releases its instance, this would wait forever).
  backend_.WaitForBlocked(2);
  backend_.OpenGate();
  waiter.join();
  collector_.WaitFor(2);
  EXPECT_EQ(ThreadOf("a"), waiter_thread);
  EXPECT_NE(ThreadOf("b"), waiter_thread);
  EXPECT_NE(ThreadOf("b"), std::this_thread::get_id());
}

TEST_F(HoldTest, HeldRequestsGoToAWorkerWhenTheHoldRunsOutThenNoneIsHeldForAWhile) {
  Scheduler& s = Make(Holding());
  std::shared_ptr<WaiterLink> a, b, c;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  clock_->Advance(microseconds(199));
  s.WaitIdleForTest();
  EXPECT_EQ(collector_.size(), 0u);
  clock_->Advance(microseconds(1));  // the sender did other work first
  collector_.WaitFor(1);
  ExpectOk("a", 4, 1);
  EXPECT_NE(ThreadOf("a"), std::this_thread::get_id());
  EXPECT_FALSE(a->Helper()->RunQueued());

  s.WaitIdleForTest();
  s.Enqueue(WithWaiter("b", b), 4, OnThread("b"));  // within the back-off: not held
  collector_.WaitFor(2);
  EXPECT_EQ(b->Helper(), nullptr);
  EXPECT_NE(ThreadOf("b"), std::this_thread::get_id());

  s.WaitIdleForTest();
  clock_->Advance(microseconds(100000));
  s.Enqueue(WithWaiter("c", c), 4, OnThread("c"));  // held again
  ASSERT_NE(c->Helper(), nullptr);
  EXPECT_TRUE(c->Helper()->RunQueued());
  EXPECT_EQ(ThreadOf("c"), std::this_thread::get_id());
}

TEST_F(HoldTest, ReleaseHandsHeldRequestsToAWorker) {
  Scheduler& s = Make(Holding());
  std::shared_ptr<WaiterLink> a;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  a->Helper()->Release();  // e.g. a done-callback will wait instead of result()
  collector_.WaitFor(1);
  ExpectOk("a", 4, 1);
  EXPECT_NE(ThreadOf("a"), std::this_thread::get_id());
}

TEST_F(HoldTest, ARequestWithoutAWaiterEndsTheHold) {
  Scheduler& s = Make(Holding());
  std::shared_ptr<WaiterLink> a;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  s.Enqueue(WithoutWaiter("b"), 4, OnThread("b"));  // a worker runs it, and "a" with it
  collector_.WaitFor(2);
  EXPECT_EQ(BatchSizes(), (std::vector<int64_t>{8}));
  EXPECT_NE(ThreadOf("a"), std::this_thread::get_id());
  EXPECT_FALSE(a->Helper()->RunQueued());
}

TEST_F(HoldTest, ARequestSentWhileAnInstanceIsBusyIsNotHeld) {
  Scheduler& s = Make(Holding());
  backend_.CloseGate();
  s.Enqueue(WithoutWaiter("x"), 4, OnThread("x"));
  backend_.WaitForBlocked(1);  // the only instance is busy
  std::shared_ptr<WaiterLink> a;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  EXPECT_EQ(a->Helper(), nullptr);
  backend_.OpenGate();
  collector_.WaitFor(2);  // the worker takes "a" next
  ExpectOk("a", 4, 1);
  EXPECT_NE(ThreadOf("a"), std::this_thread::get_id());
}

TEST_F(HoldTest, AWaiterWhoseBatchWaitsForItsDelayLeavesItToTheWorkers) {
  SchedulerOptions o = Holding();
  o.preferred_batch_sizes = {8};  // 4 rows alone wait up to max_queue_delay (1000 us)
  Scheduler& s = Make(o);
  std::shared_ptr<WaiterLink> a;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  EXPECT_FALSE(a->Helper()->RunQueued());  // at once, without running anything
  s.WaitIdleForTest();
  EXPECT_EQ(collector_.size(), 0u);
  clock_->Advance(microseconds(1000));
  collector_.WaitFor(1);
  ExpectOk("a", 4, 1);
  EXPECT_NE(ThreadOf("a"), std::this_thread::get_id());
}

TEST_F(HoldTest, ShutdownRunsHeldRequestsAndDetachesTheHelper) {
  Scheduler& s = Make(Holding());
  std::shared_ptr<WaiterLink> a;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  std::shared_ptr<QueueHelper> helper = a->Helper();
  ASSERT_NE(helper, nullptr);
  s.Shutdown();
  ASSERT_EQ(collector_.size(), 1u);
  ExpectOk("a", 4, 1);
  scheduler_.reset();
  // A waiter may keep the helper past the scheduler: it then does nothing.
  EXPECT_FALSE(helper->RunQueued());
  helper->Release();
}

TEST_F(HoldTest, WithoutHoldForWaitersAWaiterChangesNothing) {
  SchedulerOptions o = Holding();
  o.hold_for_waiters = false;
  Scheduler& s = Make(o);
  std::shared_ptr<WaiterLink> a;
  s.Enqueue(WithWaiter("a", a), 4, OnThread("a"));
  collector_.WaitFor(1);
  EXPECT_NE(ThreadOf("a"), std::this_thread::get_id());
  EXPECT_EQ(a->Helper(), nullptr);
}

}  // namespace
}  // namespace quiver::engine

#pragma once
// FakeInferenceService: the one scriptable InferenceService of the tests. Each Infer is
// answered inline (an echo, or what an AnswerFn says), failed inline (the Mode names the
// error), or held until the test releases it; or, wrapping a real service, held and then
// run on it. It counts calls and answers, keeps a copy of every request (the copies share
// the requests' Buffers), and lets tests wait for calls, held requests and answers without
// sleeping. Thread-safe; callbacks run without the fake's lock held.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "service/inference_service.h"

namespace quiver::testing {

class FakeInferenceService final : public InferenceService {
 public:
  enum class Mode {
    kAnswer,       // answered inline, on the caller's thread (Echo, or the AnswerFn)
    kHold,         // held until ReleaseOne / Release / TakeHeld
    kUnavailable,  // a server that is down: Infer fails inline with kUnavailable, Live() and
                   // Ready() are false, GetServerMetadata fails
    kNotFound,     // Infer fails inline with kNotFound
    kInvalid,      // Infer fails inline with kInvalidArgument
    kDeadline,     // Infer fails inline with kDeadlineExceeded
    kFlaky,        // calls 1, 4, 7, ... fail inline with kUnavailable (the server stays live),
                   // the others are answered inline
  };
  // Produces the answer to a request (replaces Echo).
  using AnswerFn = std::function<Result<InferResponse>(const InferRequest&)>;
  // Produces GetStatistics' answer; called without the fake's lock held.
  using StatisticsFn = std::function<Result<std::vector<ModelStatistics>>(
      std::string_view model, std::string_view version)>;
  // A held request.
  struct Held {
    InferRequest request;
    InferCallback done;
  };

  // A stand-alone fake; `name` is its server name (GetServerMetadata).
  explicit FakeInferenceService(std::string name = "fake") : name_(std::move(name)) {}
  // A stand-alone fake that starts in `mode`.
  explicit FakeInferenceService(Mode mode, std::string name = "fake")
      : name_(std::move(name)), mode_(mode) {}
  // A fake in front of `backing` (which must outlive it): everything but Infer is
  // delegated, and answering a request means running it on `backing`. Starts in kHold.
  explicit FakeInferenceService(InferenceService& backing)
      : name_("fake"), backing_(&backing), mode_(Mode::kHold) {}

  // The echo: each input comes back as an output, named as the identity backend names it
  // (INPUT<k> -> OUTPUT<k>, any other name -> <name>_OUT); version "1", the request's id.
  static InferResponse Echo(const InferRequest& request) {
    InferResponse response{request.model, "1", request.id, {}};
    for (const Tensor& in : request.inputs) {
      Tensor out = in;
      out.name = in.name.starts_with("INPUT") ? "OUTPUT" + in.name.substr(5) : in.name + "_OUT";
      response.outputs.push_back(std::move(out));
    }
    return response;
  }

  // --- Script.
  void set_mode(Mode mode) {
    std::lock_guard lock(mutex_);
    mode_ = mode;
  }
  // Ready() and ModelReady() answer false while `ready` is false; true at first.
  void set_ready(bool ready) {
    std::lock_guard lock(mutex_);
    ready_ = ready;
  }
  void set_answer(AnswerFn fn) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(fn);
  }
  void set_statistics_fn(StatisticsFn fn) {
    std::lock_guard lock(mutex_);
    statistics_ = std::move(fn);
  }
  void set_statistics(std::vector<ModelStatistics> stats) {
    set_statistics_fn([stats = std::move(stats)](std::string_view, std::string_view)
                       -> Result<std::vector<ModelStatistics>> { return stats; });
  }
  // GetModelConfig answers `config` for its model; once a model is added, ModelReady is
  // true for the added models only (before, for every model; in both cases while ready).
  void AddModel(ModelConfig config) {
    std::lock_guard lock(mutex_);
    models_[config.name()] = std::move(config);
  }

  // --- Observe.
  int64_t calls() const {  // Infer calls so far
    std::lock_guard lock(mutex_);
    return calls_;
  }
  int64_t answered() const {  // requests answered or failed (counted before the callback)
    std::lock_guard lock(mutex_);
    return answered_;
  }
  int64_t peak_outstanding() const {  // most calls not yet answered at one time
    std::lock_guard lock(mutex_);
    return peak_outstanding_;
  }
  size_t held() const {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  size_t peak_held() const {
    std::lock_guard lock(mutex_);
    return peak_held_;
  }
  // Copies of every request received, in order of arrival.
  std::vector<InferRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  void WaitForCalls(int64_t n) const {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return calls_ >= n; });
  }
  void WaitForHeld(size_t n) const {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return held_.size() >= n; });
  }
  void WaitForAnswered(int64_t n) const {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return answered_ >= n; });
  }

  // --- Release held requests (on the calling thread).
  // Answers the oldest held request (as kAnswer would); false when none is held.
  bool ReleaseOne() { return ReleaseOne(Status::Ok()); }
  // Fails the oldest held request with `failure` (answers it when `failure` is ok).
  bool ReleaseOne(const Status& failure) {
    Held h;
    {
      std::lock_guard lock(mutex_);
      if (held_.empty()) return false;
      h = TakeLocked(held_.begin());
    }
    Reply(std::move(h), failure);
    return true;
  }
  // Answers the held request with id `id`; false when none is held.
  bool Release(std::string_view id) {
    Held h;
    {
      std::lock_guard lock(mutex_);
      auto it = std::find_if(held_.begin(), held_.end(),
                             [&](const Held& x) { return x.request.id == id; });
      if (it == held_.end()) return false;
      h = TakeLocked(it);
    }
    Reply(std::move(h), Status::Ok());
    return true;
  }
  // Waits until at least `at_least` requests are held (or Close() was called) and takes
  // every held request out, for a test that answers them in an order of its own with
  // Answer(). Empty only after Close().
  std::vector<Held> TakeHeld(size_t at_least) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return closed_ || held_.size() >= at_least; });
    std::vector<Held> out(std::make_move_iterator(held_.begin()),
                          std::make_move_iterator(held_.end()));
    held_.clear();
    return out;
  }
  // Answers a request that TakeHeld returned (counted as answered before the callback).
  void Answer(Held held) {
    {
      std::lock_guard lock(mutex_);
      ++answered_;
      cv_.notify_all();
    }
    Reply(std::move(held), Status::Ok());
  }
  // Stops TakeHeld from waiting, now and later.
  void Close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    cv_.notify_all();
  }

  // --- InferenceService.
  bool Live() const override {
    if (backing_) return backing_->Live();
    std::lock_guard lock(mutex_);
    return mode_ != Mode::kUnavailable;
  }
  bool Ready() const override {
    if (backing_) return backing_->Ready();
    std::lock_guard lock(mutex_);
    return mode_ != Mode::kUnavailable && ready_;
  }
  Result<ServerMetadata> GetServerMetadata() const override {
    if (backing_) return backing_->GetServerMetadata();
    std::lock_guard lock(mutex_);
    if (mode_ == Mode::kUnavailable) return Status::Unavailable(name_ + " is down");
    return ServerMetadata{name_, "1", {}};
  }
  Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                         std::string_view version) const override {
    if (backing_) return backing_->GetModelMetadata(model, version);
    return Status::Unsupported("fake: no model metadata");
  }
  Result<ModelConfig> GetModelConfig(std::string_view model,
                                     std::string_view version) const override {
    if (backing_) return backing_->GetModelConfig(model, version);
    std::lock_guard lock(mutex_);
    auto it = models_.find(std::string(model));
    if (it == models_.end()) return Status::NotFound("unknown model '" + std::string(model) + "'");
    return it->second;
  }
  bool ModelReady(std::string_view model, std::string_view version) const override {
    if (backing_) return backing_->ModelReady(model, version);
    std::lock_guard lock(mutex_);
    return ready_ && (models_.empty() || models_.count(std::string(model)) > 0);
  }
  void Infer(InferRequest request, InferCallback done) override {
    Status failure;
    {
      std::lock_guard lock(mutex_);
      ++calls_;
      requests_.push_back(request);
      peak_outstanding_ = std::max(peak_outstanding_, calls_ - answered_);
      Mode mode = mode_;
      if (mode == Mode::kFlaky) mode = flaky_counter_++ % 3 == 0 ? Mode::kUnavailable : Mode::kAnswer;
      if (mode == Mode::kHold) {
        held_.push_back({std::move(request), std::move(done)});
        peak_held_ = std::max(peak_held_, held_.size());
        cv_.notify_all();
        return;
      }
      failure = FailureFor(mode);
      ++answered_;
      cv_.notify_all();
    }
    Reply({std::move(request), std::move(done)}, failure);
  }
  Result<RepositoryIndex> Index() override {
    if (backing_) return backing_->Index();
    return RepositoryIndex{};
  }
  Status Load(std::string_view model) override {
    return backing_ ? backing_->Load(model) : Status::Ok();
  }
  Status Unload(std::string_view model) override {
    return backing_ ? backing_->Unload(model) : Status::Ok();
  }
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version) const override {
    if (backing_) return backing_->GetStatistics(model, version);
    StatisticsFn fn;
    {
      std::lock_guard lock(mutex_);
      fn = statistics_;
    }
    if (fn) return fn(model, version);
    return std::vector<ModelStatistics>{};
  }

 private:
  static Status FailureFor(Mode mode) {
    switch (mode) {
      case Mode::kUnavailable:
      case Mode::kFlaky:
        return Status::Unavailable("connection refused");
      case Mode::kNotFound:
        return Status::NotFound("fake: not found");
      case Mode::kInvalid:
        return Status::InvalidArgument("input 'INPUT0': bad");
      case Mode::kDeadline:
        return Status::DeadlineExceeded("attempt timed out");
      case Mode::kAnswer:
      case Mode::kHold:
        break;
    }
    return Status::Ok();
  }

  // Removes a held request, counting it as answered. Requires mutex_.
  Held TakeLocked(std::deque<Held>::iterator it) {
    Held h = std::move(*it);
    held_.erase(it);
    ++answered_;
    cv_.notify_all();
    return h;
  }

  // Answers (or fails) one request; without the lock.
  void Reply(Held h, const Status& failure) {
    if (!failure.ok()) {
      h.done(failure);
      return;
    }
    AnswerFn fn;
    {
      std::lock_guard lock(mutex_);
      fn = answer_;
    }
    if (fn) {
      h.done(fn(h.request));
    } else if (backing_) {
      backing_->Infer(std::move(h.request), std::move(h.done));
    } else {
      h.done(Echo(h.request));
    }
  }

  const std::string name_;
  InferenceService* const backing_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  Mode mode_ = Mode::kAnswer;                      // guarded by mutex_
  bool ready_ = true;                              // guarded by mutex_
  AnswerFn answer_;                                // guarded by mutex_
  StatisticsFn statistics_;                        // guarded by mutex_
  std::map<std::string, ModelConfig> models_;      // guarded by mutex_
  std::deque<Held> held_;                          // guarded by mutex_
  std::vector<InferRequest> requests_;             // guarded by mutex_
  int64_t calls_ = 0;                              // guarded by mutex_
  int64_t answered_ = 0;                           // guarded by mutex_
  int64_t peak_outstanding_ = 0;                   // guarded by mutex_
  size_t peak_held_ = 0;                           // guarded by mutex_
  int flaky_counter_ = 0;                          // guarded by mutex_
  bool closed_ = false;                            // guarded by mutex_
};

}  // namespace quiver::testing

#pragma once
// FakeBackend: a Backend for tests that needs no model files. Its instances record every
// execution, produce each requested output as a copy of the first input (or whatever an
// ExecuteFn says), can be told to fail executions or instance creation, and can block
// executions on a gate that the test opens, so that queue-full, timeout and drain cases
// are deterministic (condition variables, no sleeps). Thread-safe; instances share the
// backend's state and stay valid after the FakeBackend is destroyed.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"

namespace quiver::testing {


class FakeBackend : public engine::Backend {
 public:
  // What one Execute call saw.
  struct Execution {
    int instance = 0;        // InstanceContext::instance_index
    int64_t batch_size = 0;  // BackendBatch::batch_size
    std::vector<std::string> input_names;
    std::vector<Shape> input_shapes;  // same order as input_names
    std::vector<std::string> requested_outputs;
  };
  // Replaces the default output production. Called without the fake's lock held, after
  // the gate and the failure countdown.
  using ExecuteFn = std::function<Status(int instance, const engine::BackendBatch& batch,
                                         std::vector<Tensor>& outputs, engine::ComputeTimes& times)>;

  FakeBackend() : state_(std::make_shared<State>()) {}

  Result<std::unique_ptr<engine::BackendInstance>> CreateInstance(
      const engine::InstanceContext& context) const override {
    std::lock_guard lock(state_->mutex);
    if (!state_->create_status.ok() && state_->creates >= state_->create_fail_after) {
      return state_->create_status;
    }
    ++state_->creates;
    return std::unique_ptr<engine::BackendInstance>(new Instance(state_, context.instance_index));
  }

  // `count` instances numbered 0..count-1, for tests that build a Scheduler directly.
  std::vector<std::unique_ptr<engine::BackendInstance>> MakeInstances(int count) const {
    std::vector<std::unique_ptr<engine::BackendInstance>> out;
    for (int i = 0; i < count; ++i) {
      out.push_back(std::unique_ptr<engine::BackendInstance>(new Instance(state_, i)));
    }
    return out;
  }

  // Every CreateInstance after the first `after_successes` successful ones fails with
  // `status` (Status::Ok() restores success).
  void FailCreateInstance(Status status, int after_successes = 0) {
    std::lock_guard lock(state_->mutex);
    state_->create_status = std::move(status);
    state_->create_fail_after = after_successes;
  }
  // The next `count` executions (after passing the gate) return `status`.
  void FailNextExecutions(int count, Status status) {
    std::lock_guard lock(state_->mutex);
    state_->fail_remaining = count;
    state_->fail_status = std::move(status);
  }
  void SetExecuteFn(ExecuteFn fn) {
    std::lock_guard lock(state_->mutex);
    state_->fn = std::move(fn);
  }
  // Compute times that the default output production reports.
  void SetComputeTimes(engine::ComputeTimes times) {
    std::lock_guard lock(state_->mutex);
    state_->times = times;
  }

  // Gate: while closed, executions block before producing outputs.
  void CloseGate() {
    std::lock_guard lock(state_->mutex);
    state_->gate_open = false;
  }
  void OpenGate() {
    std::lock_guard lock(state_->mutex);
    state_->gate_open = true;
    state_->cv.notify_all();
  }
  // Lets `count` executions through a closed gate (blocked ones first, then later ones).
  void Release(int count) {
    std::lock_guard lock(state_->mutex);
    state_->permits += count;
    state_->cv.notify_all();
  }
  // Blocks until at least `count` executions wait at the gate.
  void WaitForBlocked(int count) const {
    std::unique_lock lock(state_->mutex);
    state_->cv.wait(lock, [&] { return state_->blocked >= count; });
  }
  // Blocks until at least `count` Execute calls have returned.
  void WaitForCompleted(int count) const {
    std::unique_lock lock(state_->mutex);
    state_->cv.wait(lock, [&] { return state_->completed >= count; });
  }

  int blocked() const {
    std::lock_guard lock(state_->mutex);
    return state_->blocked;
  }
  int execution_count() const {  // Execute calls started
    std::lock_guard lock(state_->mutex);
    return static_cast<int>(state_->executions.size());
  }
  int create_count() const {  // successful CreateInstance calls
    std::lock_guard lock(state_->mutex);
    return state_->creates;
  }
  std::vector<Execution> executions() const {
    std::lock_guard lock(state_->mutex);
    return state_->executions;
  }

 private:
  struct State {
    mutable std::mutex mutex;
    std::condition_variable cv;
    std::vector<Execution> executions;
    ExecuteFn fn;
    engine::ComputeTimes times;
    Status fail_status;
    int fail_remaining = 0;
    Status create_status;
    int create_fail_after = 0;
    int creates = 0;
    bool gate_open = true;
    int permits = 0;
    int blocked = 0;
    int completed = 0;
  };

  class Instance : public engine::BackendInstance {
   public:
    Instance(std::shared_ptr<State> state, int index) : state_(std::move(state)), index_(index) {}

    Status Execute(const engine::BackendBatch& batch, std::vector<Tensor>& outputs,
                   engine::ComputeTimes& times) override {
      ExecuteFn fn;
      Status failure;
      {
        std::unique_lock lock(state_->mutex);
        Execution e;
        e.instance = index_;
        e.batch_size = batch.batch_size;
        for (const Tensor& t : batch.inputs) {
          e.input_names.push_back(t.name);
          e.input_shapes.push_back(t.shape);
        }
        e.requested_outputs.assign(batch.requested_outputs.begin(), batch.requested_outputs.end());
        state_->executions.push_back(std::move(e));
        if (!state_->gate_open) {
          ++state_->blocked;
          state_->cv.notify_all();
          state_->cv.wait(lock, [&] { return state_->gate_open || state_->permits > 0; });
          if (!state_->gate_open) --state_->permits;
          --state_->blocked;
        }
        if (state_->fail_remaining > 0) {
          --state_->fail_remaining;
          failure = state_->fail_status;
        }
        fn = state_->fn;
        times = state_->times;
      }
      Status status = failure;
      if (status.ok())
        status = fn ? fn(index_, batch, outputs, times) : CopyFirstInput(batch, outputs);
      std::lock_guard lock(state_->mutex);
      ++state_->completed;
      state_->cv.notify_all();
      return status;
    }

   private:
    static Status CopyFirstInput(const engine::BackendBatch& batch, std::vector<Tensor>& outputs) {
      if (batch.inputs.empty()) return Status::Internal("fake backend: batch has no inputs");
      const Tensor& in = batch.inputs.front();
      for (const std::string& name : batch.requested_outputs) {
        outputs.push_back(
            Tensor{name, in.datatype, in.shape, Buffer::Copy(in.data.data(), in.data.size())});
      }
      return Status::Ok();
    }

    std::shared_ptr<State> state_;
    int index_;
  };

  std::shared_ptr<State> state_;
};

}  // namespace quiver::testing

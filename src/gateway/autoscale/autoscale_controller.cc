#include "gateway/autoscale/autoscale_controller.h"

#include <utility>

namespace quiver::gateway {

AutoscaleController::AutoscaleController(AutoscaleControllerOptions options, LoadSource load,
                                         std::shared_ptr<ReplicaProvider> provider,
                                         std::shared_ptr<Clock> clock)
    : options_(std::move(options)),
      load_(std::move(load)),
      provider_(std::move(provider)),
      clock_(std::move(clock)) {
  for (const auto& [model, model_options] : options_.models) {
    policies_.emplace(model, AutoscalePolicy(clock_, model_options));
  }
}

AutoscaleController::~AutoscaleController() { Stop(); }

void AutoscaleController::Tick() {
  std::lock_guard tick_guard(tick_mutex_);
  std::vector<ModelLoad> loads = load_ ? load_() : std::vector<ModelLoad>{};
  std::map<std::string_view, const ModelLoad*> by_model;
  for (const ModelLoad& l : loads) by_model.emplace(l.model, &l);

  std::vector<ModelScaleState> decided;
  for (auto& [model, policy] : policies_) {
    ModelLoad idle;
    idle.model = model;
    auto it = by_model.find(model);
    const ModelLoad& load = it != by_model.end() ? *it->second : idle;

    ModelScaleState state;
    state.model = model;
    if (provider_) {
      state.current = provider_->Replicas(model);
    } else {
      std::lock_guard guard(mutex_);
      auto s = states_.find(model);
      state.current = s != states_.end() ? s->second.desired : load.ready_replicas;
    }
    state.decision = policy.Update(load, state.current);
    state.desired = state.decision.desired;
    if (provider_ && state.desired != state.current) {
      state.last_scale = provider_->ScaleTo(model, state.desired);
    }
    decided.push_back(std::move(state));
  }

  std::lock_guard guard(mutex_);
  for (ModelScaleState& s : decided) states_[s.model] = std::move(s);
  ++ticks_;
}

void AutoscaleController::Start() {
  std::lock_guard guard(thread_mutex_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void AutoscaleController::Stop() {
  std::thread thread;
  {
    std::lock_guard guard(thread_mutex_);
    stop_ = true;
    thread = std::move(thread_);
  }
  thread_cv_.notify_all();
  if (thread.joinable()) thread.join();
}

void AutoscaleController::Loop() {
  std::unique_lock lock(thread_mutex_);
  while (!stop_) {
    // The next deadline is taken before the tick so that a slow tick does not drift.
    const Clock::TimePoint next = clock_->Now() + options_.interval;
    lock.unlock();
    Tick();
    lock.lock();
    while (!stop_ && clock_->Now() < next) clock_->WaitUntil(thread_cv_, lock, next);
  }
}

std::optional<size_t> AutoscaleController::DesiredReplicas(std::string_view model) const {
  std::lock_guard guard(mutex_);
  auto it = states_.find(model);
  if (it == states_.end()) return std::nullopt;
  return it->second.desired;
}

std::vector<ModelScaleState> AutoscaleController::States() const {
  std::lock_guard guard(mutex_);
  std::vector<ModelScaleState> out;
  out.reserve(states_.size());
  for (const auto& [model, state] : states_) out.push_back(state);
  return out;
}

uint64_t AutoscaleController::ticks() const {
  std::lock_guard guard(mutex_);
  return ticks_;
}

}  // namespace quiver::gateway

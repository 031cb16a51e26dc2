#include "frontend/blocking_workers.h"

namespace quiver::frontend {

BlockingWorkers::BlockingWorkers(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

BlockingWorkers::~BlockingWorkers() { Stop(); }

void BlockingWorkers::Run(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      work_.push_back(std::move(work));
      cv_.notify_one();
      return;
    }
  }
  work();
}

void BlockingWorkers::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void BlockingWorkers::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !work_.empty(); });
    if (work_.empty()) return;  // stopping and drained
    auto work = std::move(work_.front());
    work_.pop_front();
    lock.unlock();
    work();
    lock.lock();
  }
}

}  // namespace quiver::frontend

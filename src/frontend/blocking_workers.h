#pragma once
// BlockingWorkers: a few threads for work that may block (a model load, a repository scan, a
// gateway waiting for a model), so that it never holds a frontend's I/O thread.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quiver::frontend {

// Runs work in arrival order on `threads` threads. Thread-safe.
class BlockingWorkers {
 public:
  explicit BlockingWorkers(int threads);
  ~BlockingWorkers();  // Stop()
  BlockingWorkers(const BlockingWorkers&) = delete;
  BlockingWorkers& operator=(const BlockingWorkers&) = delete;

  // Queues `work`; after Stop began it runs inline instead.
  void Run(std::function<void()> work);
  // Runs the queued work to completion and joins the threads. Idempotent.
  void Stop();

 private:
  void Loop();

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> work_;  // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace quiver::frontend

#include "py_runtime.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace quiver::python {
namespace {

// Per-process state. Heap-allocated and never freed: static destructors run after the
// interpreter is gone, and a forked child replaces (leaks) the parent's copy, whose
// mutex another thread may have held at fork time.
struct Runtime {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::function<void()>> tasks;  // guarded by mutex
  std::vector<PyObject*> releases;           // guarded by mutex: references to drop
  bool release_timer = false;  // the completion thread waits kReleaseDelay; guarded by mutex
  bool finalizing = false;                   // guarded by mutex
  bool busy = false;      // the completion thread runs a batch; guarded by mutex
  bool started = false;   // guarded by mutex
};

std::atomic<Runtime*> g_runtime{new Runtime};
std::atomic<bool> g_finalizing{false};
std::atomic<std::thread::id> g_finalizer{};  // the thread that ran the atexit handler

// How long a reference released without the GIL may wait for a thread that holds the
// GIL anyway (the next call into this module, or a batch of tasks) before the completion
// thread wakes up just to drop it.
constexpr auto kReleaseDelay = std::chrono::milliseconds(5);

// Moves `tasks` somewhere they are never destroyed (they may own Python references).
void Leak(std::vector<std::function<void()>>&& tasks) {
  if (tasks.empty()) return;
  new std::vector<std::function<void()>>(std::move(tasks));
}

void DropAll(std::vector<PyObject*>& releases) {  // GIL held
  for (PyObject* obj : releases) Py_DECREF(obj);
  releases.clear();
}

void RunBatch(std::vector<std::function<void()>>& batch, std::vector<PyObject*>& releases) {
  py::gil_scoped_acquire gil;
  DropAll(releases);
  for (auto& task : batch) {
    try {
      task();
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("quiver completion thread");
    } catch (...) {
      // Tasks do not throw C++ exceptions by contract; never let one escape a thread.
    }
    if (PyErr_Occurred() != nullptr) PyErr_WriteUnraisable(nullptr);
  }
  batch.clear();  // captured Python references released here, with the GIL
}

void CompletionLoop(Runtime* rt) {
  std::vector<std::function<void()>> batch;
  std::vector<PyObject*> releases;
  while (true) {
    {
      std::unique_lock lock(rt->mutex);
      rt->busy = false;
      rt->cv.notify_all();
      // Tasks wake this thread at once; references to release only after kReleaseDelay,
      // by when a thread calling into the module has usually dropped them already.
      while (rt->tasks.empty()) {
        if (rt->releases.empty()) {
          rt->cv.wait(lock);
          continue;
        }
        rt->release_timer = true;
        const bool expired = rt->cv.wait_for(lock, kReleaseDelay) == std::cv_status::timeout;
        rt->release_timer = false;
        if (expired) break;
      }
      // The timer ran out, but a caller dropped the references meanwhile: nothing to do,
      // and taking the GIL for nothing would only interrupt the thread that holds it.
      if (rt->tasks.empty() && rt->releases.empty()) continue;
      batch.swap(rt->tasks);
      releases.swap(rt->releases);
      if (rt->finalizing) {
        Leak(std::move(batch));
        batch.clear();
        releases.clear();  // leaked
        continue;
      }
      rt->busy = true;
    }
    RunBatch(batch, releases);
  }
}

void ReleaseReference(PyObject* obj) {
  if (obj == nullptr || g_finalizing.load(std::memory_order_acquire)) return;  // leaked
  if (PyGILState_Check() != 0) {
    Py_DECREF(obj);
    return;
  }
  Runtime* rt = g_runtime.load();
  std::unique_lock lock(rt->mutex);
  if (rt->finalizing) return;  // leaked
  rt->releases.push_back(obj);
  if (!rt->started) {
    rt->started = true;
    std::thread(CompletionLoop, rt).detach();  // never joined: lives until exit
  }
  // The first pending reference starts the completion thread's timer (one wake-up per
  // kReleaseDelay at most, not one per reference).
  const bool wake = rt->releases.size() == 1 && !rt->release_timer;
  lock.unlock();
  if (wake) rt->cv.notify_all();
}

}  // namespace

void DropReleasedReferences() {
  Runtime* rt = g_runtime.load();
  std::vector<PyObject*> releases;
  {
    std::lock_guard lock(rt->mutex);
    if (rt->releases.empty() || rt->finalizing) return;
    releases.swap(rt->releases);
  }
  DropAll(releases);
}

namespace {

void BeginFinalization() {
  Runtime* rt = g_runtime.load();
  {
    std::lock_guard lock(rt->mutex);
    rt->finalizing = true;
    g_finalizer.store(std::this_thread::get_id());
    g_finalizing.store(true, std::memory_order_release);
  }
  // The completion thread may be waiting for the GIL to run its last batch: let it.
  GilRelease release;
  std::unique_lock lock(rt->mutex);
  rt->cv.wait(lock, [&] { return !rt->busy; });
  Leak(std::move(rt->tasks));
  rt->tasks.clear();
  rt->releases.clear();  // leaked
}

void AfterForkChild() {
  // Only this thread exists in the child: the parent's completion thread is gone.
  g_runtime.store(new Runtime);
  g_finalizing.store(false);
}

}  // namespace

void Post(std::function<void()> task) {
  Runtime* rt = g_runtime.load();
  std::unique_lock lock(rt->mutex);
  if (rt->finalizing) {
    lock.unlock();
    new std::function<void()>(std::move(task));  // leaked on purpose
    return;
  }
  rt->tasks.push_back(std::move(task));
  if (!rt->started) {
    rt->started = true;
    std::thread(CompletionLoop, rt).detach();  // never joined: lives until exit
  }
  lock.unlock();
  rt->cv.notify_all();  // unlocked: the woken thread must not block on rt->mutex at once
}

std::shared_ptr<PyObject> Share(py::handle obj) {
  Py_XINCREF(obj.ptr());
  return std::shared_ptr<PyObject>(obj.ptr(), ReleaseReference);
}

bool Finalizing() { return g_finalizing.load(std::memory_order_acquire); }

GilRelease::GilRelease() : state_(PyEval_SaveThread()) {}

GilRelease::~GilRelease() {
  if (Finalizing() && std::this_thread::get_id() != g_finalizer.load()) {
    // Only daemon threads are left (non-daemon ones were joined before atexit) and the
    // process is ending: stay out of the interpreter. Never returns.
    while (true) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  PyEval_RestoreThread(state_);
}

void InstallRuntime(py::module_& m) {
  py::module_::import("atexit").attr("register")(py::cpp_function(&BeginFinalization));
  py::module_ os = py::module_::import("os");
  if (py::hasattr(os, "register_at_fork")) {
    os.attr("register_at_fork")(py::arg("after_in_child") = py::cpp_function(&AfterForkChild));
  }
}

}  // namespace quiver::python

#include "gateway/local/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

extern char** environ;

namespace quiver::gateway {
namespace {

// Runs tasks on one thread that is never joined (see the header: PDEATHSIG follows the
// forking thread). Leaked on purpose, so that no destructor runs under it at exit.
class SpawnerThread {
 public:
  static SpawnerThread& Get() {
    static SpawnerThread* instance = new SpawnerThread();
    return *instance;
  }
  void Run(std::function<void()> task) {
    std::packaged_task<void()> packaged(std::move(task));
    std::future<void> done = packaged.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(packaged));
    }
    cv_.notify_one();
    done.get();
  }

 private:
  SpawnerThread() {
    // Signals are for the other threads; this one only forks.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread([this] { Loop(); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  void Loop() {
    while (true) {
      std::packaged_task<void()> task;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;  // guarded by mutex_
};

// dup2 that also works when `fd == target` (then only clears FD_CLOEXEC). Signal-safe.
bool MoveFd(int fd, int target) {
  if (fd == target) return ::fcntl(fd, F_SETFD, 0) == 0;
  return ::dup2(fd, target) == target;
}

void WriteSafe(const char* text) {
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text, std::strlen(text));
}

// The child between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(pid_t parent, char* const* argv, int in, int out, int err,
                            int death_signal) {
  if (::prctl(PR_SET_PDEATHSIG, death_signal) != 0) ::_exit(127);
  // The parent may have died before prctl: then nobody would ever signal us.
  if (::getppid() != parent) ::_exit(127);
  ::setpgid(0, 0);
  if (!MoveFd(in, STDIN_FILENO) || !MoveFd(out, STDOUT_FILENO) || !MoveFd(err, STDERR_FILENO))
    ::_exit(127);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);  // no fd of ours (sockets, pipes) leaks into it
  // Handlers reset at exec, but ignored and blocked signals are inherited: undo both.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(argv[0], argv, environ);
  WriteSafe("exec failed: ");
  WriteSafe(argv[0]);
  WriteSafe(": ");
  WriteSafe(::strerrordesc_np(errno));
  WriteSafe("\n");
  ::_exit(127);
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return Status::InvalidArgument("no program to start");
  const std::string program = options.argv[0];
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->log_file_ = options.log_file;
  const int log = ::open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) {
    return Status::Unavailable("cannot open log file " + options.log_file.string() + ": " +
                               std::strerror(errno));
  }
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out[2] = {-1, -1};
  if (options.capture_stdout && ::pipe2(out, O_CLOEXEC) != 0) out[0] = out[1] = -1;
  if (null < 0 || (options.capture_stdout && out[0] < 0)) {
    const int e = errno;
    for (int fd : {log, null, out[0], out[1]})
      if (fd >= 0) ::close(fd);
    return Status::Unavailable(std::string("cannot start ") + program + ": " + std::strerror(e));
  }
  // Everything the child needs is built before fork (no allocation after it).
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const int child_out = options.capture_stdout ? out[1] : log;
  pid_t pid = -1;
  int fork_errno = 0;
  SpawnerThread::Get().Run([&] {
    pid = ::fork();
    if (pid == 0) ExecChild(parent, argv.data(), null, child_out, log, options.death_signal);
    fork_errno = errno;
  });
  for (int fd : {log, null, out[1]})
    if (fd >= 0) ::close(fd);
  if (pid < 0) {
    if (out[0] >= 0) ::close(out[0]);
    return Status::Unavailable("cannot fork for " + program + ": " + std::strerror(fork_errno));
  }
  ::setpgid(pid, pid);  // as the child does: whichever runs first (EACCES after exec is fine)
  child->pid_ = pid;
  child->stdout_fd_ = out[0];
  child->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (child->pidfd_ < 0) {
    const int e = errno;
    child->Stop(std::chrono::milliseconds(0));
    return Status::Unavailable(std::string("pidfd_open: ") + std::strerror(e));
  }
  return child;
}

ChildProcess::~ChildProcess() {
  Stop(std::chrono::seconds(10));
  if (pidfd_ >= 0) ::close(pidfd_);
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

bool ChildProcess::Reap(bool block) {
  if (reaped_) return true;
  if (pid_ <= 0) return true;
  while (true) {
    const pid_t r = ::waitpid(pid_, &wait_status_, block ? 0 : WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return true;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {  // ECHILD: someone else reaped it (SIGCHLD ignored?); it is gone either way
      reaped_ = true;
      wait_status_ = -1;
      return true;
    }
    return false;
  }
}

bool ChildProcess::Exited() { return Reap(false); }

bool ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (Reap(false)) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n < 0 && errno == EINTR) continue;
    if (Reap(false)) return true;
    if (n == 0 || left.count() <= 0) return false;
  }
}

void ChildProcess::Terminate() {
  if (reaped_ || terminated_ || pid_ <= 0) return;
  terminated_ = true;
  ::kill(pid_, SIGTERM);  // not yet reaped, so pid_ is still ours (a zombie at worst)
}

void ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (reaped_ || pid_ <= 0) return;
  Terminate();
  if (WaitExit(grace)) return;
  ::kill(pid_, SIGKILL);
  Reap(true);
}

std::string ChildProcess::ExitDescription() const {
  if (!reaped_) return "running";
  if (wait_status_ == -1) return "exited (status unknown)";
  if (WIFEXITED(wait_status_)) return "exit code " + std::to_string(WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) {
    const int s = WTERMSIG(wait_status_);
    const char* name = ::sigabbrev_np(s);
    return "killed by signal " + std::to_string(s) +
           (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "status " + std::to_string(wait_status_);
}

std::string ChildProcess::LogTail(size_t max_lines) const { return FileTail(log_file_, max_lines); }

std::string FileTail(const std::filesystem::path& file, size_t max_lines) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 8192);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n') text.pop_back();
  size_t pos = text.size();
  for (size_t lines = 0; lines < max_lines && pos != std::string::npos && pos > 0;) {
    pos = text.rfind('\n', pos - 1);
    ++lines;
  }
  return pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
}

}  // namespace quiver::gateway

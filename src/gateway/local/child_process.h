#pragma once
// ChildProcess: one program started as a child of this process and always reaped.
//
// Why fork+exec and not posix_spawn: the child must set PR_SET_PDEATHSIG (it dies with us
// when we are killed with SIGKILL), which posix_spawn cannot. Between fork and exec the
// child only makes async-signal-safe calls (this process has many threads).
// Why a spawner thread: the kernel sends PDEATHSIG when the *thread* that forked exits, not
// the process, so every fork happens on one thread that lives as long as the process.
// Why its own process group: Ctrl-C on a terminal signals the whole foreground group; the
// parent wants to stop its children itself, in order (e.g. the gateway drains first), and a
// `quiver serve` that got SIGINT from the terminal and then SIGTERM from us would take the
// second signal as "exit without draining".

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace quiver::gateway {

// How to start a child.
struct SpawnOptions {
  std::vector<std::string> argv;   // argv[0] is the program's path (no PATH search)
  std::filesystem::path log_file;  // stderr (and stdout unless captured); truncated
  bool capture_stdout = false;     // stdout into a pipe: ChildProcess::stdout_fd()
  // PR_SET_PDEATHSIG. The kernel sends it each time the child is re-parented, i.e. once
  // per thread of ours that exits while we die: a child that takes a second SIGTERM as
  // "exit now" (quiver serve) gets SIGKILL instead (ServerProcess).
  int death_signal = SIGTERM;
};

// A started child. Not thread-safe: one owner at a time. The destructor stops the child
// (SIGTERM, then SIGKILL after 10 s) and reaps it, so no zombie is left.
class ChildProcess {
 public:
  // Forks and execs. UNAVAILABLE when the log file, the pipe or the fork fail; an exec
  // failure shows as an exit with code 127 and the reason in the log file.
  static Result<std::unique_ptr<ChildProcess>> Spawn(const SpawnOptions& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // A pidfd: readable (poll POLLIN) once the child has exited.
  int pidfd() const { return pidfd_; }
  // The read end of the child's stdout, or -1 when not captured. Kept open until
  // destruction, so the child never writes into a closed pipe.
  int stdout_fd() const { return stdout_fd_; }
  const std::filesystem::path& log_file() const { return log_file_; }

  // Reaps the child if it has exited (never blocks); true once it has.
  bool Exited();
  // Waits up to `timeout` for the child to exit, reaping it; true once it has.
  bool WaitExit(std::chrono::milliseconds timeout);
  // SIGTERM (once; nothing when already exited).
  void Terminate();
  // Terminate, wait up to `grace`, then SIGKILL and reap.
  void Stop(std::chrono::milliseconds grace);
  // "exit code N" / "killed by signal N (Name)" / "running".
  std::string ExitDescription() const;
  // The last `max_lines` lines of the log file (for error messages).
  std::string LogTail(size_t max_lines = 15) const;

 private:
  ChildProcess() = default;
  bool Reap(bool block);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdout_fd_ = -1;
  bool reaped_ = false;  // after waitpid: pid_ may belong to someone else, never signal it
  bool terminated_ = false;
  int wait_status_ = 0;
  std::filesystem::path log_file_;
};

// The last `max_lines` lines of a text file ("" if unreadable).
std::string FileTail(const std::filesystem::path& file, size_t max_lines);

}  // namespace quiver::gateway

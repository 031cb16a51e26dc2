#include "cli/process_setup.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace quiver::cli {
namespace {

// Shutdown signals (SIGTERM, SIGINT) arrive through a self-pipe: the handler only writes
// the signal number to a pipe (async-signal-safe), and the main thread reads it. A handler
// rather than sigwait because libraries start threads before main() (OpenBLAS's pool, at
// load time) whose signal mask we cannot set, and the kernel may deliver to any of them.
int g_signal_pipe[2] = {-1, -1};

extern "C" void OnShutdownSignal(int signo) {
  const int saved_errno = errno;
  const char byte = static_cast<char>(signo);
  // Nothing to do on failure: the pipe is full only if signals are already pending.
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

}  // namespace

bool InstallShutdownSignals() {
  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  // Only the write end is non-blocking (the handler must never block); reads block.
  ::fcntl(g_signal_pipe[0], F_SETFL, ::fcntl(g_signal_pipe[0], F_GETFL) & ~O_NONBLOCK);
  struct sigaction action {};
  action.sa_handler = OnShutdownSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (::sigaction(SIGTERM, &action, nullptr) != 0 || ::sigaction(SIGINT, &action, nullptr) != 0)
    return false;
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}

int WaitForShutdownSignal() {
  char byte = 0;
  while (true) {
    const ssize_t n = ::read(g_signal_pipe[0], &byte, 1);
    if (n == 1) return static_cast<unsigned char>(byte);
    if (n < 0 && errno == EINTR) continue;
    return SIGTERM;  // the pipe broke: treat as a request to stop rather than spin
  }
}

void RequestShutdown(int signo) { OnShutdownSignal(signo); }

int ShutdownSignalFd() { return g_signal_pipe[0]; }

void KeepLargeBuffersInHeap() {
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);  // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
}

}  // namespace quiver::cli

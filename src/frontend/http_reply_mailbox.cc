#include "frontend/http_reply_mailbox.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

namespace quiver::frontend {
namespace {

// The mailbox whose I/O thread this is (IoThreadScope), if any.
thread_local const ReplyMailbox* tls_io_mailbox = nullptr;

int MakeEventFd() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd for HTTP replies");
  return fd;
}

}  // namespace

ReplyMailbox::IoThreadScope::IoThreadScope(const ReplyMailbox& mailbox)
    : previous_(std::exchange(tls_io_mailbox, &mailbox)) {}

ReplyMailbox::IoThreadScope::~IoThreadScope() { tls_io_mailbox = previous_; }

bool ReplyMailbox::OnIoThread() const { return tls_io_mailbox == this; }

ReplyMailbox::ReplyMailbox() : fd_(MakeEventFd()) {}

ReplyMailbox::~ReplyMailbox() { close(fd_); }

bool ReplyMailbox::Post(std::function<void()> work) {
  std::unique_lock lock(mutex_);
  if (closed_) {
    lock.unlock();  // `work` (a reply, a connection's weak reference) is destroyed unlocked
    return false;
  }
  queued_.push_back(std::move(work));
  return true;
}

void ReplyMailbox::Wake() {
  {
    std::lock_guard lock(mutex_);
    if (signalled_ || closed_ || queued_.empty()) return;
    signalled_ = true;
  }
  const uint64_t one = 1;
  // Cannot block or fail short of a counter overflow (2^64 - 2 unread wakes).
  [[maybe_unused]] const ssize_t written = write(fd_, &one, sizeof one);
}

void ReplyMailbox::Drain() noexcept {
  uint64_t count = 0;
  // Reset the counter before taking the queue: a wake after this read is not lost.
  [[maybe_unused]] const ssize_t read_bytes = read(fd_, &count, sizeof count);
  {
    std::lock_guard lock(mutex_);
    running_.swap(queued_);
    signalled_ = false;
  }
  for (auto& work : running_) {
    // One failing reply (e.g. bad_alloc) must not take the others, or later drains, along.
    try {
      work();
    } catch (const std::exception& e) {
      spdlog::error("HTTP server: a reply failed on its way to the connection: {}", e.what());
    } catch (...) {
      spdlog::error("HTTP server: a reply failed on its way to the connection");
    }
  }
  running_.clear();
}

void ReplyMailbox::Close() {
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    dropped.swap(queued_);
  }
}

}  // namespace quiver::frontend

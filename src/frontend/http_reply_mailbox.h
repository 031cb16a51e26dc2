#pragma once
// ReplyMailbox: carries replies from service threads (a model's worker, the blocking pool)
// to HttpServer's I/O threads (internal to src/frontend).
//
// Why not asio::post from the service thread: asio wakes a reactor that sleeps in
// epoll_wait while it still holds the io_context's lock, and on a busy core (a server
// pinned to one CPU) the woken I/O thread preempts the poster at once, blocks on that lock,
// and runs again when the poster unlocks: four context switches per reply instead of two.
// Here the service thread queues under the mailbox's own lock and writes an eventfd after
// releasing it; the replies of one engine batch wake the I/O threads once, after the last
// of them (DeliveryBatch), and the woken thread finds them all (docs/benchmarks.md, "Replies
// through a mailbox").

#include <functional>
#include <mutex>
#include <vector>

namespace quiver::frontend {

class ReplyMailbox {
 public:
  ReplyMailbox();  // throws std::system_error when no eventfd can be made
  ~ReplyMailbox();
  ReplyMailbox(const ReplyMailbox&) = delete;
  ReplyMailbox& operator=(const ReplyMailbox&) = delete;

  // Any thread: queues `work` to run on an I/O thread; false (and `work` destroyed) once
  // closed. Nothing runs before the next Wake.
  bool Post(std::function<void()> work);
  // Any thread: makes the I/O threads drain, unless a wake since the last drain already
  // does. Call it with no lock held that an I/O thread may take.
  void Wake();

  // Marks the calling thread, for the scope's lifetime, as one of the I/O threads that
  // drain this mailbox (HttpServer's I/O loop).
  class IoThreadScope {
   public:
    explicit IoThreadScope(const ReplyMailbox& mailbox);
    ~IoThreadScope();
    IoThreadScope(const IoThreadScope&) = delete;
    IoThreadScope& operator=(const IoThreadScope&) = delete;

   private:
    const ReplyMailbox* previous_;
  };
  // Whether the calling thread is one of this mailbox's I/O threads: a reply made there (a
  // model run inline, metadata, an error) needs no mailbox.
  bool OnIoThread() const;

  // The I/O threads: readable when there is something to drain. Owned by the mailbox.
  int fd() const { return fd_; }
  // An I/O thread, once fd() is readable: runs what was posted, in order; a work that
  // throws is logged and the others still run. Never throws.
  void Drain() noexcept;
  // Server stopping: drops what is queued (on this thread) and refuses further posts.
  void Close();

 private:
  const int fd_;
  std::mutex mutex_;
  std::vector<std::function<void()>> queued_;   // guarded by mutex_
  std::vector<std::function<void()>> running_;  // Drain's; one drain at a time
  bool signalled_ = false;  // guarded by mutex_; fd_ written since the last drain
  bool closed_ = false;     // guarded by mutex_
};

}  // namespace quiver::frontend

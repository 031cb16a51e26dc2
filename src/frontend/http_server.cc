#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "frontend/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/cpus.h"
#include "frontend/http_connection.h"
#include "frontend/http_listen.h"
#include "frontend/http_router.h"

namespace quiver::frontend {

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;

// How long Stop waits for the force-closed connections to be closed on their strands.
constexpr std::chrono::seconds kForceCloseGrace{5};

class HttpServer::Impl {
 public:
  Impl(InferenceService& service, SharedMemoryManager& shm, const HttpServerOptions& options)
      : options_(options),
        acceptor_(asio::make_strand(ioc_)),
        blocking_(2),
        router_(service, shm,
                [this](std::function<void()> task) { asio::post(blocking_, std::move(task)); },
                options.max_body_bytes, options.authenticator),
        mailbox_wake_(ioc_) {
    if (options.extension) router_.SetExtension(options.extension_prefix, options.extension);
  }

  ~Impl() { Stop(); }

  Status Start() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    if (started_) return Status::AlreadyExists("the HTTP server is already started");
    auto bound = Listen(acceptor_, options_.address, options_.port, "HTTP server");
    if (!bound.ok()) return bound.status();
    port_ = *bound;
    try {
      mailbox_ = std::make_shared<ReplyMailbox>();
      mailbox_wake_.assign(Dup(mailbox_->fd()));
    } catch (const std::system_error& e) {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      return Status::Unavailable(std::string("HTTP server: ") + e.what());
    }
    started_ = true;
    const unsigned n = static_cast<unsigned>(options_.threads > 0 ? options_.threads : UsableCpus());
    io_threads_ = n;
    work_.emplace(asio::make_work_guard(ioc_));
    Accept();
    WaitForReplies();
    threads_.reserve(n);
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
    return Status::Ok();
  }

  void Stop() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    if (!started_ || stopped_) return;
    stopped_ = true;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;  // under mutex_: no connection registers after the loop below
      for (auto& [raw, connection] : connections_) connection->Shutdown();
    }
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, options_.stop_timeout, [this] { return connections_.empty(); });
      for (auto& [raw, connection] : connections_) connection->ForceClose();
      // The force-closes are posted to the connections' strands: let the I/O threads run
      // them before the io_context stops, or a socket stays open (its client waiting for
      // the end) until the server is destroyed. Bounded: an I/O thread running a model
      // inline delays its connections' close by that run.
      cv_.wait_for(lock, kForceCloseGrace, [this] { return connections_.empty(); });
    }
    // From here on, service callbacks drop their replies instead of posting them.
    mailbox_->Close();  // made by Start
    blocking_.join();  // lets a running model load/unload finish
    work_.reset();
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    // No I/O thread runs now: what is still queued (a force-close that missed the grace
    // period, aborted reads) runs here, so every socket is closed when Stop returns.
    boost::system::error_code ignored;
    mailbox_wake_.close(ignored);  // its wait ends as aborted below
    ioc_.restart();
    ioc_.poll();
    std::lock_guard lock(mutex_);
    connections_.clear();  // sockets close while the io_context still exists
  }

  uint16_t port() const { return port_.load(); }

 private:
  void Run() {
    const ReplyMailbox::IoThreadScope io_thread(*mailbox_);
    // A handler that throws (e.g. bad_alloc) must not take the whole thread down.
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("HTTP server: unexpected exception in an I/O thread: {}", e.what());
      }
    }
  }

  static int Dup(int fd) {
    const int copy = dup(fd);
    if (copy < 0) throw std::system_error(errno, std::generic_category(), "dup of an eventfd");
    return copy;
  }

  // One wait at a time: the replies are drained by one I/O thread, in the order posted.
  // Drain never throws, so the wait is always armed again.
  void WaitForReplies() {
    mailbox_wake_.async_wait(asio::posix::stream_descriptor::wait_read,
                             [this](boost::system::error_code ec) {
                               if (ec) return;  // closed by Stop
                               mailbox_->Drain();
                               WaitForReplies();
                             });
  }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           [this](boost::system::error_code ec, tcp::socket socket) {
                             OnAccept(ec, std::move(socket));
                           });
  }

  void OnAccept(boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      ConnectionSettings settings{options_.max_body_bytes, options_.idle_timeout,
                                  options_.read_timeout, io_threads_ > 1};
      auto connection = std::make_shared<HttpConnection>(
          std::move(socket), router_, settings, mailbox_, stopping_,
          [this](HttpConnection* c) { OnClosed(c); });
      bool accepted = false;
      {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
          connections_.emplace(connection.get(), connection);
          accepted = true;
        }
      }
      if (accepted) connection->Start();
    }
    // Accept errors (e.g. out of descriptors) drop that one connection; keep accepting.
    Accept();
  }

  void OnClosed(HttpConnection* connection) {
    std::shared_ptr<HttpConnection> keep;  // released outside the lock
    {
      std::lock_guard lock(mutex_);
      auto it = connections_.find(connection);
      if (it == connections_.end()) return;
      keep = std::move(it->second);
      connections_.erase(it);
    }
    cv_.notify_all();
  }

  const HttpServerOptions& options_;
  // Declared first so that it is destroyed last, after everything bound to it.
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  asio::thread_pool blocking_;
  HttpRouter router_;
  std::shared_ptr<ReplyMailbox> mailbox_;       // made by Start
  asio::posix::stream_descriptor mailbox_wake_;  // a duplicate of mailbox_->fd()
  unsigned io_threads_ = 0;                      // set by Start before the first accept
  std::atomic<bool> stopping_{false};  // written under mutex_, read anywhere
  std::atomic<uint16_t> port_{0};

  std::mutex lifecycle_mutex_;  // serialises Start and Stop
  bool started_ = false;        // guarded by lifecycle_mutex_
  bool stopped_ = false;        // guarded by lifecycle_mutex_
  std::vector<std::thread> threads_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::unordered_map<HttpConnection*, std::shared_ptr<HttpConnection>> connections_;  // guarded
};

HttpServer::HttpServer(InferenceService& service, SharedMemoryManager& shm,
                       HttpServerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(service, shm, options_)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  if (options_.threads < 0) return Status::InvalidArgument("HTTP server: threads must be >= 0");
  if (options_.max_body_bytes == 0) {
    return Status::InvalidArgument("HTTP server: max_body_bytes must be positive");
  }
  return impl_->Start();
}

void HttpServer::Stop() { impl_->Stop(); }

uint16_t HttpServer::port() const { return impl_->port(); }

}  // namespace quiver::frontend

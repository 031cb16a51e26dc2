#include "gateway/local/server_pool.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <set>

namespace quiver::gateway {
namespace {

void Signal(int fd) {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

}  // namespace

ServerPool::ServerPool(ServerPoolOptions options) : options_(std::move(options)) {
  std::error_code ec;
  std::filesystem::create_directories(options_.log_dir, ec);  // a failure shows at Spawn
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  cancel_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  worker_ = std::thread([this] { Loop(); });
}

ServerPool::~ServerPool() {
  StopAll();
  ::close(wake_fd_);
  ::close(cancel_fd_);
}

void ServerPool::Wake() { Signal(wake_fd_); }

std::vector<int> ServerPool::CancelFds() const {
  std::vector<int> fds = {cancel_fd_};
  if (options_.cancel_fd >= 0) fds.push_back(options_.cancel_fd);
  return fds;
}

ServerInfo ServerPool::Info(const Entry& e) const {
  const ServerProcess& s = *e.server;
  return ServerInfo{s.spec().name,  e.replica_of,
                    s.pid(),        s.http_port(),
                    s.grpc_port(),  s.metrics_port(),
                    s.GrpcUrl(),    s.HttpUrl(),
                    s.MetricsUrl(), options_.log_dir / (s.spec().name + ".log")};
}

Status ServerPool::StartServers(const std::vector<ServerSpec>& specs) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Status::Unavailable("the server pool is stopping");
    std::set<std::string> names;
    for (const auto& e : entries_) names.insert(e.server->spec().name);
    for (const auto& s : specs) {
      if (!names.insert(s.name).second)
        return Status::AlreadyExists("server name '" + s.name + "' is used twice");
    }
  }
  std::vector<std::unique_ptr<ServerProcess>> started(specs.size());
  std::vector<Status> errors(specs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < specs.size(); ++i) {
    threads.emplace_back([this, &specs, &started, &errors, i] {
      ServerProcessOptions o{options_.quiver_binary, options_.log_dir / (specs[i].name + ".log"),
                             options_.start_timeout, CancelFds()};
      auto server = ServerProcess::Start(specs[i], o);
      if (server.ok())
        started[i] = std::move(server).value();
      else
        errors[i] = server.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& e : errors) {
    if (!e.ok()) return e;  // `started` going out of scope stops the others
  }
  std::vector<std::string> urls;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Status::Cancelled("the server pool was stopped while starting");
    for (auto& server : started) {
      urls.push_back(server->GrpcUrl());
      entries_.push_back(Entry{"", next_seq_++, std::move(server)});
    }
  }
  Wake();  // the worker watches the new pidfds
  if (options_.on_ready) {
    for (const auto& url : urls) options_.on_ready(url);
  }
  return Status::Ok();
}

size_t ServerPool::Replicas(std::string_view model) const {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  if (auto it = starting_.find(model); it != starting_.end()) n = it->second;
  for (const auto& e : entries_) n += e.replica_of == model ? 1 : 0;
  return n;
}

Status ServerPool::ScaleTo(std::string_view model, size_t n) {
  if (model.empty()) return Status::InvalidArgument("ScaleTo: empty model name");
  if (options_.model_repository.empty()) {
    return Status::InvalidArgument(
        "cannot scale '" + std::string(model) +
        "': no model repository for replicas (autoscale.model_repository)");
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Status::Unavailable("the server pool is stopping");
    wanted_[std::string(model)] = n;
  }
  Wake();
  return Status::Ok();
}

std::vector<ServerInfo> ServerPool::Servers() const {
  std::lock_guard lock(mutex_);
  std::vector<ServerInfo> out;
  for (const auto& e : entries_) out.push_back(Info(e));
  return out;
}

std::vector<int> ServerPool::MetricsPorts() const {
  std::vector<int> ports;
  for (const auto& s : Servers())
    if (s.metrics_port > 0) ports.push_back(s.metrics_port);
  return ports;
}

void ServerPool::Loop() {
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    HandleExits();
    if (ReconcileOnce()) continue;
    std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}};
    {
      std::lock_guard lock(mutex_);
      for (const auto& e : entries_) fds.push_back({e.server->pidfd(), POLLIN, 0});
    }
    // Only this thread removes entries, so the pidfds stay open while we wait on them.
    ::poll(fds.data(), fds.size(), -1);
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
  }
}

void ServerPool::HandleExits() {
  std::vector<Entry> gone;
  {
    std::lock_guard lock(mutex_);
    auto dead = std::stable_partition(entries_.begin(), entries_.end(),
                                      [](Entry& e) { return !e.server->process().Exited(); });
    std::move(dead, entries_.end(), std::back_inserter(gone));
    entries_.erase(dead, entries_.end());
  }
  for (auto& e : gone) {
    const std::string why = e.server->process().ExitDescription();
    spdlog::warn("server '{}' ({}) exited: {}; log {}", e.server->spec().name, e.server->GrpcUrl(),
                 why, e.server->process().log_file().string());
    if (options_.on_exit) options_.on_exit(e.server->GrpcUrl(), why);
  }
}

bool ServerPool::ReconcileOnce() {
  std::unique_lock lock(mutex_);
  for (const auto& [model, want] : wanted_) {
    size_t running = 0;
    for (const auto& e : entries_) running += e.replica_of == model ? 1 : 0;
    size_t& starting = starting_[model];
    if (running + starting < want) {
      ++starting;
      ServerSpec spec{"replica-" + model + "-" + std::to_string(++next_index_[model]),
                      options_.model_repository,
                      {model},
                      options_.replica_args};
      const std::string m = model;  // `model` refers into wanted_, which may change unlocked
      lock.unlock();
      ServerProcessOptions o{options_.quiver_binary, options_.log_dir / (spec.name + ".log"),
                             options_.start_timeout, CancelFds()};
      auto server = ServerProcess::Start(spec, o);
      lock.lock();
      --starting_[m];
      if (!server.ok()) {
        if (server.status().code() != StatusCode::kCancelled) {
          spdlog::error("replica of '{}' did not start: {}", m, server.status().message());
          wanted_[m] = running;  // the autoscaler asks again on its next tick
        }
        return true;
      }
      const std::string url = (*server)->GrpcUrl();
      entries_.push_back(Entry{m, next_seq_++, std::move(server).value()});
      lock.unlock();
      spdlog::info("replica '{}' of '{}' ready at {}", spec.name, m, url);
      if (options_.on_ready) options_.on_ready(url);
      return true;
    }
    if (running + starting > want && running > 0) {
      auto newest = entries_.end();
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->replica_of == model && (newest == entries_.end() || it->seq > newest->seq))
          newest = it;
      }
      Entry victim = std::move(*newest);
      entries_.erase(newest);
      lock.unlock();
      const std::string url = victim.server->GrpcUrl();
      if (options_.before_stop) options_.before_stop(url);
      victim.server->process().Stop(options_.stop_timeout);
      spdlog::info("replica '{}' stopped: {}", victim.server->spec().name,
                   victim.server->process().ExitDescription());
      return true;
    }
  }
  return false;
}

void ServerPool::StopAll() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  Signal(cancel_fd_);
  Wake();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
  std::vector<Entry> all;
  {
    std::lock_guard lock(mutex_);
    all = std::move(entries_);
    entries_.clear();
  }
  // SIGTERM to all first: they drain in parallel, so stopping takes one timeout at most.
  for (auto& e : all) e.server->process().Terminate();
  const auto deadline = std::chrono::steady_clock::now() + options_.stop_timeout;
  for (auto& e : all) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    e.server->process().Stop(std::max(left, std::chrono::milliseconds(0)));
  }
}

}  // namespace quiver::gateway

#pragma once
// ServerPool: the `quiver serve` children of one process. It runs facility.yaml's fixed
// `servers:` (`quiver up`) and is the autoscaler's `local` ReplicaProvider: a replica of
// a model is one `quiver serve` serving only that model from autoscale.model_repository.
//
// One worker thread owns the replicas' lifecycle: it reconciles the wanted count per model
// (ScaleTo only records it), starts or stops one replica at a time, and waits on the
// children's pidfds, so a child that dies is noticed at once. A replica that dies is
// replaced (the wanted count stays); a replica that fails to start lowers the wanted count
// to what runs (the autoscaler asks again on its next tick: no tight restart loop).

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"
#include "gateway/autoscale/replica_provider.h"
#include "gateway/local/server_process.h"

namespace quiver::gateway {

// Callbacks get the server's gRPC URL (grpc://127.0.0.1:port), the gateway's upstream id.
// They run on the pool's worker thread (on_ready for StartServers: on the caller's) and
// may call the pool's public methods.
struct ServerPoolOptions {
  std::filesystem::path quiver_binary;     // e.g. /proc/self/exe
  std::filesystem::path log_dir;           // <server name>.log per child (created)
  std::filesystem::path model_repository;  // replicas' repository (autoscale.model_repository)
  std::vector<std::string> replica_args;   // more `quiver serve` flags for replicas
  std::chrono::milliseconds start_timeout{120000};
  std::chrono::milliseconds stop_timeout{30000};  // SIGTERM -> SIGKILL
  // Optional: readable = give up the starts in progress and those to come (CANCELLED),
  // e.g. a pending shutdown signal (cli::ShutdownSignalFd). Not read by the pool.
  int cancel_fd = -1;
  // A server is ready: add it as an upstream.
  std::function<void(const std::string& url)> on_ready;
  // A replica is about to get SIGTERM (scale-down): remove the upstream and drain it
  // (blocking is fine). Not called by StopAll or the destructor.
  std::function<void(const std::string& url)> before_stop;
  // A server exited on its own (crash, kill): remove the upstream. `why`: how it ended.
  std::function<void(const std::string& url, const std::string& why)> on_exit;
};

// What the pool runs, for printing and tests.
struct ServerInfo {
  std::string name;
  std::string replica_of;  // the model, for autoscaled replicas; "" for fixed servers
  pid_t pid = -1;
  int http_port = 0, grpc_port = 0, metrics_port = 0;
  std::string grpc_url, http_url, metrics_url;
  std::filesystem::path log_file;
};

// Thread-safe. The destructor stops every child (StopAll).
class ServerPool : public ReplicaProvider {
 public:
  explicit ServerPool(ServerPoolOptions options);
  ~ServerPool() override;
  ServerPool(const ServerPool&) = delete;
  ServerPool& operator=(const ServerPool&) = delete;

  // Starts the fixed servers in parallel and waits until each is ready (on_ready per
  // server). On the first failure, stops the ones it started and returns that error;
  // ALREADY_EXISTS for a name in use; CANCELLED when StopAll ran meanwhile.
  Status StartServers(const std::vector<ServerSpec>& specs);

  size_t Replicas(std::string_view model) const override;
  // Records the wanted count and returns at once; the worker starts (newest last) or stops
  // (newest first) replicas. INVALID_ARGUMENT: no model repository for replicas, or an
  // empty model name.
  Status ScaleTo(std::string_view model, size_t n) override;

  std::vector<ServerInfo> Servers() const;  // running servers, in start order
  // Metrics ports of the running servers (Prometheus targets).
  std::vector<int> MetricsPorts() const;

  // Stops every child (SIGTERM to all, then SIGKILL to those left after stop_timeout) and
  // the worker; no callbacks. Further ScaleTo calls fail (UNAVAILABLE).
  void StopAll();

 private:
  struct Entry {
    std::string replica_of;
    uint64_t seq = 0;
    std::unique_ptr<ServerProcess> server;
  };
  void Loop();
  bool ReconcileOnce();  // one start or stop; true if it did something
  void HandleExits();
  void Wake();
  std::vector<int> CancelFds() const;
  ServerInfo Info(const Entry& e) const;

  const ServerPoolOptions options_;
  int wake_fd_ = -1;    // eventfd: ScaleTo and StopAll wake the worker
  int cancel_fd_ = -1;  // eventfd: StopAll cancels a start in progress
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;                               // guarded by mutex_
  std::map<std::string, size_t, std::less<>> wanted_;        // guarded by mutex_
  std::map<std::string, size_t, std::less<>> starting_;      // guarded by mutex_
  std::map<std::string, uint64_t, std::less<>> next_index_;  // replica names; mutex_
  uint64_t next_seq_ = 0;                                    // guarded by mutex_
  bool stopping_ = false;                                    // guarded by mutex_
  std::thread worker_;
};

}  // namespace quiver::gateway

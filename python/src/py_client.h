#pragma once
// quiver.Client: the Python face of client::Client. It holds only its configuration
// until first use, when it creates the C++ client (connections, or the in-process Engine
// for local://) with the GIL released. Pickling keeps the configuration only, so a client
// shipped to a Dask worker reconnects lazily there; unpickled clients with equal
// configuration share one C++ client per process. After fork() the child creates its own.
// At interpreter exit the C++ clients are closed (connections, shared-memory regions),
// waiting a bounded time for calls still in flight.

#include <pybind11/pybind11.h>
#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client.h"

namespace quiver::python {

namespace py = pybind11;

// Everything a client is made from; what a pickle carries (the token included: a Dask
// worker needs it to authenticate).
struct ClientConfig {
  std::vector<std::string> urls;  // failover order
  std::string fallback;           // "" = none
  double timeout_s = 0;           // per call; 0 = none
  int retries = 4;                // attempts after the first (max_attempts - 1)
  double attempt_timeout_s = 0;   // per attempt; 0 = none
  size_t max_in_flight = 256;
  size_t connections = 4;
  bool shared_memory = true;
  bool validate_inputs = true;
  std::string token;  // bearer token for remote endpoints; "" = none

  client::ClientOptions Options() const;
  std::string Key() const;  // equal for equal configurations
  // As keyword arguments of Client(); the token only when `with_token` (pickling), so
  // that the public `config` and what is printed from it never show it.
  py::dict ToDict(bool with_token = false) const;
  static ClientConfig FromDict(const py::dict& state);
};

class PyClient {
 public:
  // `shared`: use the process-wide client for this configuration (unpickled clients).
  PyClient(ClientConfig config, bool shared);
  ~PyClient();  // GIL held: waits for in-flight calls with the GIL released
  PyClient(const PyClient&) = delete;
  PyClient& operator=(const PyClient&) = delete;

  // The C++ client, created on first use (or after fork). Call with the GIL released.
  Result<std::shared_ptr<client::Client>> Acquire();
  // Drops the C++ client now (waits for its calls); the next use creates a new one.
  void Close();  // GIL held
  // The C++ client if one exists in this process (no creation; for a shared client, the
  // process-wide one of this configuration). GIL released or held.
  std::shared_ptr<client::Client> Current();

  // Interpreter exit: hands over the C++ client of this process (null if none), leaving
  // this PyClient without one. Lock order: the registry's mutex, then mutex_.
  std::shared_ptr<client::Client> TakeForExit();

  const ClientConfig& config() const { return config_; }

 private:
  const ClientConfig config_;
  const bool shared_;
  std::mutex mutex_;
  std::shared_ptr<client::Client> client_;  // guarded by mutex_
  pid_t pid_ = 0;                           // guarded by mutex_: where client_ was made
};

// Registers quiver.Client on `m` (client_bindings.cc); returns the class so other files
// can add methods.
py::class_<PyClient> RegisterClient(py::module_& m);

// Registers the client's atexit handler (closes every C++ client) and fork hook. Module
// import, GIL held.
void InstallClientHooks();

// Argument helpers shared by the bindings (GIL held): a model version (None/int/str), a
// list of names (a str or a sequence of str), a duration in seconds (None: 0; else > 0).
std::string VersionArg(const py::object& version);
std::vector<std::string> NamesArg(const py::object& names, const char* what);
double SecondsArg(const py::object& value, const char* what);

}  // namespace quiver::python

#include "py_client.h"

#include <pybind11/stl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "errors.h"
#include "py_runtime.h"

namespace quiver::python {
namespace {

using std::chrono::milliseconds;

milliseconds Millis(double seconds) {
  return milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

// Process-wide clients of unpickled quiver.Clients, by configuration. Replaced (the old
// one leaked) in a forked child; never destroyed (static destructors run too late).
struct SharedClients {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<client::Client>> clients;  // guarded by mutex
};
std::atomic<SharedClients*> g_shared{new SharedClients};

Result<std::shared_ptr<client::Client>> SharedClient(const ClientConfig& config) {
  SharedClients* shared = g_shared.load();
  std::lock_guard lock(shared->mutex);
  const std::string key = config.Key();
  auto it = shared->clients.find(key);
  if (it != shared->clients.end()) return it->second;
  auto created = client::Client::Create(config.Options());
  if (!created.ok()) return created.status();
  shared->clients.emplace(key, *created);
  return std::move(*created);
}

// Every PyClient that made a C++ client in this process, for CloseAllAtExit. Replaced
// (leaked) in a forked child, like SharedClients.
struct Registry {
  std::mutex mutex;
  std::set<PyClient*> clients;  // guarded by mutex
};
std::atomic<Registry*> g_registry{new Registry};
std::atomic<bool> g_exiting{false};  // CloseAllAtExit ran: no new C++ clients

// How long interpreter exit waits for clients to close (their in-flight calls to end).
constexpr auto kExitCloseTimeout = std::chrono::seconds(2);

// atexit (GIL held): destroys this process's C++ clients, so that connections close
// gracefully and the shared-memory regions of remote endpoints are unregistered and
// unlinked (leaked clients would leave them in /dev/shm). A client destructor waits for
// its in-flight calls: if they have not ended within kExitCloseTimeout, exit goes on and
// the rest is left to the process's end. Runs before py_runtime's handler (registered
// later, so called earlier), while futures can still be completed.
void CloseAllAtExit() {
  GilRelease release;
  g_exiting.store(true);
  auto clients = std::make_shared<std::vector<std::shared_ptr<client::Client>>>();
  {
    Registry* registry = g_registry.load();
    std::lock_guard lock(registry->mutex);
    for (PyClient* c : registry->clients) {
      if (auto taken = c->TakeForExit()) clients->push_back(std::move(taken));
    }
    registry->clients.clear();
  }
  {
    SharedClients* shared = g_shared.load();
    std::lock_guard lock(shared->mutex);
    for (auto& [key, client] : shared->clients) clients->push_back(std::move(client));
    shared->clients.clear();
  }
  if (clients->empty()) return;
  struct Done {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  std::thread([clients, done] {
    clients->clear();  // the last references: each destructor waits for its calls
    std::lock_guard lock(done->mutex);
    done->done = true;
    done->cv.notify_all();
  }).detach();
  std::unique_lock lock(done->mutex);
  done->cv.wait_for(lock, kExitCloseTimeout, [&] { return done->done; });
}

// The process-wide client for `config` if one was made (no creation).
std::shared_ptr<client::Client> ExistingSharedClient(const ClientConfig& config) {
  SharedClients* shared = g_shared.load();
  std::lock_guard lock(shared->mutex);
  auto it = shared->clients.find(config.Key());
  return it != shared->clients.end() ? it->second : nullptr;
}

void AfterForkChild() {
  g_shared.store(new SharedClients);
  g_registry.store(new Registry);
}

}  // namespace

double SecondsArg(const py::object& value, const char* what) {
  if (value.is_none()) return 0;
  const double s = value.cast<double>();
  if (!(s > 0) || !std::isfinite(s)) {
    ThrowStatus(Status::InvalidArgument(std::string(what) +
                                        " must be a positive number of seconds or None"));
  }
  return s;
}

std::string VersionArg(const py::object& version) {
  if (version.is_none()) return "";
  if (py::isinstance<py::int_>(version) && !py::isinstance<py::bool_>(version)) {
    return std::to_string(version.cast<int64_t>());
  }
  if (py::isinstance<py::str>(version)) return version.cast<std::string>();
  throw py::type_error("version must be None, an int or a str");
}

std::vector<std::string> NamesArg(const py::object& names, const char* what) {
  if (names.is_none()) return {};
  if (py::isinstance<py::str>(names)) return {names.cast<std::string>()};
  std::vector<std::string> out;
  for (py::handle item : names) {
    if (!py::isinstance<py::str>(item)) {
      throw py::type_error(std::string(what) + " must be a str or a sequence of str");
    }
    out.push_back(item.cast<std::string>());
  }
  return out;
}

client::ClientOptions ClientConfig::Options() const {
  client::ClientOptions o;
  o.urls = urls;
  o.fallback = fallback;
  o.timeout = Millis(timeout_s);
  o.attempt_timeout = Millis(attempt_timeout_s);
  o.retry.max_attempts = retries + 1;
  o.max_in_flight = max_in_flight;
  o.connections = connections;
  o.shared_memory = shared_memory;
  o.validate_inputs = validate_inputs;
  o.token = token;
  return o;
}

std::string ClientConfig::Key() const {
  std::ostringstream key;
  for (const std::string& u : urls) key << u << '\n';
  key << '\n'
      << fallback << '\n'
      << timeout_s << '\n'
      << retries << '\n'
      << attempt_timeout_s << '\n'
      << max_in_flight << '\n'
      << connections << '\n'
      << shared_memory << '\n'
      << validate_inputs << '\n'
      << token;
  return key.str();
}

py::dict ClientConfig::ToDict(bool with_token) const {
  py::dict d;
  d["urls"] = py::cast(urls);
  d["fallback"] = fallback.empty() ? py::object(py::none()) : py::object(py::str(fallback));
  d["timeout"] = timeout_s > 0 ? py::object(py::float_(timeout_s)) : py::object(py::none());
  d["retries"] = retries;
  d["attempt_timeout"] =
      attempt_timeout_s > 0 ? py::object(py::float_(attempt_timeout_s)) : py::object(py::none());
  d["max_in_flight"] = max_in_flight;
  d["connections"] = connections;
  d["shared_memory"] = shared_memory;
  d["validate_inputs"] = validate_inputs;
  if (with_token) d["token"] = token;
  return d;
}

ClientConfig ClientConfig::FromDict(const py::dict& state) {
  ClientConfig c;
  c.urls = state["urls"].cast<std::vector<std::string>>();
  if (!state["fallback"].is_none()) c.fallback = state["fallback"].cast<std::string>();
  c.timeout_s = SecondsArg(state["timeout"], "timeout");
  c.retries = state["retries"].cast<int>();
  c.attempt_timeout_s = SecondsArg(state["attempt_timeout"], "attempt_timeout");
  c.max_in_flight = state["max_in_flight"].cast<size_t>();
  c.connections = state["connections"].cast<size_t>();
  c.shared_memory = state["shared_memory"].cast<bool>();
  c.validate_inputs = state["validate_inputs"].cast<bool>();
  if (state.contains("token")) c.token = state["token"].cast<std::string>();
  return c;
}

namespace {

// local:// lives in the extension module quiver._quiver_local (the engine and its backends,
// libtorch among them), imported on the first local:// URL so that a remote-only
// `import quiver` never loads them. It hands over its opener as a capsule.
void EnsureLocalUrls(const ClientConfig& config) {
  static std::atomic<bool> loaded{false};
  if (loaded.load()) return;
  bool wanted = config.fallback.starts_with("local://");
  for (const std::string& url : config.urls) wanted |= url.starts_with("local://");
  if (!wanted) return;
  py::module_ local = py::module_::import("quiver._quiver_local");
  auto capsule = local.attr("local_opener").cast<py::capsule>();
  if (capsule.name() == nullptr || std::string(capsule.name()) != "quiver.client.LocalOpener") {
    throw py::import_error("quiver._quiver_local does not match this quiver._quiver");
  }
  client::SetLocalOpener(reinterpret_cast<client::LocalOpener>(capsule.get_pointer()));
  loaded.store(true);
}

}  // namespace

PyClient::PyClient(ClientConfig config, bool shared) : config_(std::move(config)), shared_(shared) {
  EnsureLocalUrls(config_);  // the GIL is held: called from __init__ and unpickling
}

PyClient::~PyClient() {
  {
    Registry* registry = g_registry.load();
    std::lock_guard lock(registry->mutex);
    registry->clients.erase(this);
  }
  std::shared_ptr<client::Client> client;
  pid_t pid = 0;
  {
    std::lock_guard lock(mutex_);
    client = std::move(client_);
    pid = pid_;
  }
  if (client == nullptr) return;
  if (Finalizing() || pid != getpid()) {
    // Interpreter exit, or a forked child whose copy has no threads: do not wait for
    // calls that may never end; the process is going away (or the parent owns them).
    new std::shared_ptr<client::Client>(std::move(client));
    return;
  }
  GilRelease release;
  client.reset();  // waits for in-flight calls, whose completions need the GIL
}

Result<std::shared_ptr<client::Client>> PyClient::Acquire() {
  std::shared_ptr<client::Client> created_here;
  {
    std::lock_guard lock(mutex_);
    const pid_t pid = getpid();
    if (client_ != nullptr && pid_ == pid) return client_;
    if (client_ != nullptr) new std::shared_ptr<client::Client>(std::move(client_));  // forked
    if (g_exiting.load()) {
      return Status::Cancelled("quiver: the interpreter is exiting; no new connections");
    }
    auto created = shared_ ? SharedClient(config_) : client::Client::Create(config_.Options());
    if (!created.ok()) return created.status();
    client_ = std::move(*created);
    pid_ = pid;
    created_here = client_;
  }
  // Outside mutex_ (lock order: registry, then mutex_).
  Registry* registry = g_registry.load();
  std::lock_guard lock(registry->mutex);
  registry->clients.insert(this);
  return created_here;
}

std::shared_ptr<client::Client> PyClient::TakeForExit() {
  std::lock_guard lock(mutex_);
  if (pid_ != getpid()) return nullptr;
  return std::move(client_);
}

std::shared_ptr<client::Client> PyClient::Current() {
  {
    std::lock_guard lock(mutex_);
    if (client_ != nullptr && pid_ == getpid()) return client_;
  }
  return shared_ ? ExistingSharedClient(config_) : nullptr;
}

void PyClient::Close() {
  GilRelease release;
  std::shared_ptr<client::Client> client;
  {
    std::lock_guard lock(mutex_);
    if (pid_ != getpid()) {
      if (client_ != nullptr) new std::shared_ptr<client::Client>(std::move(client_));
      client_ = nullptr;
      return;
    }
    client = std::move(client_);
  }
  client.reset();
}

void InstallClientHooks() {
  py::module_::import("os").attr("register_at_fork")(py::arg("after_in_child") =
                                                         py::cpp_function(&AfterForkChild));
  py::module_::import("atexit").attr("register")(py::cpp_function(&CloseAllAtExit));
}

}  // namespace quiver::python

#pragma once
// Status and Result<T>: the one error type of Quiver (see docs/architecture.md,
// "Error policy"). Codes follow Triton's error kinds plus the three the scheduler
// needs (RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, CANCELLED).

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace quiver {

// A small fixed set of error kinds; each has exactly one HTTP and one gRPC mapping, chosen
// for parity with Triton (docs/protocol.md): the wire code of every kind is the one Triton
// answers for the same condition, so several kinds share a code (e.g. RESOURCE_EXHAUSTED goes
// out as 503 / UNAVAILABLE) and the inverse mappings cannot always recover the kind.
enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,   // bad request content: never retried
  kNotFound,          // unknown model / version / tensor / region: never retried
  kAlreadyExists,     // e.g. a shared-memory region registered twice
  kUnavailable,       // server/model not ready, draining, queue timeout: retryable
  kResourceExhausted, // queue full, message too large
  kDeadlineExceeded,  // the caller's deadline passed
  kCancelled,         // the caller went away
  kUnsupported,       // a feature this build or model does not provide
  kInternal,          // a backend failed or an invariant broke
  kUnknown,
  kUnauthenticated,   // the gateway's tenants: missing or wrong token (401 / UNAUTHENTICATED)
  kTooManyRequests,   // a tenant over its rate or in-flight limit (429 / RESOURCE_EXHAUSTED)
};

// Canonical upper-case name, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);
// The HTTP status code the REST frontends answer with (Triton's HttpCodeFromError).
int HttpStatusFor(StatusCode code);
// The numeric gRPC status code (grpc::StatusCode values, fixed by the gRPC spec), as Triton's
// GrpcStatusUtil::CodeToStatus.
int GrpcCodeFor(StatusCode code);
// Inverse mappings used by clients to turn a remote error back into a Status.
StatusCode StatusCodeFromGrpc(int grpc_code);
StatusCode StatusCodeFromHttp(int http_status);

// An outcome: OK, or an error code with a message meant for a human.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unknown(std::string m) { return {StatusCode::kUnknown, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

  // A copy with `context + ": "` prepended to the message (same code).
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value of type T, or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<1>, std::move(value)) {}  // NOLINT: implicit
  Result(Status status) : state_(std::in_place_index<0>, std::move(status)) {  // NOLINT
    assert(!std::get<0>(state_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return state_.index() == 1; }
  // The error; an OK status when the result holds a value.
  Status status() const { return ok() ? Status::Ok() : std::get<0>(state_); }

  T& value() & { return std::get<1>(state_); }
  const T& value() const& { return std::get<1>(state_); }
  T&& value() && { return std::get<1>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<Status, T> state_;
};

}  // namespace quiver

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define QUIVER_RETURN_IF_ERROR(expr)                      \
  do {                                                    \
    ::quiver::Status quiver_status_ = (expr);             \
    if (!quiver_status_.ok()) return quiver_status_;      \
  } while (false)

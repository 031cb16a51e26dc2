#include "core/status.h"

namespace quiver {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnsupported: return "UNSUPPORTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kTooManyRequests: return "TOO_MANY_REQUESTS";
  }
  return "UNKNOWN";
}

// Triton's HttpCodeFromError (server/src/http_server.cc): INTERNAL 500, NOT_FOUND 404,
// UNAVAILABLE 503, UNSUPPORTED 501, everything else (INVALID_ARG, ALREADY_EXISTS, CANCELLED,
// UNKNOWN) 400. Triton has no RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED kind: it reports a full
// queue ("Exceeds maximum queue size") and an expired request timeout as UNAVAILABLE, so ours
// go out as 503 too. See docs/protocol.md.
int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 400;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kResourceExhausted: return 503;
    case StatusCode::kDeadlineExceeded: return 503;
    case StatusCode::kCancelled: return 400;
    case StatusCode::kUnsupported: return 501;
    case StatusCode::kInternal: return 500;
    case StatusCode::kUnknown: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kTooManyRequests: return 429;
  }
  return 500;
}

// Numbers from the gRPC status code table (grpc/status.h), which is part of the wire protocol.
// Triton's GrpcStatusUtil::CodeToStatus (server/src/grpc/grpc_utils.cc) maps its kinds one to
// one (UNSUPPORTED -> UNIMPLEMENTED); as over HTTP, a full queue and an expired timeout are
// UNAVAILABLE there, so RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED go out as UNAVAILABLE. (The
// gRPC library's own RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED, e.g. a message over the size
// limit or the client's deadline, are produced by gRPC itself and unaffected.)
int GrpcCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 0;
    case StatusCode::kCancelled: return 1;
    case StatusCode::kUnknown: return 2;
    case StatusCode::kInvalidArgument: return 3;
    case StatusCode::kDeadlineExceeded: return 14;
    case StatusCode::kNotFound: return 5;
    case StatusCode::kAlreadyExists: return 6;
    case StatusCode::kResourceExhausted: return 14;
    case StatusCode::kUnsupported: return 12;  // UNIMPLEMENTED
    case StatusCode::kInternal: return 13;
    case StatusCode::kUnavailable: return 14;
    case StatusCode::kUnauthenticated: return 16;
    case StatusCode::kTooManyRequests: return 8;  // RESOURCE_EXHAUSTED
  }
  return 2;
}

StatusCode StatusCodeFromGrpc(int grpc_code) {
  switch (grpc_code) {
    case 0: return StatusCode::kOk;
    case 1: return StatusCode::kCancelled;
    case 3: return StatusCode::kInvalidArgument;
    case 4: return StatusCode::kDeadlineExceeded;
    case 5: return StatusCode::kNotFound;
    case 6: return StatusCode::kAlreadyExists;
    case 8: return StatusCode::kResourceExhausted;
    case 9: return StatusCode::kInvalidArgument;  // FAILED_PRECONDITION
    case 11: return StatusCode::kInvalidArgument;  // OUT_OF_RANGE
    case 12: return StatusCode::kUnsupported;
    case 13: return StatusCode::kInternal;
    case 14: return StatusCode::kUnavailable;
    case 16: return StatusCode::kUnauthenticated;
    default: return StatusCode::kUnknown;
  }
}

StatusCode StatusCodeFromHttp(int http_status) {
  if (http_status >= 200 && http_status < 300) return StatusCode::kOk;
  switch (http_status) {
    case 400: return StatusCode::kInvalidArgument;
    case 401: return StatusCode::kUnauthenticated;
    case 404: return StatusCode::kNotFound;
    case 409: return StatusCode::kAlreadyExists;
    case 413: return StatusCode::kResourceExhausted;
    case 429: return StatusCode::kTooManyRequests;
    case 499: return StatusCode::kCancelled;
    case 501: return StatusCode::kUnsupported;
    case 502: return StatusCode::kUnavailable;
    case 503: return StatusCode::kUnavailable;
    case 504: return StatusCode::kDeadlineExceeded;
    default: return http_status >= 500 ? StatusCode::kInternal : StatusCode::kUnknown;
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

}  // namespace quiver

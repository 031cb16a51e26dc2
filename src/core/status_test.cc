#include "core/status.h"

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, EveryCodeMapsToHttpAndGrpcAndBack) {
  // Kinds with a wire code of their own survive the round trip.
  for (auto code : {StatusCode::kInvalidArgument, StatusCode::kNotFound,
                    StatusCode::kAlreadyExists, StatusCode::kUnavailable, StatusCode::kCancelled,
                    StatusCode::kUnsupported, StatusCode::kInternal, StatusCode::kUnknown,
                    StatusCode::kUnauthenticated}) {
    EXPECT_EQ(StatusCodeFromGrpc(GrpcCodeFor(code)), code) << StatusCodeName(code);
    EXPECT_GE(HttpStatusFor(code), 400) << StatusCodeName(code);
  }
  EXPECT_EQ(HttpStatusFor(StatusCode::kOk), 200);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kOk), 0);
  EXPECT_EQ(StatusCodeFromHttp(503), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeFromGrpc(8), StatusCode::kResourceExhausted);  // gRPC's own codes
  EXPECT_EQ(StatusCodeFromGrpc(4), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(StatusCodeFromHttp(429), StatusCode::kTooManyRequests);
  EXPECT_EQ(StatusCodeFromHttp(401), StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusCodeName(StatusCode::kTooManyRequests), "TOO_MANY_REQUESTS");
}

// The wire codes Triton answers with (HttpCodeFromError, GrpcStatusUtil::CodeToStatus).
TEST(StatusTest, WireCodesMatchTriton) {
  struct Case {
    StatusCode code;
    int http;
    int grpc;
  };
  for (const Case& c : {Case{StatusCode::kInvalidArgument, 400, 3},
                        Case{StatusCode::kNotFound, 404, 5},
                        Case{StatusCode::kAlreadyExists, 400, 6},
                        Case{StatusCode::kUnavailable, 503, 14},
                        Case{StatusCode::kResourceExhausted, 503, 14},  // "Exceeds maximum queue size"
                        Case{StatusCode::kDeadlineExceeded, 503, 14},   // "Request timeout expired"
                        Case{StatusCode::kCancelled, 400, 1},
                        Case{StatusCode::kUnsupported, 501, 12},
                        Case{StatusCode::kInternal, 500, 13},
                        Case{StatusCode::kUnknown, 400, 2},
                        // The gateway's tenants (Triton has none): HTTP's and gRPC's own.
                        Case{StatusCode::kUnauthenticated, 401, 16},
                        Case{StatusCode::kTooManyRequests, 429, 8}}) {
    EXPECT_EQ(HttpStatusFor(c.code), c.http) << StatusCodeName(c.code);
    EXPECT_EQ(GrpcCodeFor(c.code), c.grpc) << StatusCodeName(c.code);
  }
}

TEST(StatusTest, WithContextKeepsCode) {
  Status s = Status::NotFound("no model 'x'").WithContext("request 7");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "request 7: no model 'x'");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: request 7: no model 'x'");
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  auto r = Half(x);
  if (!r.ok()) return r.status();
  *out = *r;
  return Status::Ok();
}

TEST(ResultTest, HoldsValueOrError) {
  int out = 0;
  EXPECT_TRUE(UseHalf(4, &out).ok());
  EXPECT_EQ(out, 2);
  Status s = UseHalf(3, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Half(3).status().message(), "odd");
}

}  // namespace
}  // namespace quiver

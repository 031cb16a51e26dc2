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
  for (auto code : {StatusCode::kInvalidArgument, StatusCode::kNotFound,
                    StatusCode::kAlreadyExists, StatusCode::kUnavailable,
                    StatusCode::kResourceExhausted, StatusCode::kDeadlineExceeded,
                    StatusCode::kCancelled, StatusCode::kUnsupported, StatusCode::kInternal}) {
    EXPECT_EQ(StatusCodeFromGrpc(GrpcCodeFor(code)), code) << StatusCodeName(code);
    EXPECT_GE(HttpStatusFor(code), 400) << StatusCodeName(code);
  }
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kUnavailable), 14);
  EXPECT_EQ(StatusCodeFromHttp(503), StatusCode::kUnavailable);
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

#include "protocol/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace quiver::protocol {
namespace {

TEST(JsonWriterTest, NestsWithCommasInTheRightPlaces) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Member("a", "x");
  w.Key("b");
  w.BeginArray();
  w.Int(1);
  w.BeginObject();
  w.EndObject();
  w.BeginArray();
  w.EndArray();
  w.Uint(2);
  w.EndArray();
  w.Key("c");
  w.BeginObject();
  w.MemberBool("t", true);
  w.Key("n");
  w.Null();
  w.EndObject();
  w.Key("raw");
  w.Raw("[1,2]");
  w.EndObject();
  EXPECT_EQ(out, R"({"a":"x","b":[1,{},[],2],"c":{"t":true,"n":null},"raw":[1,2]})");
}

TEST(JsonWriterTest, EscapesOnlyWhatJsonRequires) {
  std::string out;
  AppendJsonString(out, std::string("q\"b\\s/\n\t\r\b\f\x01\x1f \xc3\xa9", 16));
  EXPECT_EQ(out, "\"q\\\"b\\\\s/\\n\\t\\r\\b\\f\\u0001\\u001f \xc3\xa9\"");
}

TEST(JsonWriterTest, NumbersRoundTrip) {
  std::string out;
  JsonWriter w(out);
  w.BeginArray();
  w.Int(std::numeric_limits<int64_t>::min());
  w.Uint(std::numeric_limits<uint64_t>::max());
  w.Double(1.0);
  w.Double(0.1);
  w.Double(-2.5e-8);
  w.Double(1e21);
  w.Float(0.5f);
  w.Double(std::numeric_limits<double>::infinity());
  w.Double(std::nan(""));
  w.EndArray();
  EXPECT_EQ(out,
            "[-9223372036854775808,18446744073709551615,1.0,0.1,-2.5e-08,1e+21,0.5,Infinity,"
            "NaN]");
}

}  // namespace
}  // namespace quiver::protocol

#pragma once
// JsonWriter: a small append-only JSON writer for the response hot path (no DOM, no
// per-value allocation). It produces compact JSON like Triton's (rapidjson) writer:
// no whitespace, strings escaped only where JSON requires it, UTF-8 passed through.

#include <cstdint>
#include <string>
#include <string_view>

namespace quiver::protocol {

// Writes into a caller-owned std::string. Commas between values are inserted
// automatically; keys and values must alternate inside objects. Not thread-safe.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // An object key; the next call writes its value.
  void Key(std::string_view key);

  void String(std::string_view value);
  void Bool(bool value);
  void Null();
  void Int(int64_t value);
  void Uint(uint64_t value);
  // Shortest representation that reads back as the same double; integral values keep a
  // ".0" (as rapidjson writes them). NaN and infinities are written as the tokens NaN,
  // Infinity and -Infinity, which Python's JSON readers accept.
  void Double(double value);
  // A float widened to double (what Triton does for FP32 outputs).
  void Float(float value) { Double(static_cast<double>(value)); }
  // Appends already-serialised JSON as one value.
  void Raw(std::string_view json);

  // Convenience: Key(k) + String(v) etc.
  void Member(std::string_view key, std::string_view value) {
    Key(key);
    String(value);
  }
  void MemberUint(std::string_view key, uint64_t value) {
    Key(key);
    Uint(value);
  }
  void MemberInt(std::string_view key, int64_t value) {
    Key(key);
    Int(value);
  }
  void MemberBool(std::string_view key, bool value) {
    Key(key);
    Bool(value);
  }

 private:
  void Separator();

  std::string& out_;
  bool need_comma_ = false;  // a value was written at the current nesting level
  bool after_key_ = false;   // the next value belongs to a key just written
};

// Appends `value` to `out` as a quoted, escaped JSON string.
void AppendJsonString(std::string& out, std::string_view value);

}  // namespace quiver::protocol

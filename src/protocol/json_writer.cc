#include "protocol/json_writer.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace quiver::protocol {

void AppendJsonString(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run_start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out.append(esc, sizeof(esc));
      }
    }
  }
  out.append(value.data() + run_start, value.size() - run_start);
  out.push_back('"');
}

void JsonWriter::Separator() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (need_comma_) out_.push_back(',');
}

void JsonWriter::BeginObject() {
  Separator();
  out_.push_back('{');
  need_comma_ = false;
}

void JsonWriter::EndObject() {
  out_.push_back('}');
  need_comma_ = true;
}

void JsonWriter::BeginArray() {
  Separator();
  out_.push_back('[');
  need_comma_ = false;
}

void JsonWriter::EndArray() {
  out_.push_back(']');
  need_comma_ = true;
}

void JsonWriter::Key(std::string_view key) {
  Separator();
  AppendJsonString(out_, key);
  out_.push_back(':');
  after_key_ = true;
  need_comma_ = true;
}

void JsonWriter::String(std::string_view value) {
  Separator();
  AppendJsonString(out_, value);
  need_comma_ = true;
}

void JsonWriter::Bool(bool value) {
  Separator();
  out_.append(value ? "true" : "false");
  need_comma_ = true;
}

void JsonWriter::Null() {
  Separator();
  out_.append("null");
  need_comma_ = true;
}

void JsonWriter::Int(int64_t value) {
  Separator();
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out_.append(buf, static_cast<size_t>(end - buf));
  need_comma_ = true;
}

void JsonWriter::Uint(uint64_t value) {
  Separator();
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out_.append(buf, static_cast<size_t>(end - buf));
  need_comma_ = true;
}

void JsonWriter::Double(double value) {
  Separator();
  need_comma_ = true;
  if (std::isnan(value)) {
    out_.append("NaN");
    return;
  }
  if (std::isinf(value)) {
    out_.append(value < 0 ? "-Infinity" : "Infinity");
    return;
  }
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  const auto len = static_cast<size_t>(end - buf);
  out_.append(buf, len);
  // Keep a visible fraction for integral values ("1.0", not "1") so that readers see a
  // floating-point number, as with Triton.
  if (std::memchr(buf, '.', len) == nullptr && std::memchr(buf, 'e', len) == nullptr) {
    out_.append(".0");
  }
}

void JsonWriter::Raw(std::string_view json) {
  Separator();
  out_.append(json);
  need_comma_ = true;
}

}  // namespace quiver::protocol

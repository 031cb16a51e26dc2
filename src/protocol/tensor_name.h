#pragma once
// TensorName: names the tensor an error is about ("input 'x'", "output 2"), formatted only
// when an error message is built, so that the codecs build no strings for a request or
// response that parses. Internal to src/protocol. Holds views: the name must outlive it.

#include <cstddef>
#include <string>
#include <string_view>

#include "core/strings.h"

namespace quiver::protocol {

class TensorName {
 public:
  // "<kind> '<name>'", e.g. "input 'INPUT0'".
  TensorName(std::string_view kind, std::string_view name) : kind_(kind), name_(name) {}
  // "<kind> <index>", e.g. "output 2" (a tensor whose name is not known yet).
  TensorName(std::string_view kind, size_t index) : kind_(kind), index_(index), by_index_(true) {}

  std::string str() const {
    std::string s(kind_);
    s += ' ';
    s += by_index_ ? std::to_string(index_) : Quoted(name_);
    return s;
  }
  explicit operator std::string() const { return str(); }
  friend std::string operator+(const TensorName& n, std::string_view s) {
    return n.str().append(s);
  }
  friend std::string operator+(std::string_view s, const TensorName& n) {
    return std::string(s) + n.str();
  }

 private:
  std::string_view kind_;
  std::string_view name_;
  size_t index_ = 0;
  bool by_index_ = false;
};

}  // namespace quiver::protocol

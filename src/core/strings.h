#pragma once
// Small string helpers shared by error messages across the codebase.

#include <string>
#include <string_view>

namespace quiver {

// `s` in single quotes, the house style for names in error messages: 'model'.
inline std::string Quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('\'');
  out.append(s);
  out.push_back('\'');
  return out;
}

}  // namespace quiver

#include "gateway/tenants/tenant_config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <string>
#include <string_view>

namespace quiver::gateway {
namespace {

Status Invalid(std::string_view path, std::string_view what) {
  return Status::InvalidArgument(fmt::format("{}: {}", path, what));
}

Result<double> Number(const YAML::Node& v, const std::string& path, bool zero_ok) {
  double out = 0;
  if (!YAML::convert<double>::decode(v, out) || !std::isfinite(out) || out < 0 ||
      (!zero_ok && out == 0)) {
    return Invalid(path, zero_ok ? "expected a number >= 0" : "expected a number > 0");
  }
  return out;
}

Result<size_t> Count(const YAML::Node& v, const std::string& path) {
  long long out = 0;
  if (!YAML::convert<long long>::decode(v, out) || out < 0) {
    return Invalid(path, "expected an integer >= 0");
  }
  return static_cast<size_t>(out);
}

// Tokens travel in an HTTP header after "Bearer ": no spaces or control characters.
Status CheckToken(std::string_view token, const std::string& path) {
  if (token.empty()) return Invalid(path, "empty token");
  for (unsigned char c : token) {
    if (c <= 0x20 || c == 0x7f)
      return Invalid(path, "the token contains a space or control character");
  }
  return Status::Ok();
}

Result<std::string> ReadTokenFile(const YAML::Node& v, const std::string& path,
                                  const std::filesystem::path& base) {
  if (!v.IsScalar() || v.Scalar().empty()) return Invalid(path, "expected a file path");
  std::filesystem::path file(v.Scalar());
  if (file.is_relative()) file = base / file;
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Invalid(path, fmt::format("cannot read a line from '{}'", file.string()));
  }
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  if (first == std::string::npos) {
    return Invalid(path, fmt::format("the first line of '{}' is empty", file.string()));
  }
  return line.substr(first, last - first + 1);
}

Result<TenantOptions> ParseTenant(const YAML::Node& node, const std::string& at,
                                  const std::filesystem::path& base) {
  if (!node.IsMap()) return Invalid(at, "expected a map with name and token");
  TenantOptions t;
  bool has_name = false, has_token = false, has_file = false;
  YAML::Node token_file;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    const std::string path = at + "." + key;
    if (key == "name") {
      if (!v.IsScalar() || v.Scalar().empty()) return Invalid(path, "expected a non-empty string");
      t.name = v.Scalar();
      has_name = true;
    } else if (key == "token") {
      if (!v.IsScalar()) return Invalid(path, "expected a string");
      t.token = v.Scalar();
      has_token = true;
    } else if (key == "token_file") {
      token_file = v;
      has_file = true;
    } else if (key == "weight") {
      auto x = Number(v, path, /*zero_ok=*/false);
      if (!x.ok()) return x.status();
      t.weight = *x;
    } else if (key == "rate" || key == "burst") {
      auto x = Number(v, path, /*zero_ok=*/true);
      if (!x.ok()) return x.status();
      (key == "rate" ? t.rate : t.burst) = *x;
    } else if (key == "max_in_flight") {
      auto n = Count(v, path);
      if (!n.ok()) return n.status();
      t.max_in_flight = *n;
    } else {
      return Invalid(at, fmt::format("unknown key '{}' (expected name, token, token_file, "
                                     "weight, max_in_flight, rate, burst)",
                                     key));
    }
  }
  if (!has_name) return Invalid(at + ".name", "required");
  if (has_token && has_file) return Invalid(at, "give token or token_file, not both");
  if (!has_token && !has_file) return Invalid(at, "token or token_file is required");
  if (has_file) {
    auto token = ReadTokenFile(token_file, at + ".token_file", base);
    if (!token.ok()) return token.status();
    t.token = std::move(*token);
  }
  QUIVER_RETURN_IF_ERROR(CheckToken(t.token, at + (has_token ? ".token" : ".token_file")));
  return t;
}

}  // namespace

Result<std::vector<TenantOptions>> ParseTenants(const YAML::Node& node,
                                                const std::filesystem::path& base) {
  std::vector<TenantOptions> tenants;
  if (!node.IsDefined() || node.IsNull()) return tenants;
  if (!node.IsSequence()) return Invalid("tenants", "expected a list");
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string at = fmt::format("tenants[{}]", i);
    auto t = ParseTenant(node[i], at, base);
    if (!t.ok()) return t.status();
    for (size_t j = 0; j < tenants.size(); ++j) {
      if (tenants[j].name == t->name) {
        return Invalid(at + ".name",
                       fmt::format("duplicate name '{}' (also tenants[{}])", t->name, j));
      }
      if (tenants[j].token == t->token) {  // config time: no need for constant time
        return Invalid(at,
                       fmt::format("the same token as tenants[{}] (each tenant needs its own)", j));
      }
    }
    tenants.push_back(std::move(*t));
  }
  return tenants;
}

}  // namespace quiver::gateway

#include "gateway/config/yaml_fields.h"

#include <algorithm>
#include <cmath>

namespace quiver::gateway::yaml {
namespace {

Status Expected(std::string_view path, std::string_view what) {
  return Status::InvalidArgument(std::string(path) + ": expected " + std::string(what));
}

}  // namespace

std::string Join(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return std::string(parent) + "." + std::string(key);
}

Status CheckMap(const YAML::Node& node, std::string_view path,
                std::initializer_list<std::string_view> allowed) {
  if (!node || node.IsNull()) return Status::Ok();
  if (!node.IsMap()) return Expected(path.empty() ? "(top level)" : path, "a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string known;
      for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
      return Status::InvalidArgument(Join(path, key) + ": unknown key (known: " + known + ")");
    }
  }
  return Status::Ok();
}

Status ReadString(const YAML::Node& node, std::string_view key, std::string_view path,
                  std::string& out) {
  const YAML::Node v = node[std::string(key)];
  if (!v) return Status::Ok();
  if (!v.IsScalar()) return Expected(Join(path, key), "a string");
  out = v.as<std::string>();
  return Status::Ok();
}

Status ReadBool(const YAML::Node& node, std::string_view key, std::string_view path, bool& out) {
  const YAML::Node v = node[std::string(key)];
  if (!v) return Status::Ok();
  bool b = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
    return Expected(Join(path, key), "true or false");
  }
  out = b;
  return Status::Ok();
}

Status ReadNumber(const YAML::Node& node, std::string_view key, std::string_view path, double min,
                  double& out) {
  const YAML::Node v = node[std::string(key)];
  if (!v) return Status::Ok();
  double d = 0;
  if (!v.IsScalar() || !YAML::convert<double>::decode(v, d) || !std::isfinite(d) || d < min) {
    return Expected(Join(path, key), "a number >= " + std::to_string(static_cast<int64_t>(min)));
  }
  out = d;
  return Status::Ok();
}

Status ReadCount(const YAML::Node& node, std::string_view key, std::string_view path, size_t& out) {
  const YAML::Node v = node[std::string(key)];
  if (!v) return Status::Ok();
  int64_t n = -1;
  if (!v.IsScalar() || !YAML::convert<int64_t>::decode(v, n) || n < 0) {
    return Expected(Join(path, key), "a whole number >= 0");
  }
  out = static_cast<size_t>(n);
  return Status::Ok();
}

Status ReadPort(const YAML::Node& node, std::string_view key, std::string_view path, int& out) {
  const YAML::Node v = node[std::string(key)];
  if (!v) return Status::Ok();
  int64_t n = -1;
  if (!v.IsScalar() || !YAML::convert<int64_t>::decode(v, n) || n < 0 || n > 65535) {
    return Expected(Join(path, key), "a port 0..65535 (0 = any free port)");
  }
  out = static_cast<int>(n);
  return Status::Ok();
}

Status ReadStrings(const YAML::Node& node, std::string_view key, std::string_view path,
                   std::vector<std::string>& out) {
  const YAML::Node v = node[std::string(key)];
  if (!v) return Status::Ok();
  if (!v.IsSequence()) return Expected(Join(path, key), "a list of strings");
  out.clear();
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].IsScalar()) {
      return Expected(Join(path, key) + "[" + std::to_string(i) + "]", "a string");
    }
    out.push_back(v[i].as<std::string>());
  }
  return Status::Ok();
}

}  // namespace quiver::gateway::yaml

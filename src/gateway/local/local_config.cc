#include "gateway/local/local_config.h"

#include <set>

namespace quiver::gateway {
namespace {

Status Bad(const std::string& path, const std::string& what) {
  return Status::InvalidArgument(path + ": " + what);
}

Status OnlyKeys(const YAML::Node& map, const std::string& path,
                std::initializer_list<std::string_view> keys) {
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      return Bad(path + "." + key, "unknown key");
  }
  return Status::Ok();
}

Result<std::string> String(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return Bad(path, "expected a string");
  return n.Scalar();
}

Result<std::vector<std::string>> Strings(const YAML::Node& n, const std::string& path) {
  if (n.IsNull()) return std::vector<std::string>{};
  if (!n.IsSequence()) return Bad(path, "expected a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar()) return Bad(path + "[" + std::to_string(i) + "]", "expected a string");
    out.push_back(n[i].Scalar());
  }
  return out;
}

// Names become log file names: keep them plain.
bool PlainName(const std::string& s) {
  if (s.empty() || s[0] == '.') return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

}  // namespace

Result<std::vector<ServerSpec>> ParseLocalServers(const YAML::Node& servers,
                                                  const std::filesystem::path& base) {
  std::vector<ServerSpec> out;
  if (!servers.IsDefined() || servers.IsNull()) return out;
  if (!servers.IsSequence()) return Bad("servers", "expected a list");
  std::set<std::string> names;
  for (size_t i = 0; i < servers.size(); ++i) {
    const std::string path = "servers[" + std::to_string(i) + "]";
    const YAML::Node s = servers[i];
    if (!s.IsMap()) return Bad(path, "expected a map (name, model_repository, models, args)");
    QUIVER_RETURN_IF_ERROR(OnlyKeys(s, path, {"name", "model_repository", "models", "args"}));
    ServerSpec spec;
    spec.name = std::to_string(i + 1);
    spec.name.insert(0, 1, 's');  // not "s" + ...: GCC 12's false -Wrestrict
    if (s["name"]) {
      auto name = String(s["name"], path + ".name");
      if (!name.ok()) return name.status();
      if (!PlainName(*name)) return Bad(path + ".name", "use letters, digits, '-', '_', '.'");
      spec.name = *name;
    }
    if (!names.insert(spec.name).second)
      return Bad(path + ".name", "'" + spec.name + "' is used twice");
    if (!s["model_repository"]) return Bad(path + ".model_repository", "missing");
    auto repo = String(s["model_repository"], path + ".model_repository");
    if (!repo.ok()) return repo.status();
    spec.model_repository = (base / *repo).lexically_normal();
    std::error_code ec;
    if (!std::filesystem::is_directory(spec.model_repository, ec))
      return Bad(path + ".model_repository", "no directory " + spec.model_repository.string());
    if (s["models"]) {
      auto models = Strings(s["models"], path + ".models");
      if (!models.ok()) return models.status();
      spec.models = *models;
      for (size_t m = 0; m < spec.models.size(); ++m) {
        if (!std::filesystem::is_directory(spec.model_repository / spec.models[m], ec))
          return Bad(path + ".models[" + std::to_string(m) + "]",
                     "no model '" + spec.models[m] + "' in " + spec.model_repository.string());
      }
    }
    if (s["args"]) {
      auto args = Strings(s["args"], path + ".args");
      if (!args.ok()) return args.status();
      spec.args = *args;
    }
    out.push_back(std::move(spec));
  }
  return out;
}

Result<PrometheusConfig> ParsePrometheus(const YAML::Node& prometheus) {
  PrometheusConfig out;
  if (!prometheus.IsDefined() || prometheus.IsNull()) return out;
  if (!prometheus.IsMap()) return Bad("prometheus", "expected a map (enabled, port)");
  QUIVER_RETURN_IF_ERROR(OnlyKeys(prometheus, "prometheus", {"enabled", "port"}));
  if (const YAML::Node e = prometheus["enabled"]) {
    if (!e.IsScalar() || !YAML::convert<bool>::decode(e, out.enabled))
      return Bad("prometheus.enabled", "expected true or false");
  }
  if (const YAML::Node p = prometheus["port"]) {
    if (!p.IsScalar() || !YAML::convert<int>::decode(p, out.port) || out.port < 0 ||
        out.port > 65535)
      return Bad("prometheus.port", "expected a port number 0..65535 (0 = ephemeral)");
  }
  return out;
}

}  // namespace quiver::gateway

#pragma once
// `quiver admin`: the gateway's admin API from the command line (gateway/admin_api.h).
//   quiver admin -g http://127.0.0.1:8000 upstreams          list upstreams and health
//   quiver admin -g ... add grpc://10.0.0.7:8001             add an upstream
//   quiver admin -g ... remove grpc://10.0.0.7:8001          drain and remove it
//   quiver admin -g ... models                               per-model load
//   quiver admin -g ... rollout emj_gnn                      move a model to its new version
// The token comes from --token or QUIVER_TOKEN. Prints the gateway's JSON answer; exit 1 on
// an error answer or when the gateway cannot be reached.

#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::cli {

struct AdminOptions {
  std::string gateway = "http://127.0.0.1:8000";
  std::string token;
  std::vector<std::string> words;  // the action and its argument
};

CLI::App* AddAdminCommand(CLI::App& app, AdminOptions& options);
int RunAdmin(const AdminOptions& options);

}  // namespace quiver::cli

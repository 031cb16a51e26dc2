// `quiver analyze` as a process: exit codes, the printed counts and the JSON file, on
// synthetic files this test writes; and columnar vs event loop over gRPC to a `quiver serve`
// child, which must agree exactly (TorchScript stand-ins from src/analysis/testdata, or the
// trained models of the repository QUIVER_EMJ_MODELS names).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "physics/emj_test_file.h"
#include "server_process.h"
#include "testing/temp_repository.h"

extern char** environ;

namespace quiver {
namespace {

// Runs build/quiver with `args`; returns its exit code (stdout and stderr to `log`).
int RunQuiver(std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), QUIVER_BINARY);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class AnalyzeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    physics::testing::EmjAttributes sig;
    sig.sample = "emj_ctau25";
    sig.process = "signal";
    ASSERT_TRUE(physics::testing::WriteEmjFile(
        Path("sig.h5"), physics::testing::MakeSyntheticSample(500, 3, true, 2), sig));
    physics::testing::EmjAttributes qcd;
    qcd.sample = "qcd";
    ASSERT_TRUE(physics::testing::WriteEmjFile(
        Path("qcd.h5"), physics::testing::MakeSyntheticSample(400, 4, false, 1), qcd));
  }
  std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }
  testing::TempRepository dir_{"analyze-cli"};
};

TEST_F(AnalyzeCliTest, NoMlRunWritesTheContractJson) {
  const int rc = RunQuiver({"analyze", "-i", Path("sig.h5"), "-i", Path("qcd.h5"), "--no-ml",
                            "--chunk-size", "128", "-o", Path("out.json")},
                           Path("log"));
  const std::string log = ReadAll(Path("log"));
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("900 events processed, 0 failed (of 900)"), std::string::npos) << log;
  const auto j = nlohmann::json::parse(ReadAll(Path("out.json")));
  EXPECT_EQ(j["samples"]["emj_ctau25"]["cutflow"][0], 500);
  EXPECT_EQ(j["samples"]["qcd"]["cutflow"][0], 400);
  EXPECT_GT(j["samples"]["emj_ctau25"]["cutflow"][3].get<int>(), 0);
  EXPECT_EQ(j["timing"]["inference_calls"], 0);
}

TEST_F(AnalyzeCliTest, BadChunkAndMissingFileAreCountedAndFailTheRun) {
  const auto all = physics::testing::MakeSyntheticSample(300, 5, false);
  physics::testing::WriteOptions broken;
  broken.jet_offset_index = 120;
  broken.jet_offset_value = all.n_jets() + 7;
  ASSERT_TRUE(physics::testing::WriteEmjFile(Path("bad.h5"), all, {}, broken));
  const int rc = RunQuiver({"analyze", "-i", Path("bad.h5"), "-i", Path("nope.h5"), "--no-ml",
                            "--chunk-size", "100", "-o", Path("out.json")},
                           Path("log"));
  const std::string log = ReadAll(Path("log"));
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("bad.h5 events [100, 200)"), std::string::npos) << log;
  EXPECT_NE(log.find("nope.h5"), std::string::npos) << log;
  EXPECT_NE(log.find("200 events processed, 100 failed (of 300)"), std::string::npos) << log;
  const auto j = nlohmann::json::parse(ReadAll(Path("out.json")));
  EXPECT_EQ(j["timing"]["events_failed"], 100);
  EXPECT_EQ(j["timing"]["failures"].size(), 2u);
}

TEST_F(AnalyzeCliTest, MissingModelIsNamedBeforeAnyWork) {
  testing::TempRepository empty("analyze-cli-models");
  const int rc = RunQuiver(
      {"analyze", "-i", Path("sig.h5"), "-u", "local://" + empty.path().string()}, Path("log"));
  const std::string log = ReadAll(Path("log"));
  EXPECT_EQ(rc, 1);
  EXPECT_NE(log.find("model 'emj_gnn'"), std::string::npos) << log;
  EXPECT_EQ(log.find("events processed"), std::string::npos) << log;
}

TEST_F(AnalyzeCliTest, BadFlagsExitTwo) {
  EXPECT_EQ(RunQuiver({"analyze", "-i", Path("sig.h5"), "--mode", "sideways"}, Path("log")), 2);
}

TEST_F(AnalyzeCliTest, ColumnarAndEventLoopAgreeOverGrpc) {
  // The trained models when QUIVER_EMJ_MODELS names their repository, else the stand-ins.
  const char* models = std::getenv("QUIVER_EMJ_MODELS");
  testing::ServerProcess::Options options;
  options.repository = models != nullptr && *models != '\0'
                           ? std::string(models)
                           : std::string(QUIVER_SOURCE_DIR) + "/src/analysis/testdata/models";
  testing::ServerProcess server(options);
  ASSERT_TRUE(server.ok());
  nlohmann::json samples[2];
  const char* modes[2] = {"columnar", "eventloop"};
  for (int m = 0; m < 2; ++m) {
    const std::string out = Path(std::string(modes[m]) + ".json");
    const int rc =
        RunQuiver({"analyze", "-i", Path("sig.h5"), "-i", Path("qcd.h5"), "--url",
                   server.Url("grpc"), "--mode", modes[m], "--chunk-size", "150", "-o", out},
                  Path("log"));
    ASSERT_EQ(rc, 0) << ReadAll(Path("log"));
    samples[m] = nlohmann::json::parse(ReadAll(out))["samples"];
  }
  EXPECT_GT(samples[0]["emj_ctau25"]["cutflow"][2].get<int>(), 0);
  EXPECT_EQ(samples[0], samples[1]);
}

}  // namespace
}  // namespace quiver

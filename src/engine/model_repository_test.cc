#include "engine/model_repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/temp_repository.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// A fresh directory under the system temp dir, removed when the test ends.
struct TempDir : quiver::testing::TempRepository {
  TempDir() : TempRepository("model-repository") {}
};

std::vector<std::string> Names(const RepositoryScan& scan) {
  std::vector<std::string> names;
  for (const ModelDirectory& model : scan.models) names.push_back(model.name);
  return names;
}

std::vector<int64_t> Keys(const std::map<int64_t, std::string>& versions) {
  std::vector<int64_t> keys;
  for (const auto& entry : versions) keys.push_back(entry.first);
  return keys;
}

TEST(ModelRepositoryTest, ScanFindsModelsAndNumericVersions) {
  TempDir root;
  root.Write("resnet/config.pbtxt", "platform: \"pytorch_libtorch\"");
  root.Write("resnet/1/model.pt", "v1");
  root.Write("resnet/2/model.pt", "v2");
  root.Write("resnet/10/model.pt", "v10");
  root.MakeDir("resnet/v3");         // not a number
  root.MakeDir("resnet/0");          // not positive
  root.MakeDir("resnet/01");         // not canonical
  root.MakeDir("resnet/.5");         // hidden
  root.Write("resnet/4", "a file");  // not a directory
  root.MakeDir("bert/1");
  root.MakeDir(".git/objects");
  root.Write("README.md", "not a model");

  ModelRepository repository({root.path()});
  EXPECT_THAT(repository.roots(), ElementsAre(root.path()));
  auto scan = repository.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_THAT(Names(*scan), ElementsAre("bert", "resnet"));
  EXPECT_THAT(scan->errors, IsEmpty());
  const ModelDirectory& resnet = scan->models[1];
  EXPECT_EQ(resnet.path, root.path() / "resnet");
  EXPECT_THAT(Keys(resnet.versions), ElementsAre(1, 2, 10));
  EXPECT_NE(resnet.versions.at(1), resnet.versions.at(2));
  EXPECT_FALSE(resnet.config_fingerprint.empty());
  const ModelDirectory& bert = scan->models[0];
  EXPECT_THAT(Keys(bert.versions), ElementsAre(1));
  EXPECT_EQ(bert.config_fingerprint, "");
}

TEST(ModelRepositoryTest, FindReturnsOneModelAndRejectsUnknownOrUnsafeNames) {
  TempDir root;
  root.Write("resnet/1/model.pt", "v1");
  root.Write("secret/1/data", "x");
  ModelRepository repository({root.path() / "resnet" / ".."});

  auto found = repository.Find("resnet");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->name, "resnet");
  EXPECT_THAT(Keys(found->versions), ElementsAre(1));

  auto missing = repository.Find("bert");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(),
              AllOf(HasSubstr("'bert'"), HasSubstr(root.path().string())));
  for (std::string_view bad : {"", ".", "..", "../secret", "resnet/1", "/tmp"}) {
    EXPECT_EQ(repository.Find(bad).status().code(), StatusCode::kNotFound) << bad;
  }
}

TEST(ModelRepositoryTest, SameModelInTwoRootsIsAnErrorNamingBothPaths) {
  TempDir a;
  TempDir b;
  a.MakeDir("resnet/1");
  b.MakeDir("resnet/1");
  b.MakeDir("bert/1");
  ModelRepository repository({a.path(), b.path()});

  auto scan = repository.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_THAT(Names(*scan), ElementsAre("bert"));
  ASSERT_THAT(scan->errors, SizeIs(1));
  const Status& duplicate = scan->errors.at("resnet");
  EXPECT_EQ(duplicate.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(duplicate.message(), AllOf(HasSubstr((a.path() / "resnet").string()),
                                         HasSubstr((b.path() / "resnet").string())));
  EXPECT_EQ(repository.Find("resnet").status(), duplicate);
  EXPECT_TRUE(repository.Find("bert").ok());
}

TEST(ModelRepositoryTest, MissingRootIsAnErrorNamingIt) {
  TempDir root;
  const fs::path absent = root.path() / "absent";
  ModelRepository repository({root.path(), absent});
  auto scan = repository.Scan();
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(scan.status().message(), HasSubstr(absent.string()));
  EXPECT_THAT(repository.Find("x").status().message(), HasSubstr(absent.string()));

  root.Write("file_root", "x");
  auto file_root = ModelRepository({root.path() / "file_root"}).Scan();
  EXPECT_THAT(file_root.status().message(), HasSubstr("file_root"));
}

TEST(ModelRepositoryTest, FingerprintsChangeWithFilesAndConfig) {
  TempDir root;
  root.Write("m/config.pbtxt", "max_batch_size: 8");
  root.Write("m/1/model.pt", "weights");
  root.Write("m/2/model.pt", "weights");
  ModelRepository repository({root.path()});
  auto before = repository.Find("m");
  ASSERT_TRUE(before.ok()) << before.status().ToString();

  auto same = repository.Find("m");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->versions, before->versions);
  EXPECT_EQ(same->config_fingerprint, before->config_fingerprint);

  root.Write("m/1/model.pt", "new weights");  // different size
  auto rewritten = repository.Find("m");
  ASSERT_TRUE(rewritten.ok());
  EXPECT_NE(rewritten->versions.at(1), before->versions.at(1));
  EXPECT_EQ(rewritten->versions.at(2), before->versions.at(2));
  EXPECT_EQ(rewritten->config_fingerprint, before->config_fingerprint);

  const fs::path model_2 = root.path() / "m/2/model.pt";
  fs::last_write_time(model_2, fs::last_write_time(model_2) - std::chrono::hours(1));
  auto touched = repository.Find("m");
  ASSERT_TRUE(touched.ok());
  EXPECT_NE(touched->versions.at(2), rewritten->versions.at(2));

  root.Write("m/2/assets/vocab.txt", "a b c");  // nested file added
  auto nested = repository.Find("m");
  ASSERT_TRUE(nested.ok());
  EXPECT_NE(nested->versions.at(2), touched->versions.at(2));

  root.Write("m/config.pbtxt", "max_batch_size: 9");  // same size, new contents
  auto reconfigured = repository.Scan();
  ASSERT_TRUE(reconfigured.ok());
  ASSERT_THAT(reconfigured->models, SizeIs(1));
  EXPECT_NE(reconfigured->models[0].config_fingerprint, before->config_fingerprint);
  EXPECT_EQ(reconfigured->models[0].versions, nested->versions);
}

TEST(ModelRepositoryTest, SelectVersionsAppliesEachPolicy) {
  const std::map<int64_t, std::string> available = {{1, "a"}, {2, "b"}, {3, "c"}, {5, "e"}};
  auto select = [&](std::string_view text) {
    inference::ModelVersionPolicy policy;
    if (text == "latest 2") policy.mutable_latest()->set_num_versions(2);
    if (text == "latest 0") policy.mutable_latest()->set_num_versions(0);
    if (text == "latest 9") policy.mutable_latest()->set_num_versions(9);
    if (text == "all") policy.mutable_all();
    if (text == "specific") {
      for (int64_t v : {5, 1, 4, 1, 7}) policy.mutable_specific()->add_versions(v);
    }
    return SelectVersions(policy, available);
  };
  EXPECT_THAT(select("default").load, ElementsAre(5));
  EXPECT_THAT(select("latest 0").load, ElementsAre(5));
  EXPECT_THAT(select("latest 2").load, ElementsAre(3, 5));
  EXPECT_THAT(select("latest 9").load, ElementsAre(1, 2, 3, 5));
  EXPECT_THAT(select("all").load, ElementsAre(1, 2, 3, 5));
  EXPECT_THAT(select("all").missing, IsEmpty());
  const VersionSelection specific = select("specific");
  EXPECT_THAT(specific.load, ElementsAre(1, 5));
  EXPECT_THAT(specific.missing, ElementsAre(4, 7));

  inference::ModelVersionPolicy latest;
  latest.mutable_latest()->set_num_versions(1);
  EXPECT_THAT(SelectVersions(latest, {}).load, IsEmpty());
}

}  // namespace
}  // namespace quiver::engine

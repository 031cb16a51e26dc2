#include "gateway/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <thread>

#include "gateway/router_test_fixture.h"

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using testing::InferAndWait;
using namespace std::chrono_literals;

TEST_F(RouterTest, SendsEachModelOnlyWhereItIsReady) {
  AddServer("a", {"m1", "m2"});
  AddServer("b", {"m2"});
  AddServer("c", {"m3"});
  MakeRouter();
  for (const char* url : {"a", "b", "c"}) ASSERT_TRUE(router_->AddUpstream(url).ok());

  for (int i = 0; i < 40; ++i) ASSERT_TRUE(InferAndWait(*router_, Request("m2")).ok());
  EXPECT_GT(fake("a").calls(), 0);  // P2C on an idle pool: both get some
  EXPECT_GT(fake("b").calls(), 0);
  EXPECT_EQ(fake("c").calls(), 0);
  EXPECT_EQ(fake("a").calls() + fake("b").calls(), 40);

  const int64_t a_before = fake("a").calls();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(InferAndWait(*router_, Request("m1")).ok());
  EXPECT_EQ(fake("a").calls(), a_before + 5);
  ASSERT_TRUE(InferAndWait(*router_, Request("m3")).ok());
  EXPECT_EQ(fake("c").calls(), 1);

  auto missing = InferAndWait(*router_, Request("nowhere"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("'nowhere'"));
}

TEST_F(RouterTest, UnavailableUpstreamCostsNoRequestAndIsEjected) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kUnavailable);  // a server that went down

  for (int i = 0; i < 30; ++i) {
    auto r = InferAndWait(*router_, Request("m"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_EQ(fake("b").answered(), 30);
  EXPECT_GT(router_->retries(), 0u);
  // Ejected after consecutive failures (default 5): it got no more than that.
  EXPECT_LE(fake("a").calls(), 5);
  auto upstreams = router_->Upstreams();
  ASSERT_EQ(upstreams.size(), 2u);
  EXPECT_EQ(upstreams[0].url, "a");
  EXPECT_EQ(upstreams[0].health, "ejected");
  EXPECT_EQ(upstreams[1].health, "available");

  // Back up: after the ejection time a probe re-admits it.
  fake("a").set_mode(FakeInferenceService::Mode::kAnswer);
  clock_->Advance(6s);
  router_->PollOnce();
  EXPECT_EQ(router_->Upstreams()[0].health, "available");
}

// An upstream whose index still answers but whose inferences fail is ejected all the same:
// answered polls do not clear request failures.
TEST_F(RouterTest, AnsweredPollsDoNotHideFailingRequests) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kUnavailable);  // Index is still answered
  for (int i = 0; i < 200 && router_->Upstreams()[0].health == "available"; ++i) {
    ASSERT_TRUE(InferAndWait(*router_, Request("m")).ok());
    router_->PollOnce();
  }
  EXPECT_EQ(router_->Upstreams()[0].health, "ejected");
  EXPECT_EQ(fake("a").calls(), 5);  // consecutive_failures
}

// A budget configured to allow no retries at all: the request gets the error at once
// instead of waiting forever for a slot that no running retry will free.
TEST_F(RouterTest, ABudgetOfZeroFailsInsteadOfQueueingForever) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  RouterOptions options;
  options.retry_budget.min_retry_concurrency = 0;
  options.retry_budget.budget_fraction = 0;
  MakeRouter(options);
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kUnavailable);
  fake("b").set_mode(FakeInferenceService::Mode::kUnavailable);
  auto r = InferAndWait(*router_, Request("m"));  // would hang before the fix
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(router_->retries(), 0u);
}

// Names no upstream has share one bucket: a client cannot grow the per-model series.
TEST_F(RouterTest, UnknownModelNamesDoNotBecomeSeries) {
  AddServer("a", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(InferAndWait(*router_, Request("typo" + std::to_string(i))).ok());
  }
  ASSERT_TRUE(InferAndWait(*router_, Request("m")).ok());
  std::vector<std::string> models;
  for (const auto& l : router_->Load()) models.push_back(l.model);
  EXPECT_THAT(models, ::testing::ElementsAre("m"));
}

TEST_F(RouterTest, TheUpstreamsVerdictOnARequestIsNotRetried) {
  AddServer("a", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kInvalid);
  auto r = InferAndWait(*router_, Request("m"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fake("a").calls(), 1);
  EXPECT_EQ(router_->retries(), 0u);
}

TEST_F(RouterTest, WhenEveryUpstreamFailsTheClientGetsTheLastError) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kUnavailable);
  fake("b").set_mode(FakeInferenceService::Mode::kUnavailable);
  auto r = InferAndWait(*router_, Request("m"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fake("a").calls() + fake("b").calls(), 2);  // each tried once
}

// Retries beyond the budget wait for a slot: none fails, and no more than the budget's
// retries are in flight at once.
TEST_F(RouterTest, RetriesBeyondTheBudgetWaitInsteadOfFailing) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  RouterOptions options;
  options.retry_budget.min_retry_concurrency = 1;
  options.retry_budget.budget_fraction = 0;
  options.outlier.consecutive_failures = 0;  // keep a in the pool for this test
  MakeRouter(options);
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kHold);
  fake("b").set_mode(FakeInferenceService::Mode::kHold);

  testing::CallbackCounter results;
  constexpr int kRequests = 8;
  for (int i = 0; i < kRequests; ++i) {
    router_->Infer(Request("m", std::to_string(i)),
                   [&](Result<InferResponse> r) { results.Add(std::move(r)); });
  }
  const size_t on_a = fake("a").held();
  const size_t on_b = fake("b").held();
  ASSERT_EQ(on_a + on_b, static_cast<size_t>(kRequests));
  ASSERT_GT(on_a, 1u) << "the test needs several requests on a";
  while (fake("a").ReleaseOne(Status::Unavailable("connection reset"))) {
  }
  // One retry at a time reaches b; the others wait for its slot.
  EXPECT_EQ(fake("b").held(), on_b + 1);
  size_t answered = 0;
  while (answered < static_cast<size_t>(kRequests)) {
    ASSERT_TRUE(fake("b").ReleaseOne()) << "answered " << answered;
    ++answered;
    EXPECT_LE(fake("b").peak_held(), on_b + 1);
  }
  results.Wait(kRequests);
  for (const auto& r : results.results()) EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(router_->retries(), on_a);
}

TEST_F(RouterTest, AModelInARepositoryIsLoadedOnFirstRequest) {
  AddServer("a", {"m"}, {"lazy"});
  AddServer("b", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  EXPECT_FALSE(router_->ModelReady("lazy", ""));

  auto r = InferAndWait(*router_, Request("lazy"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(router_->ModelReady("lazy", ""));
  EXPECT_TRUE(servers_.at("a").engine->ModelReady("lazy", ""));
  EXPECT_EQ(fake("a").calls(), 1);
}

TEST_F(RouterTest, AutoscaledModelsWaitForAReplicaBounded) {
  AddServer("a", {"m"});
  AddServer("later", {"scaled"});
  RouterOptions options;
  options.wait_for_models = {"scaled"};
  options.load_wait = 10s;
  MakeRouter(options);
  ASSERT_TRUE(router_->AddUpstream("a").ok());

  std::promise<Result<InferResponse>> first;
  router_->Infer(Request("scaled"),
                 [&](Result<InferResponse> r) { first.set_value(std::move(r)); });
  auto load = router_->Load();
  auto it = std::find_if(load.begin(), load.end(),
                         [](const ModelLoad& l) { return l.model == "scaled"; });
  ASSERT_NE(it, load.end());
  EXPECT_EQ(it->waiting, 1u);
  EXPECT_EQ(it->ready_replicas, 0u);
  ASSERT_TRUE(router_->AddUpstream("later").ok());  // the autoscaler's new replica
  auto answered = first.get_future().get();
  EXPECT_TRUE(answered.ok()) << answered.status().ToString();

  ASSERT_TRUE(router_->RemoveUpstream("later").ok());
  std::promise<Result<InferResponse>> second;
  router_->Infer(Request("scaled"),
                 [&](Result<InferResponse> r) { second.set_value(std::move(r)); });
  clock_->Advance(11s);
  router_->PollOnce();
  auto late = second.get_future().get();
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(late.status().message(), HasSubstr("'scaled'"));
}

TEST_F(RouterTest, RemovingAnUpstreamLetsItsRequestsFinish) {
  AddServer("a", {"m"});
  AddServer("b", {"m"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  fake("a").set_mode(FakeInferenceService::Mode::kHold);
  testing::CallbackCounter results;
  for (int i = 0; i < 6; ++i) {
    router_->Infer(Request("m"), [&](Result<InferResponse> r) { results.Add(std::move(r)); });
  }
  const size_t held = fake("a").held();
  ASSERT_GT(held, 0u);
  auto removed = std::async(std::launch::async, [&] { return router_->RemoveUpstream("a"); });
  fake("a").WaitForHeld(held);
  for (size_t i = 0; i < held; ++i) {
    while (!fake("a").ReleaseOne()) {
    }
  }
  ASSERT_TRUE(removed.get().ok());
  results.Wait(6);
  for (const auto& r : results.results()) EXPECT_TRUE(r.ok()) << r.status().ToString();
  const int64_t a_calls = fake("a").calls();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(InferAndWait(*router_, Request("m")).ok());
  EXPECT_EQ(fake("a").calls(), a_calls);
  EXPECT_EQ(router_->RemoveUpstream("a").code(), StatusCode::kNotFound);
  EXPECT_EQ(router_->Upstreams().size(), 1u);
}

TEST_F(RouterTest, MetadataIndexAndStatisticsSpanTheUpstreams) {
  AddServer("a", {"m1", "m2"});
  AddServer("b", {"m2"}, {"m3"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  EXPECT_TRUE(router_->Ready());

  auto meta = router_->GetModelMetadata("m2", "");
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->name, "m2");
  EXPECT_THAT(meta->versions, ::testing::ElementsAre("1"));
  // Asking for the config of a model only in a repository loads it, as a request would.
  EXPECT_FALSE(router_->ModelReady("m3", ""));
  auto config = router_->GetModelConfig("m3", "");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(router_->ModelReady("m3", ""));
  EXPECT_EQ(router_->GetModelConfig("absent", "").status().code(), StatusCode::kNotFound);

  auto index = router_->Index();
  ASSERT_TRUE(index.ok());
  std::map<std::string, std::string> state;
  for (const auto& e : *index) state[e.name] = e.state;
  EXPECT_EQ(state["m1"], "READY");
  EXPECT_EQ(state["m2"], "READY");
  EXPECT_EQ(state["m3"], "READY");

  for (int i = 0; i < 10; ++i) ASSERT_TRUE(InferAndWait(*router_, Request("m2")).ok());
  auto stats = router_->GetStatistics("m2", "");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].success.count, 10u);  // summed over a and b

  ASSERT_TRUE(router_->Load("m3").ok());
  EXPECT_TRUE(router_->ModelReady("m3", "1"));
  ASSERT_TRUE(router_->Unload("m2").ok());
  EXPECT_FALSE(router_->ModelReady("m2", ""));
  EXPECT_EQ(router_->Load("absent").code(), StatusCode::kNotFound);
}

// Version 2 appears in both repositories; the rollout moves one upstream at a time while
// requests keep flowing: none fails, a request naming a version reaches only upstreams
// that have it, and at the end only version 2 is served.
TEST_F(RouterTest, RolloutMovesUpstreamsOneAtATimeWithoutFailures) {
  AddServer("a", {"v"});
  AddServer("b", {"v"});
  MakeRouter();
  ASSERT_TRUE(router_->AddUpstream("a").ok());
  ASSERT_TRUE(router_->AddUpstream("b").ok());
  for (const char* url : {"a", "b"}) servers_.at(url).engine.repo().AddVersion("v", 2);

  InferRequest v1 = Request("v");
  v1.version = "1";
  ASSERT_TRUE(InferAndWait(*router_, v1).ok());
  std::atomic<bool> done{false};
  std::atomic<int> sent{0};
  std::vector<std::string> failures;
  std::thread load([&] {
    while (!done) {
      auto r = InferAndWait(*router_, Request("v"));
      ++sent;
      if (!r.ok()) failures.push_back(r.status().ToString());
    }
  });
  while (sent.load() == 0) std::this_thread::yield();
  auto report = router_->Rollout("v");
  const int during = sent.load();
  done = true;
  load.join();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->size(), 2u);
  EXPECT_THAT((*report)[0], HasSubstr("a: version(s) 2 ready"));
  EXPECT_THAT((*report)[1], HasSubstr("b: version(s) 2 ready"));
  EXPECT_THAT(failures, ::testing::IsEmpty());
  EXPECT_GT(during, 0);

  EXPECT_EQ(router_->GetModelMetadata("v", "")->versions, std::vector<std::string>{"2"});
  EXPECT_EQ(InferAndWait(*router_, v1).status().code(), StatusCode::kNotFound);
  InferRequest v2 = Request("v");
  v2.version = "2";
  auto answered = InferAndWait(*router_, v2);
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->version, "2");
  EXPECT_EQ(router_->Rollout("absent").status().code(), StatusCode::kNotFound);
}

TEST_F(RouterTest, BadUpstreamUrlsAreRefused) {
  MakeRouter();
  EXPECT_EQ(router_->AddUpstream("nope").code(), StatusCode::kInvalidArgument);
  RouterOptions options;
  options.balancer = "round_robin_please";
  EXPECT_EQ(Router::Create(options, clock_, nullptr).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::gateway

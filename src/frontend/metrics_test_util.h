#pragma once
// Shared pieces of the metrics tests: an Engine over a temporary repository holding one
// identity model "m" (version 1, no batching), and a checker of the Prometheus text
// exposition format.

#include <gtest/gtest.h>

#include <charconv>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "testing/engine_fixture.h"
#include "testing/infer_helpers.h"

namespace quiver::frontend::testing {

class MetricsEngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ =
        quiver::testing::TestEngineBuilder("metrics")
            .WithModel("m", "identity",
                       "max_batch_size: 0\n" +
                       quiver::testing::IoConfig("TYPE_FP32"))
            .Build();
    ASSERT_TRUE(engine_);
    ASSERT_TRUE(engine_->ModelReady("m", "1"));
  }

  void TearDown() override { engine_.reset(); }

  // One blocking inference on "m"; true when it succeeded.
  bool InferOnce() {
    InferRequest r;
    r.model = "m";
    r.inputs = {MakeTensor<float>("INPUT0", DataType::kFp32, {3},
                                  std::vector<float>{1.f, 2.f, 3.f})};
    auto res = quiver::testing::InferAndWait(*engine_, std::move(r));
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok();
  }

  quiver::testing::TestEngine engine_;
};

// One parsed sample line.
struct Sample {
  std::string name;    // as written, e.g. "x_bucket"
  std::string family;  // e.g. "x" for the samples x_bucket, x_sum, x_count of histogram x
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

// Checks the exposition (format 0.0.4) and returns its samples: every line ends with '\n';
// each family has exactly one "# HELP" followed by exactly one "# TYPE" (counter, gauge or
// histogram), before any of its samples, and its samples are contiguous; names and label
// names are valid; label values are properly escaped; values parse. A histogram's samples
// are <name>_bucket (with an `le` label), <name>_sum and <name>_count; per label set the
// buckets' `le` ascend and end with "+Inf", their counts never decrease, and _count equals
// the +Inf bucket. Failures are gtest failures.
inline std::vector<Sample> ParseExposition(const std::string& text) {
  std::vector<Sample> out;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "exposition must end with a newline";
  auto valid_name = [](std::string_view n, bool metric) {
    if (n.empty()) return false;
    for (size_t i = 0; i < n.size(); ++i) {
      const char c = n[i];
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                         (metric && c == ':');
      if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
  };
  std::set<std::string> helped, typed, finished, histograms;
  std::string current;  // family whose header came last
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol - pos);
    pos = eol == std::string::npos ? text.size() : eol + 1;
    if (line.starts_with("# HELP ")) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      EXPECT_TRUE(valid_name(name, true)) << line;
      EXPECT_TRUE(helped.insert(name).second) << "second HELP for " << name;
      EXPECT_FALSE(typed.count(name)) << "HELP after TYPE for " << name;
      if (!current.empty()) finished.insert(current);
      current = name;
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      const std::string rest = line.substr(7);
      const size_t sp = rest.find(' ');
      const std::string name = rest.substr(0, sp);
      const std::string type = sp == std::string::npos ? "" : rest.substr(sp + 1);
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      if (type == "histogram") histograms.insert(name);
      EXPECT_EQ(name, current) << "TYPE not right after its HELP: " << line;
      EXPECT_TRUE(typed.insert(name).second) << "second TYPE for " << name;
      continue;
    }
    EXPECT_FALSE(line.empty()) << "empty line";
    EXPECT_NE(line[0], '#') << "unexpected comment: " << line;
    if (line.empty() || line[0] == '#') continue;

    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    s.family = s.name;
    if (histograms.count(current)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (s.name == current + suffix) s.family = current;
      }
    }
    EXPECT_TRUE(valid_name(s.name, true)) << line;
    EXPECT_EQ(s.family, current) << "sample outside its family block: " << line;
    EXPECT_TRUE(helped.count(s.family) && typed.count(s.family)) << "no HELP/TYPE: " << line;
    EXPECT_FALSE(finished.count(s.family)) << "family not contiguous: " << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        const std::string key = line.substr(i, eq - i);
        EXPECT_TRUE(valid_name(key, false)) << "label name '" << key << "' in " << line;
        i = eq + 1;
        EXPECT_TRUE(i < line.size() && line[i] == '"') << line;
        ++i;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            EXPECT_LT(i, line.size()) << line;
            if (i >= line.size()) break;
            const char e = line[i++];
            EXPECT_TRUE(e == '\\' || e == '"' || e == 'n') << "bad escape in " << line;
            value += e == 'n' ? '\n' : e;
          } else {
            value += c;
          }
        }
        EXPECT_TRUE(closed) << "unterminated label value: " << line;
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      EXPECT_TRUE(i < line.size() && line[i] == '}') << line;
      ++i;
    }
    EXPECT_TRUE(i < line.size() && line[i] == ' ') << line;
    const std::string value = i < line.size() ? line.substr(i + 1) : "";
    if (value == "NaN" || value == "+Inf" || value == "-Inf") {
      constexpr double inf = std::numeric_limits<double>::infinity();
      s.value = value == "NaN" ? std::numeric_limits<double>::quiet_NaN()
                               : (value == "-Inf" ? -inf : inf);
    } else {
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), s.value);
      EXPECT_TRUE(ec == std::errc() && ptr == value.data() + value.size())
          << "bad value '" << value << "' in " << line;
    }
    if (histograms.count(s.family)) {
      EXPECT_EQ(s.name.ends_with("_bucket"), s.labels.count("le") == 1)
          << "le belongs to _bucket samples only: " << line;
    }
    out.push_back(std::move(s));
  }

  // Histogram invariants, per family and label set (without le), in order of appearance.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    std::optional<double> sum, count;
  };
  std::map<std::pair<std::string, std::map<std::string, std::string>>, Series> series;
  for (const Sample& s : out) {
    if (!histograms.count(s.family)) continue;
    auto labels = s.labels;
    const auto le = labels.find("le");
    std::string le_text;
    if (le != labels.end()) {
      le_text = le->second;
      labels.erase(le);
    }
    Series& x = series[{s.family, labels}];
    if (s.name == s.family + "_bucket") {
      double bound = std::numeric_limits<double>::infinity();
      if (le_text != "+Inf") {
        auto [ptr, ec] = std::from_chars(le_text.data(), le_text.data() + le_text.size(), bound);
        EXPECT_TRUE(ec == std::errc() && ptr == le_text.data() + le_text.size())
            << s.name << ": bad le \"" << le_text << "\"";
      }
      EXPECT_FALSE(x.sum || x.count) << s.name << ": bucket after _sum/_count";
      if (!x.buckets.empty()) {
        EXPECT_LT(x.buckets.back().first, bound) << s.name << ": le not ascending";
        EXPECT_LE(x.buckets.back().second, s.value) << s.name << ": buckets not cumulative";
      }
      x.buckets.emplace_back(bound, s.value);
    } else if (s.name == s.family + "_sum") {
      x.sum = s.value;
    } else {
      x.count = s.value;
    }
  }
  for (const auto& [key, x] : series) {
    const std::string& family = key.first;
    EXPECT_FALSE(x.buckets.empty()) << family << ": no buckets";
    if (x.buckets.empty()) continue;
    EXPECT_EQ(x.buckets.back().first, std::numeric_limits<double>::infinity())
        << family << ": last bucket is not le=\"+Inf\"";
    EXPECT_TRUE(x.sum.has_value()) << family << ": no _sum";
    EXPECT_TRUE(x.count.has_value()) << family << ": no _count";
    if (x.count) {
      EXPECT_EQ(*x.count, x.buckets.back().second) << family << ": _count != +Inf bucket";
    }
  }
  return out;
}

// Lines of `text`, for exact-line assertions.
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t eol = text.find('\n', pos);
    lines.push_back(text.substr(pos, eol - pos));
    pos = eol == std::string::npos ? text.size() : eol + 1;
  }
  return lines;
}

}  // namespace quiver::frontend::testing

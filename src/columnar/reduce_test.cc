#include "columnar/reduce.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "columnar/stack.h"

namespace quiver::columnar {
namespace {

using ::testing::HasSubstr;

TEST(ReduceListsTest, MatchesNaiveReferenceOnRandomLists) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const int n = std::uniform_int_distribution<int>(0, 30)(rng);
    const int64_t k = std::uniform_int_distribution<int>(0, 3)(rng);  // 0: rank-1 values
    std::vector<int64_t> offsets{std::uniform_int_distribution<int64_t>(0, 3)(rng)};
    std::bernoulli_distribution empty(0.25);
    for (int i = 0; i < n; ++i) {
      offsets.push_back(offsets.back() +
                        (empty(rng) ? 0 : std::uniform_int_distribution<int>(1, 6)(rng)));
    }
    const int64_t rows = offsets.back() + std::uniform_int_distribution<int>(0, 2)(rng);
    const int64_t width = k == 0 ? 1 : k;
    std::vector<float> values(size_t(rows * width));
    for (float& v : values) v = std::uniform_real_distribution<float>(-5, 5)(rng);
    Shape shape = k == 0 ? Shape{rows} : Shape{rows, k};
    Tensor t = MakeTensor<float>("score", DataType::kFp32, shape, values);
    const auto op = static_cast<Reduction>(std::uniform_int_distribution<int>(0, 4)(rng));
    auto r = ReduceLists(t, offsets, op, -7.f);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Shape want_shape = shape;
    want_shape[0] = n;
    ASSERT_EQ(r->shape, want_shape);
    const float* got = r->data_as<float>();
    for (int i = 0; i < n; ++i) {
      for (int64_t c = 0; c < width; ++c) {
        float want = -7.f;
        const int64_t b = offsets[i], e = offsets[i + 1];
        if (e > b) {
          want = values[size_t(b * width + c)];
          for (int64_t p = b + 1; p < e; ++p) {
            const float x = values[size_t(p * width + c)];
            switch (op) {
              case Reduction::kSum:
              case Reduction::kMean:
                want += x;
                break;
              case Reduction::kMax:
                want = std::max(want, x);
                break;
              case Reduction::kMin:
                want = std::min(want, x);
                break;
              case Reduction::kFirst:
                break;
            }
          }
          if (op == Reduction::kMean) want /= float(e - b);
        }
        ASSERT_EQ(got[i * width + c], want) << "list " << i << " column " << c;
      }
    }
  }
}

TEST(ReduceListsTest, MaxSkipsNaN) {
  std::vector<float> v{NAN, 2.f, NAN};
  std::vector<int64_t> offsets{0, 2, 3};
  auto r =
      ReduceLists(MakeTensor<float>("s", DataType::kFp32, {3}, v), offsets, Reduction::kMax, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data_as<float>()[0], 2.f);
  EXPECT_TRUE(std::isnan(r->data_as<float>()[1]));
}

TEST(ReduceListsTest, RejectsTooFewRowsAndBadOffsets) {
  std::vector<float> v(4);
  Tensor t = MakeTensor<float>("score", DataType::kFp32, {4}, v);
  std::vector<int64_t> long_offsets{0, 2, 5};
  auto r = ReduceLists(t, long_offsets, Reduction::kSum, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("4 rows but the offsets end at 5"));
  std::vector<int64_t> bad{0, 3, 1};
  r = ReduceLists(t, bad, Reduction::kSum, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("offsets[2] = 1 is less than offsets[1] = 3"));
  std::vector<int64_t> none;
  r = ReduceLists(t, none, Reduction::kSum, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape, (Shape{0}));
}

TEST(StackColumnsTest, InterleavesFieldsRowMajor) {
  std::vector<float> pt{1, 2, 3}, eta{4, 5, 6};
  std::vector<FieldView> fields{{"pt", pt}, {"eta", eta}};
  auto t = StackColumns(fields, "jets");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->name, "jets");
  EXPECT_EQ(t->shape, (Shape{3, 2}));
  const float* d = t->data_as<float>();
  EXPECT_EQ(std::vector<float>(d, d + 6), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(StackColumnsTest, ZeroRowsAndErrors) {
  std::vector<float> none, three(3), two(2);
  std::vector<FieldView> empty_rows{{"pt", none}, {"eta", none}};
  auto t = StackColumns(empty_rows);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->shape, (Shape{0, 2}));

  std::vector<FieldView> mismatched{{"pt", three}, {"eta", two}};
  t = StackColumns(mismatched);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("field 'eta' has 2 elements but field 'pt' has 3"));
  EXPECT_FALSE(StackColumns({}).ok());
}

}  // namespace
}  // namespace quiver::columnar

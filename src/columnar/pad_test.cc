#include "columnar/pad.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace quiver::columnar {
namespace {

using ::testing::HasSubstr;

// A random jagged collection that owns its arrays, plus the view over them.
struct Collection {
  std::vector<int64_t> offsets;
  std::vector<std::vector<float>> fields;
  std::vector<float> key;
  std::vector<std::string> names;

  JaggedView View() const {
    JaggedView v{"jets", offsets, {}};
    for (size_t f = 0; f < fields.size(); ++f) v.fields.push_back({names[f], fields[f]});
    return v;
  }
};

Collection RandomCollection(std::mt19937& rng) {
  Collection c;
  const int n = std::uniform_int_distribution<int>(0, 40)(rng);
  const int num_fields = std::uniform_int_distribution<int>(0, 4)(rng);
  const int max_list = std::uniform_int_distribution<int>(0, 20)(rng);
  const int64_t start = std::uniform_int_distribution<int>(0, 3)(rng);  // sliced arrays
  std::uniform_int_distribution<int> len(0, max_list);
  std::bernoulli_distribution empty(0.2);
  c.offsets.push_back(start);
  for (int i = 0; i < n; ++i) c.offsets.push_back(c.offsets.back() + (empty(rng) ? 0 : len(rng)));
  const size_t content = static_cast<size_t>(c.offsets.back()) +
                         std::uniform_int_distribution<size_t>(0, 2)(rng);  // slack at the end
  std::uniform_real_distribution<float> value(-10.f, 10.f);
  for (int f = 0; f < num_fields; ++f) {
    std::string name = "f";
    name += std::to_string(f);
    c.names.push_back(name);
    c.fields.emplace_back(content);
    for (float& x : c.fields.back()) x = value(rng);
  }
  // Keys with many ties and a few NaNs.
  std::uniform_int_distribution<int> small(0, 5);
  std::bernoulli_distribution nan(0.05);
  c.key.resize(content);
  std::bernoulli_distribution negative(0.5);
  for (float& k : c.key) {
    k = nan(rng) ? std::numeric_limits<float>::quiet_NaN() : float(small(rng));
    if (negative(rng)) k = -k;  // -0 ties with +0; -NaN sorts last like NaN
  }
  return c;
}

// Naive reference: positions kept by list [b, e), in slot order.
std::vector<int64_t> ReferenceSlots(int64_t b, int64_t e, int64_t max_len, const float* key) {
  std::vector<int64_t> idx;
  for (int64_t p = b; p < e; ++p) idx.push_back(p);
  if (key != nullptr) {
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t x, int64_t y) {
      const bool nx = std::isnan(key[x]), ny = std::isnan(key[y]);
      if (nx || ny) return !nx && ny;
      return key[x] > key[y];
    });
  }
  if (static_cast<int64_t>(idx.size()) > max_len) idx.resize(static_cast<size_t>(max_len));
  return idx;
}

uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

double MaskValue(const Tensor& mask, size_t i) {
  switch (mask.datatype) {
    case DataType::kBool:
    case DataType::kUint8:
      return mask.data_as<uint8_t>()[i];
    case DataType::kInt8:
      return mask.data_as<int8_t>()[i];
    case DataType::kInt32:
      return mask.data_as<int32_t>()[i];
    case DataType::kInt64:
      return static_cast<double>(mask.data_as<int64_t>()[i]);
    case DataType::kFp32:
      return mask.data_as<float>()[i];
    case DataType::kFp64:
      return mask.data_as<double>()[i];
    default:
      ADD_FAILURE() << "unexpected mask type";
      return -1;
  }
}

TEST(PadJaggedTest, MatchesNaiveReferenceOnRandomCollections) {
  std::mt19937 rng(20240601);
  const DataType mask_types[] = {DataType::kBool,  DataType::kUint8, DataType::kInt8,
                                 DataType::kInt32, DataType::kInt64, DataType::kFp32,
                                 DataType::kFp64};
  for (int iter = 0; iter < 3000; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    Collection c = RandomCollection(rng);
    PadOptions o;
    o.max_len = std::uniform_int_distribution<int>(0, 25)(rng);  // 0: the longest
    o.pad_value =
        std::bernoulli_distribution(0.1)(rng) ? std::numeric_limits<float>::quiet_NaN() : -1.5f;
    const bool by_key = std::bernoulli_distribution(0.5)(rng);
    if (by_key) {
      o.truncation = Truncation::kTopByKey;
      o.sort_key = {"pt", c.key};
    }
    o.layout = std::bernoulli_distribution(0.5)(rng) ? PadLayout::kFeaturesObjects
                                                     : PadLayout::kObjectsFeatures;
    o.mask_type = mask_types[std::uniform_int_distribution<int>(0, 6)(rng)];
    auto padded = PadJagged(c.View(), o);
    ASSERT_TRUE(padded.ok()) << padded.status().ToString();

    const int64_t n = static_cast<int64_t>(c.offsets.size()) - 1;
    const int64_t nf = static_cast<int64_t>(c.fields.size());
    int64_t longest = 0;
    for (int64_t i = 0; i < n; ++i) longest = std::max(longest, c.offsets[i + 1] - c.offsets[i]);
    const int64_t max_len = o.max_len > 0 ? o.max_len : longest;
    ASSERT_EQ(padded->max_len, max_len);
    const Shape expected_shape =
        o.layout == PadLayout::kFeaturesObjects ? Shape{n, nf, max_len} : Shape{n, max_len, nf};
    ASSERT_EQ(padded->values.shape, expected_shape);
    ASSERT_EQ(padded->values.datatype, DataType::kFp32);
    ASSERT_EQ(padded->values.data.size(), size_t(n * nf * max_len) * sizeof(float));
    ASSERT_EQ(padded->mask.shape, (Shape{n, max_len}));
    ASSERT_EQ(padded->mask.datatype, o.mask_type);
    ASSERT_EQ(padded->mask.data.size(), size_t(n * max_len) * DataTypeSize(o.mask_type));

    const float* values = padded->values.data_as<float>();
    for (int64_t i = 0; i < n; ++i) {
      auto slots =
          ReferenceSlots(c.offsets[i], c.offsets[i + 1], max_len, by_key ? c.key.data() : nullptr);
      for (int64_t j = 0; j < max_len; ++j) {
        const bool real = j < static_cast<int64_t>(slots.size());
        ASSERT_EQ(MaskValue(padded->mask, size_t(i * max_len + j)), real ? 1.0 : 0.0);
        for (int64_t f = 0; f < nf; ++f) {
          const int64_t at = o.layout == PadLayout::kFeaturesObjects ? (i * nf + f) * max_len + j
                                                                     : (i * max_len + j) * nf + f;
          const float want = real ? c.fields[f][size_t(slots[size_t(j)])] : o.pad_value;
          ASSERT_EQ(Bits(values[at]), Bits(want))
              << "list " << i << " slot " << j << " field " << f;
        }
      }
    }

    // The inverse puts every kept slot back at its content position, `fill` elsewhere.
    if (nf > 0 && o.layout == PadLayout::kObjectsFeatures) {
      auto back = UnpadToContent(padded->values, c.View(), o, 99.f);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      ASSERT_EQ(back->shape, (Shape{c.offsets.back(), nf}));
      std::vector<bool> kept(size_t(c.offsets.back()), false);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t p : ReferenceSlots(c.offsets[i], c.offsets[i + 1], max_len,
                                        by_key ? c.key.data() : nullptr)) {
          kept[size_t(p)] = true;
        }
      }
      const float* b = back->data_as<float>();
      for (int64_t p = 0; p < c.offsets.back(); ++p) {
        for (int64_t f = 0; f < nf; ++f) {
          const float want = kept[size_t(p)] ? c.fields[f][size_t(p)] : 99.f;
          ASSERT_EQ(Bits(b[p * nf + f]), Bits(want)) << "position " << p << " field " << f;
        }
      }
    }
  }
}

TEST(PadJaggedTest, ZeroListsGiveZeroRows) {
  std::vector<int64_t> offsets{0};
  std::vector<float> pt;
  auto padded = PadJagged({"jets", offsets, {{"pt", pt}}}, PadOptions{.max_len = 8});
  ASSERT_TRUE(padded.ok());
  EXPECT_EQ(padded->values.shape, (Shape{0, 8, 1}));
  EXPECT_EQ(padded->mask.shape, (Shape{0, 8}));
  EXPECT_EQ(padded->values.data.size(), 0u);

  auto empty_offsets = PadJagged({"jets", {}, {{"pt", pt}}}, PadOptions{});
  ASSERT_TRUE(empty_offsets.ok());
  EXPECT_EQ(empty_offsets->values.shape, (Shape{0, 0, 1}));
}

TEST(PadJaggedTest, AllEmptyListsWithAutomaticLengthGiveZeroSlots) {
  std::vector<int64_t> offsets{0, 0, 0};
  std::vector<float> pt;
  auto padded = PadJagged({"jets", offsets, {{"pt", pt}}}, PadOptions{});
  ASSERT_TRUE(padded.ok());
  EXPECT_EQ(padded->values.shape, (Shape{2, 0, 1}));
}

TEST(PadJaggedTest, SortsByKeyDescendingWithStableTies) {
  // Keys 1, 3, 3, NaN, 2, -inf, -0, +0, -1e-30 -> order by key, ties (3, 3 and -0, +0) in
  // storage order, NaN last.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<int64_t> offsets{0, 9};
  std::vector<float> pt{1,    3,   3,      std::numeric_limits<float>::quiet_NaN(), 2, -inf,
                        -0.f, 0.f, -1e-30f};
  std::vector<float> id{0, 1, 2, 3, 4, 5, 6, 7, 8};
  PadOptions o{.max_len = 9, .truncation = Truncation::kTopByKey, .sort_key = {"pt", pt}};
  auto padded = PadJagged({"jets", offsets, {{"id", id}}}, o);
  ASSERT_TRUE(padded.ok());
  const float* v = padded->values.data_as<float>();
  EXPECT_EQ(std::vector<float>(v, v + 9), (std::vector<float>{1, 2, 4, 0, 6, 7, 8, 5, 3}));
  o.max_len = 3;
  padded = PadJagged({"jets", offsets, {{"id", id}}}, o);
  ASSERT_TRUE(padded.ok());
  v = padded->values.data_as<float>();
  EXPECT_EQ(std::vector<float>(v, v + 3), (std::vector<float>{1, 2, 4}));
}

TEST(PadJaggedTest, RejectsInvalidOffsetsNamingIndexAndField) {
  std::vector<float> pt(10);
  std::vector<int64_t> decreasing{0, 4, 3, 6};
  auto r = PadJagged({"jets", decreasing, {{"pt", pt}}}, PadOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("'jets': offsets[2] = 3 is less than offsets[1] = 4"));

  std::vector<int64_t> negative{-1, 2};
  r = PadJagged({"jets", negative, {{"pt", pt}}}, PadOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("offsets[0] = -1 is negative"));

  std::vector<int64_t> too_long{0, 4, 11};
  r = PadJagged({"jets", too_long, {{"pt", pt}}}, PadOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("field 'pt': content has 10 elements but the offsets end at 11"));

  std::vector<int64_t> ok{0, 4, 10};
  std::vector<float> short_key(9);
  r = PadJagged({"jets", ok, {{"pt", pt}}},
                PadOptions{.truncation = Truncation::kTopByKey, .sort_key = {"key", short_key}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("field 'key'"));

  r = PadJagged({"jets", ok, {{"pt", pt}}}, PadOptions{.truncation = Truncation::kTopByKey});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("sort_key"));

  r = PadJagged({"jets", ok, {{"pt", pt}}}, PadOptions{.max_len = -2});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("max_len -2 is negative"));

  r = PadJagged({"jets", ok, {{"pt", pt}}}, PadOptions{.mask_type = DataType::kBytes});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("mask data type BYTES"));
}

TEST(PadJaggedTest, PadsIntoCallerMemory) {
  std::vector<int64_t> offsets{0, 3, 3, 4};
  std::vector<float> pt{1, 2, 3, 4}, eta{5, 6, 7, 8};
  JaggedView jets{"jets", offsets, {{"pt", pt}, {"eta", eta}}};
  PadOptions o{.max_len = 2, .pad_value = -1.f, .mask_type = DataType::kFp32};
  auto want = PadJagged(jets, o);
  ASSERT_TRUE(want.ok());
  std::vector<float> values(3 * 2 * 2, 42.f);
  std::vector<std::byte> mask(3 * 2 * sizeof(float));
  ASSERT_TRUE(PadJaggedInto(jets, o, values, mask).ok());
  EXPECT_EQ(std::memcmp(values.data(), want->values.data.data(), want->values.data.size()), 0);
  EXPECT_EQ(std::memcmp(mask.data(), want->mask.data.data(), want->mask.data.size()), 0);
  EXPECT_TRUE(PadJaggedInto(jets, o, values, {}).ok());  // no mask
  auto l = PaddedLength(jets, PadOptions{});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, 3);

  std::vector<float> small(11);
  Status s = PadJaggedInto(jets, o, small, mask);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("destination holds 11 values"));
}

TEST(PadJaggedTest, UnpadRejectsWrongShape) {
  std::vector<int64_t> offsets{0, 2, 3};
  Tensor wrong{"out", DataType::kFp32, {2, 3}, Buffer::Allocate(6 * sizeof(float))};
  auto r = UnpadToContent(wrong, {"jets", offsets, {}}, PadOptions{}, 0.f);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("expected [2,2,...]"));
}

}  // namespace
}  // namespace quiver::columnar

#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstring>

namespace quiver {
namespace {

TEST(DataTypeTest, NamesRoundTrip) {
  for (int i = 1; i <= static_cast<int>(DataType::kBytes); ++i) {
    auto t = static_cast<DataType>(i);
    EXPECT_EQ(DataTypeFromName(DataTypeName(t)), t);
    EXPECT_EQ(DataTypeFromConfigName(DataTypeConfigName(t)), t);
  }
  EXPECT_EQ(DataTypeFromName("fp32"), DataType::kInvalid);
  EXPECT_EQ(DataTypeConfigName(DataType::kBytes), "TYPE_STRING");
  EXPECT_EQ(DataTypeSize(DataType::kFp64), 8u);
  EXPECT_EQ(DataTypeSize(DataType::kBf16), 2u);
  EXPECT_EQ(DataTypeSize(DataType::kBytes), 0u);
}

TEST(TensorTest, ElementCount) {
  EXPECT_EQ(ElementCount(Shape{2, 3, 4}), 24);
  EXPECT_EQ(ElementCount(Shape{}), 1);
  EXPECT_EQ(ElementCount(Shape{2, 0}), 0);
  EXPECT_EQ(ElementCount(Shape{2, -1}), -1);
  EXPECT_EQ(ElementCount(Shape{1LL << 40, 1LL << 40}), -1);
}

TEST(BufferTest, BorrowKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3});
  Buffer b = Buffer::Borrow(owner->data(), 12, owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  Buffer s = b.Slice(4, 8);
  b = Buffer();
  float v;
  std::memcpy(&v, s.data(), 4);
  EXPECT_EQ(v, 2.0f);
  s = Buffer();
  EXPECT_TRUE(weak.expired());
}

TEST(BytesTest, OffsetsAndTruncation) {
  std::vector<std::string> words = {"ab", "", "xyz"};
  Buffer b = MakeBytesBuffer(words);
  EXPECT_EQ(b.size(), 4u * 3 + 5);
  auto offs = BytesElementOffsets(b.bytes());
  ASSERT_TRUE(offs.ok());
  EXPECT_EQ(*offs, (std::vector<size_t>{0, 6, 10, 17}));
  auto bad = BytesElementOffsets(b.bytes().first(15));
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("declares 3 bytes"), std::string::npos);
}

}  // namespace
}  // namespace quiver

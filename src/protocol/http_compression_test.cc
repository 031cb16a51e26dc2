#include "protocol/http_compression.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace quiver::protocol {
namespace {

std::span<const std::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string Text(const Buffer& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Known-good streams produced by Python: gzip.compress(b"hello hello hello", mtime=0) and
// zlib.compress(b"hello hello hello").
const unsigned char kGzipHello[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03,
                                    0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x90, 0x00,
                                    0x80, 0x88, 0xf9, 0xe5, 0x11, 0x00, 0x00, 0x00};
const unsigned char kZlibHello[] = {0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
                                    0xc8, 0x40, 0x90, 0x00, 0x3a, 0x2e, 0x06, 0x7d};

TEST(HttpCompressionTest, DecompressesWhatPythonWrites) {
  auto gz = Decompress(ContentEncoding::kGzip,
                       {reinterpret_cast<const std::byte*>(kGzipHello), sizeof(kGzipHello)},
                       1 << 20, 64);
  ASSERT_TRUE(gz.ok()) << gz.status().ToString();
  EXPECT_EQ(Text(*gz), "hello hello hello");
  auto z = Decompress(ContentEncoding::kDeflate,
                      {reinterpret_cast<const std::byte*>(kZlibHello), sizeof(kZlibHello)},
                      1 << 20, 0);
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_EQ(Text(*z), "hello hello hello");
}

TEST(HttpCompressionTest, RoundTripsPiecewiseInput) {
  std::mt19937 rng(7);
  std::string random(300000, '\0');
  for (char& c : random) c = static_cast<char>(rng() % 7);  // compressible but not trivial
  const std::string json = R"({"outputs":[]})";
  for (ContentEncoding e : {ContentEncoding::kGzip, ContentEncoding::kDeflate}) {
    std::vector<std::span<const std::byte>> pieces = {AsBytes(json), AsBytes(random),
                                                      AsBytes(""), AsBytes("tail")};
    auto packed = Compress(e, pieces);
    ASSERT_TRUE(packed.ok()) << packed.status().ToString();
    EXPECT_LT(packed->size(), random.size());
    auto unpacked = Decompress(e, AsBytes(*packed), 1 << 20, 64);
    ASSERT_TRUE(unpacked.ok()) << unpacked.status().ToString();
    EXPECT_EQ(Text(*unpacked), json + random + "tail");
    // Padding is readable and zero.
    EXPECT_EQ(unpacked->data()[unpacked->size() + 63], std::byte{0});
    auto empty = Compress(e, {});
    ASSERT_TRUE(empty.ok());
    auto back = Decompress(e, AsBytes(*empty), 16, 0);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(back->empty());
  }
}

TEST(HttpCompressionTest, RejectsCorruptionAndBombs) {
  std::string gz(reinterpret_cast<const char*>(kGzipHello), sizeof(kGzipHello));
  std::string bad_crc = gz;
  bad_crc[sizeof(kGzipHello) - 6] ^= 1;
  EXPECT_EQ(Decompress(ContentEncoding::kGzip, AsBytes(bad_crc), 1024, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(Decompress(ContentEncoding::kGzip, AsBytes(gz.substr(0, 15)), 1024, 0).ok());
  EXPECT_FALSE(Decompress(ContentEncoding::kGzip, AsBytes("not gzip at all, no"), 1024, 0).ok());
  EXPECT_FALSE(Decompress(ContentEncoding::kDeflate, AsBytes("xx"), 1024, 0).ok());
  std::string garbage = gz;
  garbage[12] = static_cast<char>(0xff);
  EXPECT_FALSE(Decompress(ContentEncoding::kGzip, AsBytes(garbage), 1024, 0).ok());
  // 1 MiB of zeros compresses to ~1 KiB; a 64 KiB limit stops it.
  std::string zeros(1 << 20, '\0');
  std::vector<std::span<const std::byte>> pieces = {AsBytes(zeros)};
  auto bomb = Compress(ContentEncoding::kGzip, pieces);
  ASSERT_TRUE(bomb.ok());
  EXPECT_EQ(Decompress(ContentEncoding::kGzip, AsBytes(*bomb), 64 << 10, 0).status().code(),
            StatusCode::kResourceExhausted);
}

TEST(HttpCompressionTest, NegotiatesLikeTriton) {
  EXPECT_EQ(NegotiateResponseEncoding("gzip"), ContentEncoding::kGzip);
  EXPECT_EQ(NegotiateResponseEncoding("deflate"), ContentEncoding::kDeflate);
  EXPECT_EQ(NegotiateResponseEncoding("br, gzip;q=0.5, deflate;q=0.8"), ContentEncoding::kDeflate);
  EXPECT_EQ(NegotiateResponseEncoding("gzip;q=0"), ContentEncoding::kIdentity);
  EXPECT_EQ(NegotiateResponseEncoding("br"), ContentEncoding::kIdentity);
  EXPECT_EQ(NegotiateResponseEncoding(""), ContentEncoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding(" GZIP "), ContentEncoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("identity"), ContentEncoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding("br"), ContentEncoding::kUnknown);
}

}  // namespace
}  // namespace quiver::protocol

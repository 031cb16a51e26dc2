#include "protocol/http_compression.h"

#include <boost/beast/zlib/deflate_stream.hpp>
#include <boost/beast/zlib/inflate_stream.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>

namespace quiver::protocol {
namespace {

namespace zlib = boost::beast::zlib;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// CRC-32 (IEEE 802.3, reflected), as gzip's trailer needs.
uint32_t Crc32(uint32_t crc, const std::byte* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ static_cast<uint8_t>(p[i])) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// Adler-32, as the zlib format's trailer needs.
uint32_t Adler32(uint32_t adler, const std::byte* p, size_t n) {
  uint32_t a = adler & 0xffff;
  uint32_t b = adler >> 16;
  while (n > 0) {
    const size_t block = std::min<size_t>(n, 5552);  // no overflow before the modulo
    for (size_t i = 0; i < block; ++i) {
      a += static_cast<uint8_t>(p[i]);
      b += a;
    }
    a %= 65521;
    b %= 65521;
    p += block;
    n -= block;
  }
  return (b << 16) | a;
}

uint32_t LoadLe32(const std::byte* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint32_t LoadBe32(const std::byte* p) {
  return static_cast<uint32_t>(p[3]) | static_cast<uint32_t>(p[2]) << 8 |
         static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[0]) << 24;
}

Status Corrupt(std::string_view what) {
  return Status::InvalidArgument("unable to decompress the request body: " + std::string(what));
}

// Length of the gzip member header at the start of `in`, or an error.
Result<size_t> GzipHeader(std::span<const std::byte> in) {
  if (in.size() < 18 || in[0] != std::byte{0x1f} || in[1] != std::byte{0x8b}) {
    return Corrupt("not gzip data");
  }
  if (in[2] != std::byte{8}) return Corrupt("unknown gzip compression method");
  const auto flags = static_cast<uint8_t>(in[3]);
  size_t pos = 10;
  if (flags & 0x04) {  // FEXTRA
    if (in.size() < pos + 2) return Corrupt("truncated gzip header");
    const size_t xlen = static_cast<size_t>(in[pos]) | static_cast<size_t>(in[pos + 1]) << 8;
    pos += 2 + xlen;
  }
  for (uint8_t bit : {uint8_t{0x08}, uint8_t{0x10}}) {  // FNAME, FCOMMENT: zero-terminated
    if (!(flags & bit)) continue;
    while (pos < in.size() && in[pos] != std::byte{0}) ++pos;
    ++pos;
  }
  if (flags & 0x02) pos += 2;  // FHCRC
  if (pos + 8 > in.size()) return Corrupt("truncated gzip header");
  return pos;
}

}  // namespace

ContentEncoding ParseContentEncoding(std::string_view header) {
  const std::string e = Lower(Trim(header));
  if (e.empty() || e == "identity") return ContentEncoding::kIdentity;
  if (e == "gzip" || e == "x-gzip") return ContentEncoding::kGzip;
  if (e == "deflate") return ContentEncoding::kDeflate;
  return ContentEncoding::kUnknown;
}

ContentEncoding NegotiateResponseEncoding(std::string_view accept) {
  ContentEncoding best = ContentEncoding::kIdentity;
  double best_weight = 0;
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    std::string_view item = Trim(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    double weight = 1;
    const size_t semi = item.find(';');
    if (semi != std::string_view::npos) {
      std::string_view param = Trim(item.substr(semi + 1));
      item = Trim(item.substr(0, semi));
      if (param.substr(0, 2) == "q=") {
        param.remove_prefix(2);
        auto [p, ec] = std::from_chars(param.data(), param.data() + param.size(), weight);
        if (ec != std::errc()) continue;
      }
    }
    const std::string name = Lower(item);
    ContentEncoding e = ContentEncoding::kUnknown;
    if (name == "identity") e = ContentEncoding::kIdentity;
    if (name == "gzip") e = ContentEncoding::kGzip;
    if (name == "deflate") e = ContentEncoding::kDeflate;
    if (e != ContentEncoding::kUnknown && weight > best_weight) {
      best = e;
      best_weight = weight;
    }
  }
  return best;
}

std::string_view ContentEncodingName(ContentEncoding encoding) {
  switch (encoding) {
    case ContentEncoding::kGzip: return "gzip";
    case ContentEncoding::kDeflate: return "deflate";
    case ContentEncoding::kIdentity: return "identity";
    case ContentEncoding::kUnknown: break;
  }
  return "unknown";
}

Result<Buffer> Decompress(ContentEncoding encoding, std::span<const std::byte> in,
                          size_t max_size, size_t padding) {
  size_t start = 0;
  size_t trailer = 0;
  if (encoding == ContentEncoding::kGzip) {
    auto header = GzipHeader(in);
    if (!header.ok()) return header.status();
    start = *header;
    trailer = 8;
  } else if (encoding == ContentEncoding::kDeflate) {
    if (in.size() < 6) return Corrupt("truncated zlib data");
    const auto cmf = static_cast<uint8_t>(in[0]);
    const auto flg = static_cast<uint8_t>(in[1]);
    if ((cmf & 0x0f) != 8 || ((cmf << 8) | flg) % 31 != 0) return Corrupt("not zlib data");
    if (flg & 0x20) return Corrupt("zlib preset dictionaries are not supported");
    start = 2;
    trailer = 4;
  } else {
    return Status::InvalidArgument("Decompress: not a compressed encoding");
  }
  if (in.size() < start + trailer) return Corrupt("truncated data");

  // Grow the output geometrically from a guess; never beyond max_size.
  size_t capacity = std::min(max_size, std::max<size_t>(4096, in.size() * 4));
  std::vector<std::byte> out(capacity);
  zlib::inflate_stream inflater;
  zlib::z_params zs;
  zs.next_in = in.data() + start;
  zs.avail_in = in.size() - start;
  size_t produced = 0;
  for (;;) {
    zs.next_out = out.data() + produced;
    zs.avail_out = out.size() - produced;
    boost::beast::error_code ec;
    inflater.write(zs, zlib::Flush::none, ec);
    produced = out.size() - zs.avail_out;
    if (ec == zlib::error::end_of_stream) break;
    if (ec && ec != zlib::error::need_buffers) return Corrupt(ec.message());
    if (zs.avail_out == 0) {
      if (out.size() >= max_size) {
        return Status::ResourceExhausted("the decompressed request body exceeds the server's "
                                         "limit of " + std::to_string(max_size) + " bytes");
      }
      out.resize(std::min(max_size, out.size() * 2));
      continue;
    }
    if (zs.avail_in == 0) return Corrupt("the compressed data is truncated");
  }
  // The checksum trailer ends the (single-member) stream. The inflater may have pulled
  // trailer bytes into its bit buffer, so read the trailer from the end of the input.
  const std::byte* tail = in.data() + in.size() - trailer;
  if (encoding == ContentEncoding::kGzip) {
    if (LoadLe32(tail) != Crc32(0, out.data(), produced) ||
        LoadLe32(tail + 4) != static_cast<uint32_t>(produced)) {
      return Corrupt("gzip checksum mismatch");
    }
  } else if (LoadBe32(tail) != Adler32(1, out.data(), produced)) {
    return Corrupt("zlib checksum mismatch");
  }

  Buffer result = Buffer::Allocate(produced + padding);
  if (produced > 0) std::memcpy(result.mutable_data(), out.data(), produced);
  if (padding > 0) std::memset(result.mutable_data() + produced, 0, padding);
  return result.Slice(0, produced);
}

Result<std::string> Compress(ContentEncoding encoding,
                             std::span<const std::span<const std::byte>> pieces) {
  if (encoding != ContentEncoding::kGzip && encoding != ContentEncoding::kDeflate) {
    return Status::InvalidArgument("Compress: not a compressed encoding");
  }
  size_t total = 0;
  uint32_t check = encoding == ContentEncoding::kGzip ? 0 : 1;
  for (auto piece : pieces) {
    total += piece.size();
    check = encoding == ContentEncoding::kGzip ? Crc32(check, piece.data(), piece.size())
                                               : Adler32(check, piece.data(), piece.size());
  }
  zlib::deflate_stream deflater;
  deflater.reset(6, 15, 8, zlib::Strategy::normal);
  const size_t header = encoding == ContentEncoding::kGzip ? 10 : 2;
  std::string out(header + deflater.upper_bound(total) + 8, '\0');
  if (encoding == ContentEncoding::kGzip) {
    const unsigned char h[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    std::memcpy(out.data(), h, sizeof(h));
  } else {
    out[0] = static_cast<char>(0x78);
    out[1] = static_cast<char>(0x9c);
  }
  zlib::z_params zs;
  zs.next_out = out.data() + header;
  zs.avail_out = out.size() - header - 8;
  for (size_t i = 0; i <= pieces.size(); ++i) {
    const bool last = i == pieces.size();
    zs.next_in = last ? nullptr : pieces[i].data();
    zs.avail_in = last ? 0 : pieces[i].size();
    boost::beast::error_code ec;
    deflater.write(zs, last ? zlib::Flush::finish : zlib::Flush::none, ec);
    if (last ? ec != zlib::error::end_of_stream : (ec && ec != zlib::error::need_buffers)) {
      return Status::Internal("response compression failed: " + ec.message());
    }
    if (!last && zs.avail_in != 0) return Status::Internal("response compression stalled");
  }
  size_t pos = out.size() - 8 - zs.avail_out;
  auto put = [&](uint32_t v, bool little) {
    for (int k = 0; k < 4; ++k) {
      const int shift = little ? 8 * k : 8 * (3 - k);
      out[pos++] = static_cast<char>((v >> shift) & 0xff);
    }
  };
  if (encoding == ContentEncoding::kGzip) {
    put(check, true);
    put(static_cast<uint32_t>(total), true);
  } else {
    put(check, false);
  }
  out.resize(pos);
  return out;
}

}  // namespace quiver::protocol

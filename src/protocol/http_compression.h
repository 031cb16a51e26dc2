#pragma once
// HTTP body compression as Triton's HTTP endpoint offers it for inference: request bodies
// with "Content-Encoding: gzip | deflate" are decompressed, and responses are compressed
// when "Accept-Encoding" asks for gzip or deflate ("deflate" is the zlib format, RFC 1950;
// "gzip" is RFC 1952). Uses Boost.Beast's header-only port of zlib. Stateless and
// thread-safe.

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace quiver::protocol {

enum class ContentEncoding : uint8_t { kIdentity, kGzip, kDeflate, kUnknown };

// The Content-Encoding of a request; empty and "identity" are kIdentity, unknown
// encodings kUnknown.
ContentEncoding ParseContentEncoding(std::string_view header);

// The response encoding to use for an Accept-Encoding header, Triton's way: the supported
// coding (identity, gzip, deflate) with the highest q weight, identity by default.
ContentEncoding NegotiateResponseEncoding(std::string_view accept_encoding);

// "gzip" / "deflate" / "identity".
std::string_view ContentEncodingName(ContentEncoding encoding);

// Decompresses a gzip or zlib body into a fresh Buffer with `padding` readable bytes after
// the data. RESOURCE_EXHAUSTED when the result would exceed `max_size` (decompression
// bombs); INVALID_ARGUMENT for corrupt data, bad headers or checksums.
Result<Buffer> Decompress(ContentEncoding encoding, std::span<const std::byte> body,
                          size_t max_size, size_t padding);

// Compresses the concatenation of `pieces` (e.g. a JSON header and tensor Buffers).
Result<std::string> Compress(ContentEncoding encoding,
                             std::span<const std::span<const std::byte>> pieces);

}  // namespace quiver::protocol

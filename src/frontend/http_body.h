#pragma once
// Beast body types of the HTTP frontend (internal to src/frontend).
//
// SharedBody receives a request body into one exactly-sized, uninitialised allocation
// with JSON-parser padding after it, owned by a shared_ptr that tensors borrowing the body
// keep alive: the bytes are written once by the socket read and never copied again.
// GatherBody sends a response as a JSON string followed by tensor Buffers, handed to the
// socket as one scatter-gather list.

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "protocol/http_infer_codec.h"

namespace quiver::frontend {

struct SharedBody {
  struct value_type {
    std::shared_ptr<std::byte[]> data;  // capacity + kJsonPadding bytes when allocated
    size_t size = 0;
    size_t capacity = 0;  // usable bytes before the padding
  };

  static std::uint64_t size(const value_type& v) { return v.size; }

  // Storage for exactly `capacity` bytes plus zeroed padding (size 0).
  static value_type Allocate(size_t capacity) {
    value_type v;
    v.data.reset(new std::byte[capacity + protocol::kJsonPadding]);
    std::memset(v.data.get() + capacity, 0, protocol::kJsonPadding);
    v.capacity = capacity;
    return v;
  }

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      ec = {};
      body_.size = 0;
      const uint64_t want = length ? *length : 0;
      if (want > std::numeric_limits<size_t>::max() - protocol::kJsonPadding) {
        ec = boost::beast::http::error::buffer_overflow;
        return;
      }
      Reserve(static_cast<size_t>(want));
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      ec = {};
      const size_t n = boost::asio::buffer_size(buffers);
      if (n > body_.capacity - body_.size) {
        // Chunked or longer than announced: grow geometrically (the parser enforces the
        // body limit before calling put).
        const size_t need = body_.size + n;
        Reserve(std::max(need, body_.capacity + body_.capacity / 2));
      }
      const size_t copied = boost::asio::buffer_copy(
          boost::asio::buffer(body_.data.get() + body_.size, n), buffers);
      body_.size += copied;
      return copied;
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    void Reserve(size_t capacity) {
      if (body_.data && capacity <= body_.capacity) return;
      std::shared_ptr<std::byte[]> fresh(new std::byte[capacity + protocol::kJsonPadding]);
      if (body_.size > 0) std::memcpy(fresh.get(), body_.data.get(), body_.size);
      std::memset(fresh.get() + capacity, 0, protocol::kJsonPadding);
      body_.data = std::move(fresh);
      body_.capacity = capacity;
    }

    value_type& body_;
  };
};

struct GatherBody {
  struct value_type {
    std::string head;
    std::vector<Buffer> chunks;
  };

  static std::uint64_t size(const value_type& v) {
    std::uint64_t n = v.head.size();
    for (const Buffer& b : v.chunks) n += b.size();
    return n;
  }

  class writer {
   public:
    using const_buffers_type = std::vector<boost::asio::const_buffer>;

    template <bool isRequest, class Fields>
    writer(const boost::beast::http::header<isRequest, Fields>&, const value_type& body)
        : body_(body) {}

    void init(boost::beast::error_code& ec) { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(boost::beast::error_code& ec) {
      ec = {};
      if (done_) return boost::none;
      done_ = true;
      const_buffers_type buffers;
      buffers.reserve(1 + body_.chunks.size());
      if (!body_.head.empty()) buffers.emplace_back(body_.head.data(), body_.head.size());
      for (const Buffer& b : body_.chunks) {
        if (!b.empty()) buffers.emplace_back(b.data(), b.size());
      }
      if (buffers.empty()) return boost::none;
      return std::make_pair(std::move(buffers), false);
    }

   private:
    const value_type& body_;
    bool done_ = false;
  };
};

}  // namespace quiver::frontend

#include "frontend/http_listen.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace quiver::frontend {
namespace {

using tcp = boost::asio::ip::tcp;

TEST(ListenTest, PortZeroPicksOneAndSecondListenerIsRefusedByName) {
  boost::asio::io_context io;
  tcp::acceptor first(io);
  auto bound = Listen(first, "127.0.0.1", 0, "test server");
  ASSERT_TRUE(bound.ok());
  ASSERT_TRUE(first.is_open());
  const uint16_t port = first.local_endpoint().port();
  EXPECT_EQ(*bound, port);
  EXPECT_NE(port, 0);

  tcp::acceptor second(io);
  const Status s = Listen(second, "127.0.0.1", port, "test server").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message().rfind("test server: cannot listen on 127.0.0.1:" + std::to_string(port) +
                                  ": ",
                              0),
            0u)
      << s.message();
  EXPECT_FALSE(second.is_open());
}

TEST(ListenTest, BadAddressIsUnavailableAndSaysSo) {
  boost::asio::io_context io;
  tcp::acceptor acceptor(io);
  const Status s = Listen(acceptor, "not an address", 0, "metrics server").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("metrics server: cannot listen on not an address:0: bad address"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(acceptor.is_open());
}

}  // namespace
}  // namespace quiver::frontend

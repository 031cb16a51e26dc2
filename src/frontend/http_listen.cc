#include "frontend/http_listen.h"

namespace quiver::frontend {

Result<uint16_t> Listen(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address,
              uint16_t port, std::string_view what) {
  namespace asio = boost::asio;
  const std::string where =
      std::string(what) + ": cannot listen on " + address + ":" + std::to_string(port);
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) return Status::Unavailable(where + ": bad address: " + ec.message());
  const asio::ip::tcp::endpoint endpoint(ip, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return Status::Unavailable(where + ": " + ec.message());
  }
  const uint16_t bound = acceptor.local_endpoint(ec).port();
  if (ec) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return Status::Unavailable(where + ": " + ec.message());
  }
  return bound;
}

}  // namespace quiver::frontend

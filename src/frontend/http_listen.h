#pragma once
// Opening the listening socket of a Beast server (the HTTP/REST frontend and /metrics).

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quiver::frontend {

// Opens `acceptor` on address:port (port 0: one the kernel picks) with SO_REUSEADDR and
// starts listening; returns the bound port. UNAVAILABLE "<what>: cannot listen on
// address:port: <reason>" (a bad address, in use, no permission), with the acceptor
// closed again.
Result<uint16_t> Listen(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address,
              uint16_t port, std::string_view what);

}  // namespace quiver::frontend

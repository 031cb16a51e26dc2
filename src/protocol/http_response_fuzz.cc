// libFuzzer target http_response_fuzz: ParseInferResponse (the client side) on raw bytes
// (layout and checks: http_fuzz_targets.h). Compiled to nothing unless QUIVER_FUZZ_TARGET
// is defined, so the glob that builds quiver_protocol_http can include it harmlessly;
// scripts/fuzz builds and runs it.

#ifdef QUIVER_FUZZ_TARGET

#include <cstdio>
#include <cstdlib>

#include "protocol/http_fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string error = quiver::protocol::fuzz::InferResponseOneInput(data, size);
  if (!error.empty()) {
    std::fprintf(stderr, "http_response_fuzz: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}

#endif  // QUIVER_FUZZ_TARGET

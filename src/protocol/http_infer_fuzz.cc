// libFuzzer entry point for the infer request codec. Compiled to nothing unless
// QUIVER_FUZZ_TARGET is defined, so the glob that builds quiver_protocol_http can include
// it harmlessly. Build (clang):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DQUIVER_FUZZ_TARGET
//     -Isrc -I<build>/proto src/protocol/http_infer_fuzz.cc <quiver_protocol_http, core,
//     proto libs> -lsimdjson -lprotobuf
//   ./a.out tests/data/http
// Input layout: the first byte chooses the Inference-Header-Content-Length (0xff: none,
// otherwise that many bytes are JSON), the rest is the body.

#ifdef QUIVER_FUZZ_TARGET

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "protocol/http_infer_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quiver;
  using namespace quiver::protocol;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  auto storage = std::make_shared<std::vector<std::byte>>(size - 1);
  if (size > 1) std::memcpy(storage->data(), data + 1, size - 1);
  InferBody body;
  body.bytes = std::span<const std::byte>(storage->data(), storage->size());
  body.keepalive = storage;
  if (selector != 0xff) body.header_length = std::min<uint64_t>(selector, storage->size());
  auto parsed = ParseInferRequest(body, "m", "", nullptr);
  if (!parsed.ok()) return 0;
  InferResponse response{"m", "1", parsed->request.id, parsed->request.inputs};
  auto encoded = EncodeInferResponse(response, parsed->plan, nullptr);
  if (!encoded.ok()) return 0;
  auto flat = std::make_shared<std::string>(encoded->Flatten());
  InferBody out{std::span<const std::byte>(reinterpret_cast<const std::byte*>(flat->data()),
                                           flat->size()),
                0, flat, encoded->header_length()};
  (void)ParseInferResponse(out).ok();
  return 0;
}

#endif  // QUIVER_FUZZ_TARGET

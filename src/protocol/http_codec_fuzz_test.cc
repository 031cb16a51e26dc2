// Deterministic mutation fuzzing of the infer codec over the corpus in tests/data/http:
// every mutated body must parse or fail with a Status (never crash, never read out of
// bounds — run under the sanitizer build), and whatever parses must encode and decode
// back. Corpus files: *.json are whole JSON bodies; <name>.hl<N>.bin carry binary tensor
// data after an N-byte JSON header. The same files seed the libFuzzer target in
// http_infer_fuzz.cc (scripts/fuzz converts them to its layout).
//
// The libFuzzer targets' own corpora, tests/data/fuzz/<target>/ (seeds and regression
// inputs in the targets' layouts, see http_fuzz_targets.h), are replayed here through the
// same one-input functions, so every ctest run (and the ASan+UBSan build) checks them.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "protocol/http_fuzz_targets.h"
#include "protocol/http_infer_codec.h"

namespace quiver::protocol {
namespace {

class Regions final : public SharedMemoryResolver {
 public:
  Regions() {
    for (const char* name : {"in", "out"}) regions_[name] = std::make_shared<std::vector<std::byte>>(64);
  }
  Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                         uint64_t byte_size) const override {
    auto it = regions_.find(std::string(region));
    if (it == regions_.end()) return Status::NotFound("no region");
    if (offset > 64 || byte_size > 64 - offset) return Status::InvalidArgument("bounds");
    return Buffer::Borrow(it->second->data() + offset, byte_size, it->second);
  }

 private:
  std::map<std::string, std::shared_ptr<std::vector<std::byte>>> regions_;
};

struct Seed {
  std::string name;
  std::string body;
  std::optional<uint64_t> header_length;
};

std::vector<Seed> LoadCorpus() {
  std::vector<Seed> seeds;
  const std::filesystem::path dir = std::filesystem::path(QUIVER_SOURCE_DIR) / "tests/data/http";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    Seed s{entry.path().filename().string(),
           std::string(std::istreambuf_iterator<char>(in), {}), std::nullopt};
    // "<name>.hl<N>.bin": N is the JSON header length.
    const size_t hl = s.name.rfind(".hl");
    if (hl != std::string::npos && s.name.size() > 4 &&
        s.name.compare(s.name.size() - 4, 4, ".bin") == 0) {
      s.header_length = std::stoull(s.name.substr(hl + 3, s.name.size() - 4 - hl - 3));
    }
    seeds.push_back(std::move(s));
  }
  std::sort(seeds.begin(), seeds.end(), [](const Seed& a, const Seed& b) { return a.name < b.name; });
  return seeds;
}

// Parses `body`; when it parses, echoes inputs as outputs through the response codec.
void Exercise(const std::string& text, std::optional<uint64_t> header_length,
              const Regions& regions) {
  // Exactly sized allocation, no padding: out-of-bounds reads show up under ASan.
  auto storage = std::make_shared<std::vector<std::byte>>(text.size());
  if (!text.empty()) std::memcpy(storage->data(), text.data(), text.size());
  InferBody body{std::span<const std::byte>(storage->data(), storage->size()), 0, storage,
                 header_length};
  auto parsed = ParseInferRequest(body, "m", "", &regions);
  if (!parsed.ok()) {
    EXPECT_FALSE(parsed.status().message().empty());
    return;
  }
  InferResponse response{"m", "1", parsed->request.id, {}};
  for (const Tensor& t : parsed->request.inputs) {
    response.outputs.push_back(Tensor{"OUTPUT0", t.datatype, t.shape, t.data});
  }
  auto encoded = EncodeInferResponse(response, parsed->plan, &regions);
  if (!encoded.ok()) return;  // e.g. FP16 as JSON, BYTES framing broken, shm too small
  const std::string flat = encoded->Flatten();
  auto out_storage = std::make_shared<std::string>(flat);
  InferBody out{std::span<const std::byte>(reinterpret_cast<const std::byte*>(out_storage->data()),
                                           out_storage->size()),
                0, out_storage, encoded->header_length()};
  auto decoded = ParseInferResponse(out);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString() << "\nresponse: " << flat;
}

std::string Mutate(const std::string& in, std::mt19937& rng) {
  std::string s = in;
  const int edits = 1 + static_cast<int>(rng() % 4);
  static const std::string kTokens[] = {"[", "]", "{", "}", ",", ":", "\"", "-1", "1e999",
                                        "null", "true", "18446744073709551616", "\\u0000",
                                        "\"BYTES\"", "\"FP16\"", "0", "\xff"};
  for (int e = 0; e < edits; ++e) {
    const size_t pos = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 6) {
      case 0:
        if (!s.empty()) s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s.erase(pos, 1 + rng() % 8);
        break;
      case 2:
        s.insert(pos, kTokens[rng() % std::size(kTokens)]);
        break;
      case 3:
        s.resize(pos);
        break;
      case 4:
        if (!s.empty()) s.insert(pos, s.substr(rng() % s.size(), 1 + rng() % 16));
        break;
      default:
        for (char& c : s) {
          if (c >= '0' && c <= '9' && rng() % 4 == 0) c = static_cast<char>('0' + rng() % 10);
        }
    }
  }
  return s;
}

TEST(HttpCodecFuzzTest, CorpusSeedsBehave) {
  const auto seeds = LoadCorpus();
  ASSERT_GE(seeds.size(), 8u);
  Regions regions;
  for (const Seed& s : seeds) {
    SCOPED_TRACE(s.name);
    Exercise(s.body, s.header_length, regions);
  }
}

TEST(HttpCodecFuzzTest, MutationsNeverCrash) {
  const auto seeds = LoadCorpus();
  Regions regions;
  std::mt19937 rng(20261127);
  for (const Seed& s : seeds) {
    for (int i = 0; i < 400; ++i) {
      const std::string body = Mutate(s.body, rng);
      std::optional<uint64_t> hl = s.header_length;
      switch (rng() % 4) {
        case 0: break;
        case 1: hl = body.size(); break;
        case 2: hl = std::nullopt; break;
        default: hl = rng() % (body.size() + 2);
      }
      Exercise(body, hl, regions);
    }
  }
}

// tests/data/fuzz/<target>/*, sorted by name.
std::vector<std::pair<std::string, std::string>> LoadFuzzCorpus(const std::string& target) {
  std::vector<std::pair<std::string, std::string>> files;
  const auto dir = std::filesystem::path(QUIVER_SOURCE_DIR) / "tests/data/fuzz" / target;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    files.emplace_back(entry.path().filename().string(),
                       std::string(std::istreambuf_iterator<char>(in), {}));
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string RunOne(std::string (*one_input)(const uint8_t*, size_t), const std::string& bytes) {
  return one_input(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

struct FuzzTarget {
  const char* name;
  std::string (*one_input)(const uint8_t*, size_t);
};
constexpr FuzzTarget kFuzzTargets[] = {{"http_infer_fuzz", &fuzz::InferRequestOneInput},
                                       {"http_split_fuzz", &fuzz::SplitOneInput},
                                       {"http_response_fuzz", &fuzz::InferResponseOneInput}};

TEST(HttpCodecFuzzTest, FuzzTargetCorporaReplay) {
  for (const FuzzTarget& target : kFuzzTargets) {
    const auto files = LoadFuzzCorpus(target.name);
    EXPECT_GE(files.size(), 4u) << target.name;
    for (const auto& [name, bytes] : files) {
      EXPECT_EQ(RunOne(target.one_input, bytes), "") << target.name << "/" << name;
    }
  }
}

// The split target's recipes, random and mutated from its seeds: cheap, and it reaches the
// binary-extension cursor walk in every ctest run.
TEST(HttpCodecFuzzTest, SplitRecipesNeverBreakInvariants) {
  std::mt19937 rng(20261128);
  std::vector<std::string> inputs;
  for (const auto& entry : LoadFuzzCorpus("http_split_fuzz")) inputs.push_back(entry.second);
  const size_t seeds = inputs.size();
  for (int i = 0; i < 3000; ++i) {
    std::string bytes;
    if (seeds > 0 && i % 2 == 0) {
      bytes = inputs[rng() % seeds];
      for (int e = 0, n = 1 + static_cast<int>(rng() % 3); e < n && !bytes.empty(); ++e) {
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
      }
    } else {
      bytes.resize(rng() % 48);
      for (char& c : bytes) c = static_cast<char>(rng());
    }
    ASSERT_EQ(RunOne(&fuzz::SplitOneInput, bytes), "") << "recipe " << i;
  }
}

// Found by http_split_fuzz: the client-side decoder handed out binary outputs whose byte
// size did not match their shape (callers index data_as<T>() by the shape).
TEST(HttpCodecFuzzTest, ResponseBinarySizeMustMatchShape) {
  for (const char* json :
       {R"({"outputs":[{"name":"O","datatype":"INT64","shape":[],"parameters":{"binary_data_size":4}}]})",
        R"({"outputs":[{"name":"O","datatype":"FP32","shape":[3],"parameters":{"binary_data_size":8}}]})",
        R"({"outputs":[{"name":"O","datatype":"BYTES","shape":[-1],"parameters":{"binary_data_size":4}}]})"}) {
    SCOPED_TRACE(json);
    const std::string text(json);
    const uint64_t size = std::stoull(text.substr(text.rfind(':') + 1));
    fuzz::OwnedBody exact(text + std::string(size, '\0'), text.size());
    auto decoded = ParseInferResponse(exact.body);
    ASSERT_FALSE(decoded.ok());
    EXPECT_NE(decoded.status().message().find("does not match shape"), std::string::npos)
        << decoded.status().ToString();
  }
  const std::string ok =
      R"({"outputs":[{"name":"O","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  fuzz::OwnedBody body(ok + std::string(8, '\0'), ok.size());
  auto decoded = ParseInferResponse(body.body);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->outputs.at(0).data.size(), 8u);
}

}  // namespace
}  // namespace quiver::protocol

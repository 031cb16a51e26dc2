#pragma once
// Small helpers every inference test needs: the datatypes, the name of the identity model
// of each (as TestEngineBuilder::WithIdentityModels writes them), a blocking Infer, and a
// callback collector to wait on (condition variables, no sleeps).

#include <array>
#include <cctype>
#include <condition_variable>
#include <cstddef>
#include <future>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/data_type.h"
#include "service/inference_service.h"

namespace quiver::testing {

// Every KServe datatype.
inline constexpr std::array<DataType, 14> kAllTypes = {
    DataType::kBool,  DataType::kUint8, DataType::kUint16, DataType::kUint32, DataType::kUint64,
    DataType::kInt8,  DataType::kInt16, DataType::kInt32,  DataType::kInt64,  DataType::kFp16,
    DataType::kBf16,  DataType::kFp32,  DataType::kFp64,   DataType::kBytes};

// "identity_fp32" for kFp32 etc., as the shipped models/ repository names them.
inline std::string IdentityModelName(DataType type) {
  std::string name = "identity_";
  for (char c : DataTypeName(type)) {
    name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return name;
}

// Calls Infer and waits for its one callback.
inline Result<InferResponse> InferAndWait(InferenceService& service, InferRequest request) {
  std::promise<Result<InferResponse>> promise;
  auto future = promise.get_future();
  service.Infer(std::move(request),
                [&promise](Result<InferResponse> r) { promise.set_value(std::move(r)); });
  return future.get();
}

// Collects Infer results; Wait blocks until `n` have arrived. Thread-safe.
class CallbackCounter {
 public:
  void Add(Result<InferResponse> r) {
    std::lock_guard lock(mutex_);
    results_.push_back(std::move(r));
    cv_.notify_all();
  }
  void Wait(size_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return results_.size() >= n; });
  }
  std::vector<Result<InferResponse>> results() {
    std::lock_guard lock(mutex_);
    return results_;
  }
  size_t count() {
    std::lock_guard lock(mutex_);
    return results_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Result<InferResponse>> results_;  // guarded by mutex_
};

}  // namespace quiver::testing

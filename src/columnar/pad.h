#pragma once
// Jagged lists -> padded dense tensors plus a mask, and the way back (per-slot model
// outputs -> a column aligned with the input content).
//
// Typical use: objects -> constituents (jets -> particles). Each jet becomes one row of a
// [n_jets, max_len, F] FP32 tensor; the mask says which slots hold a real constituent.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "columnar/jagged.h"
#include "core/tensor.h"

namespace quiver::columnar {

// Which elements of a list longer than max_len are kept, and in which slot order.
enum class Truncation : uint8_t {
  kKeepFirst,  // storage order; the first max_len elements
  kTopByKey,   // sorted by PadOptions::sort_key descending (stable: ties keep storage
               // order; NaN keys sort last), then the first max_len. Applies to every
               // list, also those shorter than max_len.
};

// Element order of the padded values tensor.
enum class PadLayout : uint8_t {
  kObjectsFeatures,  // [n, max_len, F] (transformers, DeepSets)
  kFeaturesObjects,  // [n, F, max_len] (channels-first, e.g. ParticleNet)
};

struct PadOptions {
  int64_t max_len = 0;  // slots per row; 0 = the longest list (may be 0 when all are empty)
  float pad_value = 0.0f;
  Truncation truncation = Truncation::kKeepFirst;
  // kTopByKey: the key, indexed like the fields' content (it need not be one of them).
  FieldView sort_key{};
  PadLayout layout = PadLayout::kObjectsFeatures;
  // BOOL, UINT8, INT8, INT32, INT64, FP32 or FP64: 1 for a real element, 0 for padding.
  // Match the model input's data type. The mask is [n, max_len]; reshape it by assigning
  // `mask.shape` (e.g. [n, 1, max_len]) — no copy.
  DataType mask_type = DataType::kBool;
  std::string values_name = "values";  // names of the produced tensors (model input names)
  std::string mask_name = "mask";
};

// The output of PadJagged. Both tensors own fresh memory.
struct Padded {
  Tensor values;        // FP32, layout per PadOptions::layout
  Tensor mask;          // mask_type, [n, max_len]
  int64_t max_len = 0;  // the slot count used (options.max_len, or the longest list)
};

// Pads every list of `lists` (one row per list, F = lists.fields.size() features) to
// max_len slots. Errors (INVALID_ARGUMENT): invalid offsets or short content (naming the
// collection, field and index), negative max_len, missing or short sort key, an
// unsupported mask type, a tensor too large to address. Thread-safe (pure function).
Result<Padded> PadJagged(const JaggedView& lists, const PadOptions& options);

// The slot count PadJagged would use (options.max_len, or the longest list), after the
// same validation as PadJagged.
Result<int64_t> PaddedLength(const JaggedView& lists, const PadOptions& options);

// PadJagged into caller-owned memory (a reused buffer, a shared-memory region, a numpy
// array): `values` must hold exactly n * max_len * F floats and `mask` exactly
// n * max_len * DataTypeSize(options.mask_type) bytes, or be empty to skip the mask, where
// max_len = PaddedLength(lists, options). Errors as PadJagged, plus INVALID_ARGUMENT for
// wrong sizes. Every element of both spans is written.
Status PadJaggedInto(const JaggedView& lists, const PadOptions& options, std::span<float> values,
                     std::span<std::byte> mask);

// The inverse of PadJagged's slot assignment: `per_slot` is a model output shaped
// [n, max_len] or [n, max_len, K...] (FP32, slot-major whatever options.layout was), where
// slot j of row i belongs to the element PadJagged put there with the same `lists`
// offsets, options.max_len, truncation and sort key. Returns an FP32 tensor [offsets[n],
// K...] aligned with the lists' content (see jagged.h): elements that were truncated away
// and the positions before offsets[0] get `fill`. Fields of `lists` are not used.
// INVALID_ARGUMENT when the shape or type does not fit.
Result<Tensor> UnpadToContent(const Tensor& per_slot, const JaggedView& lists,
                              const PadOptions& options, float fill, std::string name = "values");

}  // namespace quiver::columnar

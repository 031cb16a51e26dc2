#pragma once
// Views of jagged columns in awkward/Arrow layout: `int64 offsets[n+1]` plus one
// contiguous content array per field. Views borrow the caller's arrays; nothing is copied.
//
// Row convention used by the whole of src/columnar: a per-object column "aligned with" a
// jagged view has one row per *content position*, so list i owns rows
// [offsets[i], offsets[i+1]) — the same offsets wrap the result (awkward ListOffsetArray).

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace quiver::columnar {

// One field of a jagged collection (e.g. constituent pT): a name for error messages and
// its content. Borrowed: the caller's array must outlive every use of the view.
struct FieldView {
  std::string_view name;
  std::span<const float> content;
};

// n lists sharing one offsets array: list i is content positions [offsets[i], offsets[i+1])
// of every field. offsets[0] may be > 0 (a sliced array). An empty `offsets` means n = 0.
struct JaggedView {
  std::string_view name;  // the collection, for error messages (e.g. "jets")
  std::span<const int64_t> offsets;
  std::vector<FieldView> fields;

  // Number of lists n.
  int64_t size() const { return offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1; }
  // One past the last content position used (offsets[n]; 0 when n = 0).
  int64_t content_end() const { return offsets.empty() ? 0 : offsets.back(); }
};

// OK when offsets[0] >= 0 and offsets never decrease; otherwise INVALID_ARGUMENT naming
// `what` and the first bad index. O(n).
Status ValidateOffsets(std::span<const int64_t> offsets, std::string_view what);

// ValidateOffsets plus: every field's content holds at least offsets[n] elements.
// INVALID_ARGUMENT naming the collection and the field otherwise.
Status ValidateJagged(const JaggedView& view);

// INVALID_ARGUMENT naming `field` unless field.content has at least `end` elements.
Status ValidateFieldCovers(const FieldView& field, int64_t end, std::string_view what);

}  // namespace quiver::columnar

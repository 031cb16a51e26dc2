#include "columnar/jagged.h"

#include <string>

#include "core/strings.h"

namespace quiver::columnar {

Status ValidateOffsets(std::span<const int64_t> offsets, std::string_view what) {
  if (offsets.empty()) return Status::Ok();
  if (offsets[0] < 0) {
    return Status::InvalidArgument(Quoted(what) + ": offsets[0] = " + std::to_string(offsets[0]) +
                                   " is negative");
  }
  for (size_t i = 1; i < offsets.size(); ++i) {
    if (offsets[i] < offsets[i - 1]) {
      return Status::InvalidArgument(
          Quoted(what) + ": offsets[" + std::to_string(i) + "] = " + std::to_string(offsets[i]) +
          " is less than offsets[" + std::to_string(i - 1) +
          "] = " + std::to_string(offsets[i - 1]) + " (offsets must not decrease)");
    }
  }
  return Status::Ok();
}

Status ValidateFieldCovers(const FieldView& field, int64_t end, std::string_view what) {
  if (static_cast<int64_t>(field.content.size()) < end) {
    return Status::InvalidArgument(Quoted(what) + " field " + Quoted(field.name) +
                                   ": content has " + std::to_string(field.content.size()) +
                                   " elements but the offsets end at " + std::to_string(end));
  }
  return Status::Ok();
}

Status ValidateJagged(const JaggedView& view) {
  QUIVER_RETURN_IF_ERROR(ValidateOffsets(view.offsets, view.name));
  const int64_t end = view.content_end();
  for (const FieldView& f : view.fields)
    QUIVER_RETURN_IF_ERROR(ValidateFieldCovers(f, end, view.name));
  return Status::Ok();
}

}  // namespace quiver::columnar

#include "engine/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <system_error>

#include "core/tensor.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;
namespace pb = google::protobuf;
using pb::io::Tokenizer;

// --- Parsing -----------------------------------------------------------------------------

// One diagnostic from the protobuf tokenizer/parser; line and column are 0-based.
struct Diagnostic {
  int line = 0;
  int column = 0;
  std::string message;
};

// Collects what protobuf reports instead of letting it log.
class DiagnosticCollector : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    errors.push_back({line, column, message});
  }
  void AddWarning(int line, pb::io::ColumnNumber column, const std::string& message) override {
    warnings.push_back({line, column, message});
  }
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;
};

// An identifier token of the original text; a field name when followed by : { < or [.
struct Identifier {
  int line = 0;
  int column = 0;
  std::string text;
  bool field_name = false;
};

// The text handed to protobuf plus what is needed to map its positions back.
struct PreparedText {
  std::string text;
  std::vector<Identifier> identifiers;
  std::vector<std::pair<int, int>> insertions;  // (line, column) where a ':' was inserted
};

// Byte offset of a tokenizer position (tabs advance to the next multiple of 8 columns).
size_t OffsetOf(std::string_view text, const std::vector<size_t>& line_starts, int line,
                int column) {
  size_t offset = line_starts[line];
  for (int col = 0; col < column && offset < text.size() && text[offset] != '\n'; ++offset) {
    col += text[offset] == '\t' ? 8 - col % 8 : 1;
  }
  return offset;
}

// protobuf 3.21 cannot skip an unknown field written `name [ { ... } ]` (it wants a ':'
// before a list), yet Triton configs write `model_warmup [ ... ]` all the time. `name: [`
// means the same for known fields, so a ':' is put between every identifier and a '['
// that follows it: in place of a space when there is one, so positions do not move.
PreparedText PrepareText(std::string_view text) {
  PreparedText out;
  std::vector<size_t> line_starts = {0};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') line_starts.push_back(i + 1);
  }
  pb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  DiagnosticCollector ignored;  // the real parse reports these
  Tokenizer tokenizer(&input, &ignored);
  tokenizer.set_comment_style(Tokenizer::SH_COMMENT_STYLE);
  tokenizer.set_require_space_after_number(false);
  tokenizer.set_allow_multiline_strings(true);
  tokenizer.set_allow_f_after_float(true);

  std::vector<size_t> insert_at;
  std::string buffer(text);
  while (tokenizer.Next()) {
    const Tokenizer::Token& token = tokenizer.current();
    const Tokenizer::Token& previous = tokenizer.previous();
    if (previous.type == Tokenizer::TYPE_IDENTIFIER && !out.identifiers.empty()) {
      out.identifiers.back().field_name =
          token.text == ":" || token.text == "{" || token.text == "<" || token.text == "[";
    }
    if (token.type == Tokenizer::TYPE_IDENTIFIER) {
      out.identifiers.push_back({token.line, token.column, token.text, false});
    }
    if (token.text == "[" && token.type == Tokenizer::TYPE_SYMBOL &&
        previous.type == Tokenizer::TYPE_IDENTIFIER) {
      size_t after = OffsetOf(text, line_starts, previous.line, previous.end_column);
      if (after < buffer.size() && buffer[after] == ' ') {
        buffer[after] = ':';
      } else {
        insert_at.push_back(after);
        out.insertions.emplace_back(previous.line, previous.end_column);
      }
    }
  }
  for (auto it = insert_at.rbegin(); it != insert_at.rend(); ++it) buffer.insert(*it, 1, ':');
  out.text = std::move(buffer);
  return out;
}

// Maps a position in the prepared text back to the original text.
std::pair<int, int> OriginalPosition(const PreparedText& prepared, int line, int column) {
  int shift = 0;
  for (const auto& [l, c] : prepared.insertions) {
    if (l == line && c < column) ++shift;
  }
  return {line, column - shift};
}

std::string Location(std::string_view source, int line, int column) {
  return fmt::format("{}:{}:{}", source, line + 1, column + 1);
}

// The last field-name identifier before (line, column); null when there is none.
const Identifier* FieldBefore(const PreparedText& prepared, int line, int column,
                              std::string_view name = {}) {
  const Identifier* found = nullptr;
  for (const Identifier& id : prepared.identifiers) {
    if (std::pair(id.line, id.column) >= std::pair(line, column)) break;
    if (id.field_name && (name.empty() || id.text == name)) found = &id;
  }
  return found;
}

// Quoted text after `marker` in `message`, e.g. the name in `... named "foo".`.
std::string QuotedAfter(std::string_view message, std::string_view marker) {
  size_t start = message.find(marker);
  if (start == std::string_view::npos) return {};
  start += marker.size();
  size_t end = message.find('"', start);
  return end == std::string_view::npos ? std::string()
                                       : std::string(message.substr(start, end - start));
}

// The enum type of the first field called `field` anywhere under ModelConfig.
const pb::EnumDescriptor* FindEnumField(const pb::Descriptor* message, std::string_view field,
                                        int depth = 0) {
  if (depth > 4) return nullptr;
  for (int i = 0; i < message->field_count(); ++i) {
    const pb::FieldDescriptor* f = message->field(i);
    if (f->name() == field && f->enum_type() != nullptr) return f->enum_type();
    if (f->message_type() != nullptr) {
      if (auto* e = FindEnumField(f->message_type(), field, depth + 1)) return e;
    }
  }
  return nullptr;
}

// Makes protobuf's error message say which field it is about and what is accepted.
std::string ExplainError(const PreparedText& prepared, const Diagnostic& error, int line,
                         int column) {
  std::string what = error.message;
  if (what.ends_with("got: ")) what += "end of file";
  std::string enum_field = QuotedAfter(what, "for field \"");
  if (what.starts_with("Unknown enumeration value") && !enum_field.empty()) {
    if (const auto* type = FindEnumField(ModelConfig::descriptor(), enum_field)) {
      std::vector<std::string> names;
      for (int i = 0; i < type->value_count(); ++i) {
        if (!type->value(i)->name().ends_with("_INVALID")) names.push_back(type->value(i)->name());
      }
      what += fmt::format(" Expected one of: {}.", fmt::join(names, ", "));
    }
  } else if (what.find("field \"") == std::string::npos) {
    if (const Identifier* field = FieldBefore(prepared, line, column)) {
      what = fmt::format("field '{}': {}", field->text, what);
    }
  }
  return what;
}

// --- Normalization -----------------------------------------------------------------------

// The error every normalization rule reports: file, field, then the details.
Status Invalid(std::string_view source, std::string_view field, std::string_view details) {
  return Status::InvalidArgument(fmt::format("{}: field '{}' {}", source, field, details));
}

bool ValidDim(int64_t dim) { return dim >= 1 || dim == -1; }

bool HasWildcard(const pb::RepeatedField<int64_t>& dims) {
  return std::find(dims.begin(), dims.end(), -1) != dims.end();
}

std::span<const int64_t> AsSpan(const pb::RepeatedField<int64_t>& dims) {
  return {dims.data(), static_cast<size_t>(dims.size())};
}

// Checks the inputs or outputs (`kind` is "input" or "output") of a config.
template <typename TensorConfig>
Status CheckTensors(const pb::RepeatedPtrField<TensorConfig>& tensors, std::string_view kind,
                    std::string_view source) {
  if (tensors.empty()) {
    return Invalid(source, kind,
                   fmt::format("is empty; expected at least one {} (e.g. {} [ {{ name: "
                               "\"{}__0\" data_type: TYPE_FP32 dims: [ -1 ] }} ])",
                               kind, kind, kind == "input" ? "INPUT" : "OUTPUT"));
  }
  std::map<std::string, int> seen;
  for (int i = 0; i < tensors.size(); ++i) {
    const TensorConfig& t = tensors[i];
    const std::string field = fmt::format("{}[{}]", kind, i);
    if (t.name().empty()) {
      return Invalid(source, field + ".name", "is empty; expected a tensor name");
    }
    const std::string of = fmt::format("of {} \"{}\"", kind, t.name());
    if (auto [it, inserted] = seen.emplace(t.name(), i); !inserted) {
      return Invalid(source, field + ".name",
                     fmt::format("is \"{}\", already used by {}[{}]; expected unique {} names",
                                 t.name(), kind, it->second, kind));
    }
    if (t.data_type() == inference::TYPE_INVALID || !inference::DataType_IsValid(t.data_type())) {
      return Invalid(source, field + ".data_type",
                     fmt::format("{} is {}; expected a type such as TYPE_FP32", of,
                                 static_cast<int>(t.data_type())));
    }
    if (t.dims().empty()) {
      return Invalid(source, field + ".dims",
                     fmt::format("{} is empty; expected at least one dimension (-1 for a "
                                 "variable-size one), not counting the batch dimension",
                                 of));
    }
    if (!std::all_of(t.dims().begin(), t.dims().end(), ValidDim)) {
      return Invalid(source, field + ".dims",
                     fmt::format("{} is {}; expected every dimension >= 1 or -1 (variable)", of,
                                 ShapeToString(AsSpan(t.dims()))));
    }
    if (t.has_reshape()) {
      const auto& shape = t.reshape().shape();
      if (!std::all_of(shape.begin(), shape.end(), ValidDim)) {
        return Invalid(source, field + ".reshape.shape",
                       fmt::format("{} is {}; expected every dimension >= 1 or -1", of,
                                   ShapeToString(AsSpan(shape))));
      }
      if (!HasWildcard(t.dims()) && !HasWildcard(shape) &&
          ElementCount(AsSpan(t.dims())) != ElementCount(AsSpan(shape))) {
        return Invalid(
            source, field + ".reshape.shape",
            fmt::format("{} is {} ({} elements); expected the element count of dims "
                        "{} ({})",
                        of, ShapeToString(AsSpan(shape)), ElementCount(AsSpan(shape)),
                        ShapeToString(AsSpan(t.dims())), ElementCount(AsSpan(t.dims()))));
      }
    }
  }
  return Status::Ok();
}

// platform "pytorch_libtorch" <-> backend "pytorch"; other backends need no platform.
Status NormalizeBackend(ModelConfig& config, std::string_view source) {
  constexpr std::string_view kTorchPlatform = "pytorch_libtorch";
  if (!config.platform().empty() && config.platform() != kTorchPlatform) {
    return Invalid(source, "platform",
                   fmt::format("is \"{}\", which Quiver does not support; expected "
                               "\"pytorch_libtorch\" (or no platform and a backend such as "
                               "backend: \"identity\")",
                               config.platform()));
  }
  if (config.platform() == kTorchPlatform) {
    if (config.backend().empty()) config.set_backend("pytorch");
    if (config.backend() != "pytorch") {
      return Invalid(source, "backend",
                     fmt::format("is \"{}\" but platform \"pytorch_libtorch\" means backend "
                                 "\"pytorch\"; expected backend \"pytorch\" or no backend",
                                 config.backend()));
    }
  } else if (config.backend() == "pytorch") {
    config.set_platform(std::string(kTorchPlatform));
  } else if (config.backend().empty()) {
    return Invalid(source, "platform",
                   "and field 'backend' are both empty; expected platform: "
                   "\"pytorch_libtorch\" for a TorchScript model or backend: \"identity\"");
  }
  return Status::Ok();
}

Status NormalizeInstanceGroups(ModelConfig& config, std::string_view source) {
  if (config.instance_group().empty()) {
    auto* group = config.add_instance_group();
    group->set_count(1);
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  for (int i = 0; i < config.instance_group_size(); ++i) {
    auto& group = *config.mutable_instance_group(i);
    const std::string field = fmt::format("instance_group[{}]", i);
    if (group.count() < 0) {
      return Invalid(source, field + ".count",
                     fmt::format("is {}; expected a count >= 1 (0 means 1)", group.count()));
    }
    if (group.count() == 0) group.set_count(1);
    for (int gpu : group.gpus()) {
      if (gpu < 0) {
        return Invalid(source, field + ".gpus",
                       fmt::format("contains {}; expected GPU indices >= 0", gpu));
      }
    }
    if (group.kind() == inference::ModelInstanceGroup::KIND_AUTO) {
      group.set_kind(group.gpus().empty() ? inference::ModelInstanceGroup::KIND_CPU
                                          : inference::ModelInstanceGroup::KIND_GPU);
    }
    if (group.kind() == inference::ModelInstanceGroup::KIND_CPU && !group.gpus().empty()) {
      return Invalid(source, field + ".gpus",
                     "is set but kind is KIND_CPU; expected no gpus for KIND_CPU (or kind: "
                     "KIND_GPU)");
    }
    if (group.name().empty()) group.set_name(fmt::format("{}_{}", config.name(), i));
  }
  return Status::Ok();
}

Status NormalizeDynamicBatching(ModelConfig& config, std::string_view source,
                                std::vector<std::string>& warnings) {
  if (!config.has_dynamic_batching()) return Status::Ok();
  const auto& batching = config.dynamic_batching();
  if (config.max_batch_size() <= 0) {
    return Invalid(source, "dynamic_batching",
                   fmt::format("is set but max_batch_size is {}; expected max_batch_size > 0 "
                               "(a model without a batch dimension cannot be batched)",
                               config.max_batch_size()));
  }
  for (int i = 0; i < batching.preferred_batch_size_size(); ++i) {
    const int size = batching.preferred_batch_size(i);
    if (size < 1 || size > config.max_batch_size()) {
      return Invalid(source, fmt::format("dynamic_batching.preferred_batch_size[{}]", i),
                     fmt::format("is {}; expected a size in [1, max_batch_size = {}]", size,
                                 config.max_batch_size()));
    }
  }
  if (batching.priority_levels() > 1) {
    warnings.push_back(fmt::format(
        "{}: field 'dynamic_batching.priority_levels' is {}; request priorities are not "
        "supported by Quiver and requests are served FIFO",
        source, batching.priority_levels()));
  } else if (!batching.priority_queue_policy().empty()) {
    warnings.push_back(fmt::format(
        "{}: field 'dynamic_batching.priority_queue_policy' is set; request priorities are not "
        "supported by Quiver and requests are served FIFO",
        source));
  }
  if (batching.default_queue_policy().timeout_action() == inference::ModelQueuePolicy::DELAY) {
    warnings.push_back(fmt::format(
        "{}: field 'dynamic_batching.default_queue_policy.timeout_action' is DELAY, which "
        "Quiver does not support; timed-out requests are rejected (REJECT)",
        source));
  }
  return Status::Ok();
}

Status NormalizeVersionPolicy(ModelConfig& config, std::string_view source) {
  auto& policy = *config.mutable_version_policy();
  switch (policy.policy_choice_case()) {
    case inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
      policy.mutable_latest()->set_num_versions(1);
      break;
    case inference::ModelVersionPolicy::kLatest:
      if (policy.latest().num_versions() == 0) policy.mutable_latest()->set_num_versions(1);
      break;
    case inference::ModelVersionPolicy::kAll:
      break;
    case inference::ModelVersionPolicy::kSpecific:
      if (policy.specific().versions().empty()) {
        return Invalid(source, "version_policy.specific.versions",
                       "is empty; expected at least one version, e.g. specific { versions: "
                       "[ 1 ] }");
      }
      for (int64_t version : policy.specific().versions()) {
        if (version < 1) {
          return Invalid(source, "version_policy.specific.versions",
                         fmt::format("contains {}; expected versions >= 1", version));
        }
      }
      break;
  }
  return Status::Ok();
}

// --- Missing config.pbtxt ----------------------------------------------------------------

// The first *.pt file in a subdirectory of `model_dir`, relative to it; empty if none.
fs::path FindTorchScriptFile(const fs::path& model_dir) {
  std::error_code ec;
  for (const auto& version : fs::directory_iterator(model_dir, ec)) {
    if (!version.is_directory(ec)) continue;
    for (const auto& file : fs::directory_iterator(version.path(), ec)) {
      if (file.path().extension() == ".pt") return file.path().lexically_relative(model_dir);
    }
  }
  return {};
}

std::string MissingConfigMessage(const fs::path& model_dir, const std::string& model) {
  const fs::path config_path = model_dir / "config.pbtxt";
  const fs::path torch_file = FindTorchScriptFile(model_dir);
  std::string filename_line;
  if (!torch_file.empty() && torch_file.filename() != "model.pt") {
    filename_line = fmt::format("default_model_filename: \"{}\"\n", torch_file.filename().string());
  }
  const std::string example = fmt::format(
      "name: \"{}\"\n"
      "platform: \"pytorch_libtorch\"\n"
      "{}"
      "max_batch_size: 8  # 0 if the model has no batch dimension\n"
      "input [\n"
      "  {{ name: \"INPUT__0\" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }}\n"
      "]\n"
      "output [\n"
      "  {{ name: \"OUTPUT__0\" data_type: TYPE_FP32 dims: [ 1000 ] }}\n"
      "]\n",
      model, filename_line);
  if (!torch_file.empty()) {
    return fmt::format(
        "{} is missing. {} is a PyTorch model, and Triton does not auto-generate configs for "
        "PyTorch models (TorchScript files do not record input and output shapes): write {} "
        "describing the model's tensors, named INPUT__<i> / OUTPUT__<i> by position, with "
        "their data types and dims (without the batch dimension). For example:\n{}",
        config_path.string(), (model_dir / torch_file).string(), config_path.string(), example);
  }
  return fmt::format(
      "{} is missing; every model directory needs a config.pbtxt. For a TorchScript model in "
      "{} write, for example:\n{}(or backend: \"identity\" instead of platform for a model "
      "that echoes its inputs)",
      config_path.string(), (model_dir / "1" / "model.pt").string(), example);
}

// The directory name of `model_dir`, also for "models/resnet/" and relative paths.
std::string DirectoryName(const fs::path& model_dir) {
  std::error_code ec;
  fs::path path = fs::absolute(model_dir, ec).lexically_normal();
  if (ec) path = model_dir.lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  return path.filename().string();
}

}  // namespace

Result<LoadedConfig> ParseModelConfig(std::string_view text, std::string_view source) {
  const PreparedText prepared = PrepareText(text);
  DiagnosticCollector diagnostics;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&diagnostics);
  parser.AllowUnknownField(true);

  LoadedConfig loaded;
  loaded.text = std::string(text);
  const bool parsed = parser.ParseFromString(prepared.text, &loaded.config);
  if (!diagnostics.errors.empty()) {
    const Diagnostic& error = diagnostics.errors.front();
    auto [line, column] = OriginalPosition(prepared, error.line, error.column);
    return Status::InvalidArgument(fmt::format("{}: {}", Location(source, line, column),
                                               ExplainError(prepared, error, line, column)));
  }
  if (!parsed) {
    return Status::InvalidArgument(fmt::format("{}: not a valid model configuration", source));
  }
  for (const Diagnostic& warning : diagnostics.warnings) {
    auto [line, column] = OriginalPosition(prepared, warning.line, warning.column);
    const std::string field = QuotedAfter(warning.message, "has no field named \"");
    if (field.empty()) {
      loaded.warnings.push_back(
          fmt::format("{}: {}", Location(source, line, column), warning.message));
      continue;
    }
    // protobuf points after the field name; point at the name itself.
    if (const Identifier* id = FieldBefore(prepared, line, column, field)) {
      line = id->line;
      column = id->column;
    }
    loaded.warnings.push_back(
        fmt::format("{}: field '{}' is not supported by Quiver and is ignored",
                    Location(source, line, column), field));
  }
  return loaded;
}

Status NormalizeModelConfig(ModelConfig& config, std::string_view model_dir_name,
                            std::string_view source, std::vector<std::string>& warnings) {
  if (config.name().empty()) {
    if (model_dir_name.empty()) {
      return Invalid(source, "name", "is empty; expected the model's name");
    }
    config.set_name(std::string(model_dir_name));
  } else if (!model_dir_name.empty() && config.name() != model_dir_name) {
    return Invalid(source, "name",
                   fmt::format("is \"{}\" but the model directory is \"{}\"; expected the "
                               "directory name (or no name)",
                               config.name(), model_dir_name));
  }
  if (config.max_batch_size() < 0) {
    return Invalid(source, "max_batch_size",
                   fmt::format("is {}; expected >= 0 (0: the model has no batch dimension)",
                               config.max_batch_size()));
  }
  QUIVER_RETURN_IF_ERROR(NormalizeBackend(config, source));
  QUIVER_RETURN_IF_ERROR(CheckTensors(config.input(), "input", source));
  QUIVER_RETURN_IF_ERROR(CheckTensors(config.output(), "output", source));
  QUIVER_RETURN_IF_ERROR(NormalizeInstanceGroups(config, source));
  QUIVER_RETURN_IF_ERROR(NormalizeDynamicBatching(config, source, warnings));
  QUIVER_RETURN_IF_ERROR(NormalizeVersionPolicy(config, source));
  if (config.default_model_filename().empty() && config.backend() == "pytorch") {
    config.set_default_model_filename("model.pt");
  }
  return Status::Ok();
}

Result<LoadedConfig> LoadModelConfig(const std::filesystem::path& model_dir) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    return Status::NotFound(fmt::format("model directory {} does not exist", model_dir.string()));
  }
  const std::string name = DirectoryName(model_dir);
  const fs::path config_path = model_dir / "config.pbtxt";
  if (!fs::exists(config_path, ec)) {
    return Status::InvalidArgument(MissingConfigMessage(model_dir, name));
  }
  std::ifstream in(config_path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) {
    return Status::InvalidArgument(fmt::format("cannot read {}", config_path.string()));
  }
  const std::string source = config_path.string();
  Result<LoadedConfig> loaded = ParseModelConfig(text.str(), source);
  if (!loaded.ok()) return loaded.status();
  QUIVER_RETURN_IF_ERROR(NormalizeModelConfig(loaded->config, name, source, loaded->warnings));
  return loaded;
}

DataType ToDataType(inference::DataType type) {
  // A switch, not a name lookup: this runs for every input of every request.
  switch (type) {
    case inference::TYPE_BOOL: return DataType::kBool;
    case inference::TYPE_UINT8: return DataType::kUint8;
    case inference::TYPE_UINT16: return DataType::kUint16;
    case inference::TYPE_UINT32: return DataType::kUint32;
    case inference::TYPE_UINT64: return DataType::kUint64;
    case inference::TYPE_INT8: return DataType::kInt8;
    case inference::TYPE_INT16: return DataType::kInt16;
    case inference::TYPE_INT32: return DataType::kInt32;
    case inference::TYPE_INT64: return DataType::kInt64;
    case inference::TYPE_FP16: return DataType::kFp16;
    case inference::TYPE_BF16: return DataType::kBf16;
    case inference::TYPE_FP32: return DataType::kFp32;
    case inference::TYPE_FP64: return DataType::kFp64;
    case inference::TYPE_STRING: return DataType::kBytes;
    default: return DataType::kInvalid;
  }
}

}  // namespace quiver::engine

#pragma once
// Client-side parsers of the KServe v2 / Triton REST bodies other than infer: the inverse
// of protocol/json_messages.h (server metadata, model metadata, model configuration,
// repository index, statistics, {"error": ...}). Cold paths: nlohmann::json.
//
// Error policy: a body that is not what the endpoint returns gives INVALID_ARGUMENT
// naming what is wrong; the transport reports it as INTERNAL naming the endpoint.
// Unknown fields are ignored (newer servers add some). Stateless and thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::client {

Result<ServerMetadata> ParseServerMetadataJson(std::string_view json);
Result<ModelMetadata> ParseModelMetadataJson(std::string_view json);
// The protobuf JSON form (proto field names; 64-bit integers as numbers or strings).
Result<ModelConfig> ParseModelConfigJson(std::string_view json);
// [{"name","version"?,"state","reason"?}]
Result<RepositoryIndex> ParseRepositoryIndexJson(std::string_view json);
// {"model_stats":[...]}
Result<std::vector<ModelStatistics>> ParseStatisticsJson(std::string_view json);

// The server's error for a non-2xx answer: the code from the HTTP status
// (StatusCodeFromHttp) and the message from {"error": "..."}; a body that is not such an
// object is used as the message (trimmed), an empty one gives "HTTP <status>".
Status ErrorFromHttpResponse(int http_status, std::string_view body);

}  // namespace quiver::client

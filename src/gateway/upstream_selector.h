#pragma once
// UpstreamSelector: the Router's per-attempt choice of upstream, composed from the three
// policies: placement (where the model version is READY) -> health (not ejected or
// probing) -> not already tried by this request (a retry goes elsewhere) -> the balancer.
// It owns nothing; the Router owns the policies and keeps them alive longer than this.
//
// Thread-safe, as the policies it reads are; the answer may be out of date by the time the
// request is sent (an upstream ejected in between), which a failure report and a retry
// repair.

#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "gateway/balancer/balancer.h"
#include "gateway/health/outlier_detector.h"
#include "gateway/placement/placement_table.h"

namespace quiver::gateway {

class UpstreamSelector {
 public:
  UpstreamSelector(const PlacementTable& placement, const OutlierDetector& health,
                   Balancer& balancer)
      : placement_(placement), health_(health), balancer_(balancer) {}

  // The upstream for one attempt of a request for `model` `version` ("" = any ready
  // version), counted as started in the balancer (call balancer().Done when it ends).
  // NOT_FOUND naming the model when it is READY nowhere; UNAVAILABLE naming it when every
  // upstream with it READY is ejected, probing or in `tried`.
  Result<std::string> Choose(std::string_view model, std::string_view version,
                             std::span<const std::string> tried = {});

  Balancer& balancer() { return balancer_; }

 private:
  const PlacementTable& placement_;
  const OutlierDetector& health_;
  Balancer& balancer_;
};

}  // namespace quiver::gateway

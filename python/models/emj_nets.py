"""The emerging-jets taggers served as emj_gnn, emj_dnn and emj_event (TorchScript-able).

Inputs follow docs/testbed-contract.md: raw features, normalisation inside the models.

- TrackGNN (emj_gnn): forward(tracks [B,64,8], mask [B,64]) -> score [B,1].
  ParticleNet-style: two EdgeConv blocks (k nearest neighbours by torch.cdist + topk, the
  first in (deta, dphi), the second in the learned features), masked mean + max pooling,
  an MLP head, a sigmoid. Padded tracks are zeroed first, never chosen as neighbours (their
  distance is set to a large value and any padded neighbour a short jet must still take is
  masked out of the neighbour average), and excluded from the pooling: their values do not
  change the score.
- JetDNN (emj_dnn): forward(jet [B,6]) -> score [B,1]. An MLP.
- EventDeepSets (emj_event): forward(jets [B,8,6], mask [B,8]) -> score [B,1]. A per-jet MLP,
  masked mean + max + attention pooling, log(HT) and the jet count, an MLP.

Feature transforms are fixed functions (asinh/log scalings); the mean and standard deviation
after them are buffers set from the training data (set_standardisation).
"""

from typing import Tuple

import torch
from torch import nn

N_TRACKS = 64
N_TRACK_FEATURES = 8
N_JET_FEATURES = 6
N_EVENT_JETS = 8


def transform_tracks(x: torch.Tensor) -> torch.Tensor:
    """Raw track features (contract order) -> scaled features, same shape [..., 8].

    log(pt), deta, dphi, charge, d0 [mm], d0/d0Err, dz [mm], ip3d [mm]."""
    logpt = x[..., 0]
    deta = x[..., 1] * 10.0
    dphi = x[..., 2] * 10.0
    charge = x[..., 3]
    d0 = torch.asinh(x[..., 4] / 0.02)
    sig = torch.asinh(x[..., 5])
    dz = torch.asinh(x[..., 6] / 0.05)
    ip3d = torch.log10(torch.abs(x[..., 7]) + 1.0e-4)
    return torch.stack([logpt, deta, dphi, charge, d0, sig, dz, ip3d], dim=-1)


def transform_jets(x: torch.Tensor) -> torch.Tensor:
    """Raw jet features -> scaled: log(pt), eta, log1p(mass), log1p(nTrack), medianLogIp2d,
    alpha3d (contract order)."""
    logpt = x[..., 0]
    eta = x[..., 1]
    mass = torch.log1p(torch.clamp(x[..., 2], min=0.0))
    ntrk = torch.log1p(torch.clamp(x[..., 3], min=0.0))
    mlip = x[..., 4]
    alpha = x[..., 5]
    return torch.stack([logpt, eta, mass, ntrk, mlip, alpha], dim=-1)


class Standardise(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(torch.clamp(std, min=1.0e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _gather_neighbours(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B,N,C], idx [B,N,k] -> [B,N,k,C]."""
    b, n, c = x.shape
    k = idx.shape[2]
    base = torch.arange(b, device=x.device).view(b, 1, 1) * n
    flat = (idx + base).reshape(-1)
    return x.reshape(b * n, c).index_select(0, flat).view(b, n, k, c)


class EdgeConv(nn.Module):
    """h_i = relu(shortcut(x_i) + mean_{j in kNN(i), j real} mlp([x_i, x_j - x_i])).

    The first linear layer of the edge MLP is split, W [x_i, x_j - x_i] = (W_a - W_b) x_i +
    W_b x_j, so it runs per point and only its result is gathered per edge."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.k = k
        self.lin_self = nn.Linear(c_in, c_out)
        self.lin_nbr = nn.Linear(c_in, c_out, bias=False)
        self.lin2 = nn.Linear(c_out, c_out)
        self.shortcut = nn.Linear(c_in, c_out)

    def forward(self, pts: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # pts [B,N,D], x [B,N,C], mask [B,N] (1 real, 0 padded)
        n = x.shape[1]
        k = min(self.k, n)
        d = torch.cdist(pts, pts, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
        d = d + (1.0 - mask).unsqueeze(1) * 1.0e9  # padded points are never near
        idx = torch.topk(d, k, dim=2, largest=False, sorted=True)[1]  # [B,N,k]
        nmask = _gather_neighbours(mask.unsqueeze(2), idx)  # [B,N,k,1]
        a = self.lin_self(x) - self.lin_nbr(x)  # per point, for x_i
        bnb = _gather_neighbours(self.lin_nbr(x), idx)  # [B,N,k,C]
        h = torch.relu(a.unsqueeze(2) + bnb)
        h = torch.relu(self.lin2(h))
        h = (h * nmask).sum(dim=2) / torch.clamp(nmask.sum(dim=2), min=1.0)
        out = torch.relu(h + self.shortcut(x))
        return out * mask.unsqueeze(2)


def masked_mean_max(h: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """h [B,N,C], mask [B,N] -> mean and max over the real entries (0 when there are none)."""
    m = mask.unsqueeze(2)
    count = torch.clamp(m.sum(dim=1), min=1.0)
    mean = (h * m).sum(dim=1) / count
    mx = torch.where(m > 0.5, h, torch.full_like(h, -1.0e9)).max(dim=1)[0]
    any_real = (mask.sum(dim=1, keepdim=True) > 0.5)
    mx = torch.where(any_real, mx, torch.zeros_like(mx))
    return mean, mx


class TrackGNN(nn.Module):
    def __init__(self, k: int = 12, c1: int = 32, c2: int = 48, hidden: int = 64):
        super().__init__()
        self.norm = Standardise(N_TRACK_FEATURES)
        self.conv1 = EdgeConv(N_TRACK_FEATURES, c1, k)
        self.conv2 = EdgeConv(c1, c2, k)
        self.head = nn.Sequential(
            nn.Linear(2 * (c1 + c2) + 1, hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, 1))

    def logit(self, tracks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = (mask > 0.5).to(tracks.dtype)
        if tracks.shape[0] > 0:
            # Real tracks first (stable), then drop the slots past the longest jet of the
            # batch: the same score (padding does not count), less work (most jets have far
            # fewer than 64 tracks; the cost grows with slots x k and slots^2).
            order = torch.sort(m, dim=1, descending=True, stable=True)[1]
            n = max(1, int(m.sum(dim=1).max().item()))
            order = order[:, :n]
            m = torch.gather(m, 1, order)
            tracks = torch.gather(tracks, 1, order.unsqueeze(2).expand(-1, -1, tracks.shape[2]))
        raw = torch.where(m.unsqueeze(2) > 0.5, tracks, torch.zeros_like(tracks))
        x = self.norm(transform_tracks(raw)) * m.unsqueeze(2)
        pts = raw[:, :, 1:3]  # (deta, dphi)
        h1 = self.conv1(pts, x, m)
        h2 = self.conv2(h1, h1, m)
        h = torch.cat([h1, h2], dim=2)
        mean, mx = masked_mean_max(h, m)
        ntrk = torch.log1p(m.sum(dim=1, keepdim=True)) - 2.5
        return self.head(torch.cat([mean, mx, ntrk], dim=1))

    def forward(self, tracks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(tracks, mask))


class JetDNN(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.norm = Standardise(N_JET_FEATURES)
        self.net = nn.Sequential(
            nn.Linear(N_JET_FEATURES, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1))

    def logit(self, jet: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(transform_jets(jet)))

    def forward(self, jet: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(jet))


class EventDeepSets(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.norm = Standardise(N_JET_FEATURES)
        self.phi = nn.Sequential(
            nn.Linear(N_JET_FEATURES, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU())
        self.attn = nn.Linear(hidden, 1)
        self.rho = nn.Sequential(
            nn.Linear(3 * hidden + 2, hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, 1))

    def logit(self, jets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = (mask > 0.5).to(jets.dtype)
        raw = torch.where(m.unsqueeze(2) > 0.5, jets, torch.zeros_like(jets))
        h = self.phi(self.norm(transform_jets(raw))) * m.unsqueeze(2)
        mean, mx = masked_mean_max(h, m)
        a = self.attn(h).squeeze(2)
        a = torch.where(m > 0.5, a, torch.full_like(a, -1.0e9))
        w = torch.softmax(a, dim=1) * m
        att = (w.unsqueeze(2) * h).sum(dim=1)
        ht = (torch.exp(raw[:, :, 0]) * m).sum(dim=1, keepdim=True)
        loght = torch.log1p(ht) - 7.0
        njet = m.sum(dim=1, keepdim=True) / 4.0 - 1.0
        return self.rho(torch.cat([mean, mx, att, loght, njet], dim=1))

    def forward(self, jets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(jets, mask))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Constant-velocity Kalman filter for boxes, batched over tracks (numpy).

State per track (8,): cx, cy, w, h and their velocities, in source pixels per frame. Measurement (4,):
cx, cy, w, h. Process and measurement noise scale with the box size (as in SORT/ByteTrack/BoT-SORT),
so small and large objects are tracked alike.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_STD_POS = 1.0 / 20.0   # position noise, as a share of the box size
_STD_VEL = 1.0 / 160.0  # velocity noise, as a share of the box size

_F = np.eye(8, dtype=np.float64)
_F[:4, 4:] = np.eye(4)


def xyxy_to_cxcywh(xyxy: NDArray[np.floating]) -> NDArray[np.float64]:
    """(N, 4) [x1, y1, x2, y2] -> (N, 4) [cx, cy, w, h] float64."""
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2, wh], axis=1)


def cxcywh_to_xyxy(m: NDArray[np.floating]) -> NDArray[np.float32]:
    """(N, >=4) states or measurements [cx, cy, w, h, ...] -> (N, 4) float32 [x1, y1, x2, y2]."""
    m = np.asarray(m).reshape(-1, m.shape[-1])
    half = np.maximum(m[:, 2:4], 0) / 2
    return np.concatenate([m[:, :2] - half, m[:, :2] + half], axis=1).astype(np.float32)


def _size_std(wh: NDArray[np.float64], weight: float) -> NDArray[np.float64]:
    """(N, 2) box sizes -> (N, 4) std devs for [x, y, w, h]-like components."""
    s = np.maximum(wh, 1.0) * weight
    return np.concatenate([s, s], axis=1)


def initiate(boxes: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(N, 4) xyxy measurements -> means (N, 8) and covariances (N, 8, 8) with zero velocity."""
    z = xyxy_to_cxcywh(boxes)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    std = np.concatenate([_size_std(z[:, 2:], 2 * _STD_POS), _size_std(z[:, 2:], 10 * _STD_VEL)], axis=1)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std ** 2
    return mean, cov


# per-component weights of the process noise: position-like for [x, y, w, h], velocity-like for the rest
_Q_WEIGHTS = np.array([_STD_POS] * 4 + [_STD_VEL] * 4, np.float64)


def _add_diagonal(cov: NDArray[np.float64], values: NDArray[np.float64]) -> None:
    """cov[n, i, i] += values[n, i] in place for (N, k, k) cov (a strided view of the diagonals)."""
    n, k = cov.shape[0], cov.shape[1]
    if cov.flags.c_contiguous:
        cov.reshape(n, k * k)[:, ::k + 1] += values
    else:
        idx = np.arange(k)
        cov[:, idx, idx] += values


def predict(mean: NDArray[np.float64], cov: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One frame ahead for all tracks: means (N, 8), covariances (N, 8, 8) -> new arrays."""
    if len(mean) == 0:
        return mean, cov
    q_std = np.tile(np.maximum(mean[:, 2:4], 1.0), 4) * _Q_WEIGHTS  # = _size_std for POS then VEL
    mean = mean @ _F.T
    cov = _F @ cov @ _F.T
    _add_diagonal(cov, q_std * q_std)
    return mean, cov


def update(mean: NDArray[np.float64], cov: NDArray[np.float64], boxes: NDArray[np.floating]
           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Correct N tracks with N matched xyxy measurements (row i with row i) -> new means and covariances."""
    if len(mean) == 0:
        return mean, cov
    z = xyxy_to_cxcywh(boxes)
    r_std = _size_std(mean[:, 2:4], _STD_POS)
    # H = [I 0] selects the first 4 state components, so H P H^T, P H^T and H P are slices of P
    s = cov[:, :4, :4].copy()  # (N, 4, 4) innovation covariance
    _add_diagonal(s, r_std * r_std)
    pht = cov[:, :, :4]  # (N, 8, 4)
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1, S symmetric
    innov = z - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", gain, innov)
    cov = cov - gain @ cov[:, :4, :]
    return mean, cov

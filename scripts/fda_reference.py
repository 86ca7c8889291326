#!/usr/bin/env python3
"""Reference outputs of FDA (Yang & Soatto, CVPR 2020) for crates/t2s-data/src/fda.rs.

Reimplements the numpy path of the original code (`utils/__init__.py`: `low_freq_mutate_np` and
`FDA_source_to_target_np`) step by step: fft2 per channel, amplitude and phase, fftshift, replace
the source amplitude in rows/columns c-b .. c+b (inclusive; c = floor(n/2), b = floor(min(h, w)*L))
by the target's, ifftshift, recombine with the source phase, ifft2, real part. No clamping (t2s
clamps afterwards). Only numpy is needed:

    python3 scripts/fda_reference.py > crates/t2s-data/tests/fixtures/fda_reference.json
"""
import json

import numpy as np


def low_freq_mutate(amp_src, amp_trg, beta):
    a_src = np.fft.fftshift(amp_src, axes=(-2, -1))
    a_trg = np.fft.fftshift(amp_trg, axes=(-2, -1))
    _, h, w = a_src.shape
    b = np.floor(np.amin((h, w)) * beta).astype(int)
    c_h = np.floor(h / 2.0).astype(int)
    c_w = np.floor(w / 2.0).astype(int)
    a_src[:, c_h - b:c_h + b + 1, c_w - b:c_w + b + 1] = a_trg[:, c_h - b:c_h + b + 1, c_w - b:c_w + b + 1]
    return np.fft.ifftshift(a_src, axes=(-2, -1)), int(b)


def fda_source_to_target(src, trg, beta):
    f_src = np.fft.fft2(src, axes=(-2, -1))
    f_trg = np.fft.fft2(trg, axes=(-2, -1))
    amp_src, pha_src = np.abs(f_src), np.angle(f_src)
    amp_trg = np.abs(f_trg)
    amp_new, b = low_freq_mutate(amp_src, amp_trg, beta)
    out = np.fft.ifft2(amp_new * np.exp(1j * pha_src), axes=(-2, -1))
    return np.real(out), b


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    # (height, width, beta): odd/even and non-power-of-two sizes, b = 1, 2, 0 (DC only), 4 (the
    # whole spectrum of the 8-wide side) and 3.
    for h, w, beta in [(7, 10, 0.15), (16, 12, 0.2), (5, 6, 0.0), (9, 8, 0.5), (11, 13, 0.3)]:
        src = rng.integers(0, 256, size=(3, h, w)).astype(np.float64)
        # A target with different colour statistics, so the swap moves values out of [0, 255].
        trg = np.clip(rng.normal(180.0, 70.0, size=(3, h, w)), 0, 255).round()
        out, b = fda_source_to_target(src, trg, beta)
        cases.append({
            "height": h, "width": w, "beta": beta, "b": b,
            "source": src.ravel().tolist(),
            "target": trg.ravel().tolist(),
            "expected": [round(float(v), 5) for v in out.ravel()],
        })
    print(json.dumps(cases))


if __name__ == "__main__":
    main()

"""How close a converted variant's outputs are to the Keras model's, with the uncertainty of saying so.

Top-1 agreement on a few hundred images moves in steps of 1/N and is noisy; a budget decision on it
needs an interval. Beside it, continuous fidelity per output: KL(Keras ‖ variant) for probability
outputs (softmax applied to logits), cosine similarity and SNR for anything else. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

Z95 = 1.959963984540054
EPS = 1e-7


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_drop_interval(keras_right: np.ndarray, variant_right: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Interval of the accuracy drop (Keras − variant) on the same images: only discordant pairs vary."""
    n = len(keras_right)
    if n == 0:
        return -1.0, 1.0
    b = int(np.sum(keras_right & ~variant_right))   # Keras right, variant wrong
    c = int(np.sum(~keras_right & variant_right))
    d = (b - c) / n
    var = max((b + c) / n - d * d, 0.0) / n
    half = z * math.sqrt(var) + 1 / (2 * n)   # continuity: the drop moves in steps of 1/n
    return max(-1.0, d - half), min(1.0, d + half)


def _as_probs(y: np.ndarray) -> np.ndarray:
    """Rows as probabilities: kept when they already are, else a softmax of them (logits)."""
    y = y.reshape(len(y), -1).astype(np.float64)
    if np.all(y >= -1e-6) and np.allclose(y.sum(axis=1), 1.0, atol=2e-2):
        p = np.clip(y, 0.0, None)
    else:
        e = np.exp(y - y.max(axis=1, keepdims=True))
        p = e
    return p / np.maximum(p.sum(axis=1, keepdims=True), EPS)


def kl_per_sample(keras_out: np.ndarray, variant_out: np.ndarray) -> np.ndarray:
    """KL(Keras ‖ variant) per sample, in nats (quantized outputs may hold exact zeros: clipped at EPS)."""
    p, q = _as_probs(keras_out), _as_probs(variant_out)
    p, q = np.clip(p, EPS, 1.0), np.clip(q, EPS, 1.0)
    return np.sum(p * (np.log(p) - np.log(q)), axis=1)


def cosine_snr(keras_out: np.ndarray, variant_out: np.ndarray) -> tuple[float, float]:
    """Mean per-sample cosine similarity and the SNR in dB (signal: Keras' output, noise: the difference)."""
    cos_s, noise_s, signal_s, size = [], 0.0, 0.0, 0
    for ks, vs in zip(keras_out, variant_out):   # one sample at a time: maps of many images stay in float32
        k, v = ks.reshape(-1).astype(np.float64), vs.reshape(-1).astype(np.float64)
        norm = float(np.linalg.norm(k) * np.linalg.norm(v))
        cos_s.append(float(k @ v) / max(norm, 1e-30) if norm > 0 else 1.0)
        noise_s += float(np.sum((k - v) ** 2))
        signal_s += float(np.sum(k * k))
        size += k.size
    cos = np.asarray(cos_s)
    noise, signal = noise_s / max(size, 1), signal_s / max(size, 1)
    snr = 10 * math.log10(signal / noise) if noise > 0 and signal > 0 else (math.inf if noise == 0 else -math.inf)
    return float(np.mean(cos)), snr


CONSTANT_SPREAD = 1e-3   # outputs varying by less than this share of their magnitude across inputs are constant


def constant_outputs(keras_out: list[np.ndarray]) -> str | None:
    """A note when every output of the Keras model is (nearly) the same for every input, as with random or
    untrained weights; None when they vary. Comparing variants on such outputs measures noise."""
    n = len(keras_out[0]) if keras_out else 0
    if n < 2:
        return None
    parts = []
    for i, y in enumerate(keras_out):
        y = np.asarray(y, np.float64).reshape(n, -1)
        spread = float((y.max(axis=0) - y.min(axis=0)).max())
        scale = float(np.abs(y).max())
        if spread > CONSTANT_SPREAD * scale:
            return None
        parts.append(f"output {i} is the same for every input" if spread == 0 else
                     f"output {i} by at most {spread:.1e}" + (f" ({spread / scale:.1e} of its magnitude)" if scale else ""))
    return (f"the Keras model's outputs hardly vary across the {n} evaluation inputs ({'; '.join(parts)}): random or "
            "untrained weights? Agreement and fidelity against Keras mean little on them, so no int8 search "
            "(int8-ptq, int8-selective, int8-qat) runs")


def is_map(y: np.ndarray) -> bool:
    """A per-pixel output (N, H, W) or (N, H, W, 1): an edge, depth or saliency map."""
    return (y.ndim == 3 or (y.ndim == 4 and y.shape[-1] == 1)) and min(y.shape[1], y.shape[2]) >= 4


def map_fidelity(keras_out: np.ndarray, variant_out: np.ndarray) -> dict:
    """Pixels above a threshold in the variant's map against those in Keras's: F-score and IoU over all
    pixels of all images. The threshold is 0.5 for a map of probabilities in [0, 1], else Keras's mean."""
    k = keras_out.astype(np.float64)
    prob = float(k.min()) >= -1e-6 and float(k.max()) <= 1 + 1e-6
    t = 0.5 if prob else float(k.mean())
    a, b = k > t, variant_out.astype(np.float64) > t
    tp, fp, fn = int(np.sum(a & b)), int(np.sum(~a & b)), int(np.sum(a & ~b))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    return {"map_f1": round(f1, 6), "map_iou": round(iou, 6), "map_threshold": round(t, 6),
            "map_threshold_kind": "0.5 (probabilities)" if prob else "Keras's mean"}


def output_fidelity(variant_out: list[np.ndarray], keras_out: list[np.ndarray], classification: bool) -> dict:
    """Continuous fidelity of every output: KL for the classifier's probabilities, cosine/SNR for all, and the
    thresholded F-score/IoU of map outputs against Keras's."""
    per = []
    for i, (v, k) in enumerate(zip(variant_out, keras_out)):
        cos, snr = cosine_snr(k, v)
        entry = {"output": i, "cosine": round(cos, 6), "snr_db": round(snr, 2) if math.isfinite(snr) else None}
        if classification and i == 0:
            kl = kl_per_sample(k, v)
            entry.update(kl=float(np.mean(kl)), kl_p99=float(np.percentile(kl, 99)))
        elif not classification and is_map(k):
            entry.update(map_fidelity(k, v))
        per.append(entry)
    out = {"outputs": per}
    if classification:
        out["kl"] = per[0]["kl"]
        out["kl_p99"] = per[0]["kl_p99"]
    out["cosine"] = min(e["cosine"] for e in per)
    snrs = [e["snr_db"] for e in per if e["snr_db"] is not None]
    out["snr_db"] = min(snrs) if snrs else None
    maps = [e for e in per if "map_f1" in e]
    if maps:   # the worst map output speaks for the variant
        worst = min(maps, key=lambda e: e["map_f1"])
        out.update({k: worst[k] for k in ("map_f1", "map_iou", "map_threshold", "map_threshold_kind")})
    if not classification:
        out["rel_err"] = round(10 ** (-out["snr_db"] / 20), 6) if out["snr_db"] is not None else (
            0.0 if all(e["snr_db"] is None and e["cosine"] >= 1 - 1e-9 for e in per) else None)
    return out


def fidelity_loss(metrics: dict) -> float:
    """The continuous number a search minimises: mean KL for classifiers; for detection/segmentation the task
    metric's loss of fidelity to Keras's postprocessed results, with the outputs' noise-to-signal ratio as a
    tie-break (mAP moves in steps on a small set); else noise-to-signal ratio."""
    if metrics.get("task_fidelity") is not None:
        snr = metrics.get("snr_db")
        nsr = 10 ** (-snr / 10) if snr is not None else 1.0
        return (1.0 - float(metrics["task_fidelity"])) + 1e-3 * min(nsr, 1.0)
    if metrics.get("kl") is not None:   # the worse of the two input paths (evaluate.compare_bare): a gain must hold in both
        return max(float(metrics["kl"]), float(metrics.get("kl_bare") or 0.0))
    snr = metrics.get("snr_db")
    return 10 ** (-snr / 10) if snr is not None else math.inf


class Decision(StrEnum):
    FITS = "fits"
    MISSES = "misses"
    UNRESOLVED = "cannot resolve"



def pp(value: float, signed: bool = False) -> str:
    """A fraction in percentage points, the one unit of budgets and drops: 0.0123 → '1.23 pp'."""
    return f"{value * 100:+.2f} pp" if signed else f"{value * 100:.2f} pp"

@dataclass(frozen=True)
class Verdict:
    """Whether a measured loss (accuracy drop or disagreement) is within budget, given the evaluation size."""

    decision: Decision
    loss: float
    low: float
    high: float
    n: int
    budget: float
    n_needed: int | None = None
    measure: str = ""   # "" for a loss measured on images (accuracy, agreement); else what the loss is, in words

    @property
    def text(self) -> str:
        if self.measure:   # raw outputs: an error with no sampling interval, said in its own words
            return (f"{self.decision.value}: {self.measure} {self.loss:.2%} on {self.n} inputs against a budget of "
                    f"{self.budget:.2%}")
        half = (self.high - self.low) / 2
        head = (f"loss {pp(self.loss)} (95% interval {pp(self.low)} … {pp(self.high)}, ±{half * 100:.1f} pp on "
                f"{self.n} images; one image = {1 / max(self.n, 1) * 100:.2f} pp) against a budget of {pp(self.budget)}")
        if self.decision is Decision.UNRESOLVED:
            more = f"; an evaluation set of at least {self.n_needed} images would resolve it" if self.n_needed else ""
            return f"{self.n} images cannot resolve the budget: {head}{more}"
        return f"{self.decision.value}: {head}"

    def to_dict(self) -> dict:
        return {"decision": str(self.decision), "loss": self.loss, "low": round(self.low, 6), "high": round(self.high, 6),
                "n": self.n, "budget": self.budget, "n_needed": self.n_needed, "text": self.text,
                **({"measure": self.measure} if self.measure else {})}


def n_needed(loss: float, budget: float, z: float = Z95) -> int:
    """Images needed for a 95% interval around ``loss`` to exclude ``budget`` (or half the budget's width
    when they are equal)."""
    gap = abs(loss - budget) or budget / 2 or 0.005
    p = min(max(loss, budget, 1e-3), 0.5)
    return int(math.ceil(z * z * p * (1 - p) / (gap * gap)))


RAW_MEASURE = "relative RMS error of the outputs against Keras's (the worst output)"


def verdict(loss: float, interval: tuple[float, float], n: int, budget: float, measure: str = "") -> Verdict:
    """Fits when the whole interval is within budget, misses when it is all above, else cannot resolve.
    ``measure`` names a loss that is not a share of images (raw outputs: :data:`RAW_MEASURE`)."""
    low, high = interval
    if high <= budget + 1e-12:
        return Verdict(Decision.FITS, loss, low, high, n, budget, measure=measure)
    if low > budget + 1e-12:
        return Verdict(Decision.MISSES, loss, low, high, n, budget, measure=measure)
    need = n_needed(loss, budget)
    return Verdict(Decision.UNRESOLVED, loss, low, high, n, budget, need if need > n else None)

"""Record kinds and the shared constants and codec of the records that stages trade.

Every record type has a JSON Schema in the top-level ``manifests/`` folder. Per-token floats
(log-probs, entropies) are stored as ``"f16:" + base64(float16 little-endian)``.

    >>> decode_floats(encode_floats([0.5, 1.25]))
    [0.5, 1.25]

Encoding choice, measured on 9,176 SmolLM2-135M tokens (entropies up to 5.9 nats, logprobs down
to -10.7), bytes per value inside a JSONL record, raw / after zstd -3:
  JSON floats as printed   19.96 / 8.82      JSON rounded to 4 places   7.49 / 3.06
  JSON rounded to 3 places  6.49 / 2.32      float16 base64 (chosen)    2.88 / 1.99
float16 keeps a relative error <= 2**-11 (measured max 0.002 nats on entropies, 0.004 on
logprobs). Values beyond the float16 range (|x| > 65504) become +-inf; -inf stays -inf.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Sequence

# Records that repair writes and PURE scores; the order is the curriculum's default ``pure_kinds``.
CANDIDATE_KINDS = ("answer_guided", "repair")
# Answer-guided samples of easy problems: PURE's guided reference (``pure.reference: guided``),
# scored like candidates and never trained on.
GUIDED_REFERENCE = "guided_reference"
# field(metadata=OMIT_AT_DEFAULT): a setting added later is left out of run keys (and manifests)
# while it holds its default, so runs made before it existed keep their keys
OMIT_AT_DEFAULT = {"run_key": "omit_at_default"}
FLOAT_CODEC = "f16"  # prefix of every encoded string, so the format can change without ambiguity


def encode_floats(values: Sequence[float]) -> str:
    """Pack floats as 'f16:' + base64(float16 little-endian). Lossy: see the module docstring."""
    raw = struct.pack(f"<{len(values)}e", *(_clamp_f16(float(v)) for v in values))
    return f"{FLOAT_CODEC}:" + base64.b64encode(raw).decode("ascii")


def decode_floats(text: str) -> list[float]:
    """Inverse of encode_floats. Raises ValueError naming the problem on a malformed string."""
    codec, sep, payload = text.partition(":")
    if not sep or codec != FLOAT_CODEC:
        raise ValueError(f"encoded floats must start with {FLOAT_CODEC!r}: got {text[:20]!r}")
    raw = base64.b64decode(payload.encode("ascii"), validate=True)
    if len(raw) % 2:
        raise ValueError(f"encoded floats have an odd byte count ({len(raw)}); string is truncated")
    return list(struct.unpack(f"<{len(raw) // 2}e", raw))


def _clamp_f16(v: float) -> float:
    # struct raises OverflowError beyond the float16 range instead of rounding to inf.
    if v > 65504.0:
        return math.inf
    if v < -65504.0:
        return -math.inf
    return v

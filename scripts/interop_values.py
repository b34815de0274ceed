"""Values as JSON in the conventions of the interop fixtures (the wire-format vectors' manifest and the
MDS fixtures' expected.json): non-finite floats and -0 as strings, float16 as its bits, 64-bit
integers as strings. Shared by the fixture scripts (make-wire-vectors.py, make-mds-fixtures.py) and
the Python side of the interop tests, so all of them describe values the same way."""
import math

import numpy as np


def float_value(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0 and math.copysign(1.0, x) < 0:
        return "-0"
    return x


def json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return {"$float": float_value(v)}
    if isinstance(v, list):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return v


def flat_values(a):
    """An array's values, flattened row-major: float16 as its bits, floats via float_value,
    64-bit integers as strings, everything else (booleans included) as ints."""
    flat = a.reshape(-1)
    name = a.dtype.name
    if name == "float16":
        return [int(v) for v in flat.view(np.uint16)]
    if name in ("float32", "float64"):
        return [float_value(v) for v in flat]
    if name in ("int64", "uint64"):
        return [str(int(v)) for v in flat]
    return [int(v) for v in flat]


def ndarray_value(a):
    return {"dtype": a.dtype.name, "shape": list(a.shape), "values": flat_values(a)}

"""How a margin's value prints, in ``twin run``'s margins table and ``twin check``'s
(standard library only: ``twin check``'s own process judges and prints without the
engine, numpy or numba)."""
import math


def format_value(v: float, integer: bool = False) -> str:
    """A margin's value as tables print it: 3 decimals; a value that would print as 0.000
    or -0.000 but is not zero (a throttled GPU held a hair past its limit) in 2 significant
    digits, so that its sign and size can be read against its verdict."""
    if not math.isfinite(v):
        return "n/a"
    if integer:
        return f"{int(round(v))}"
    v = v + 0.0  # -0.0 prints as 0.000
    return f"{v:.1e}" if v != 0 and abs(v) < 5e-4 else f"{v:.3f}"

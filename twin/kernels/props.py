"""Table look-ups used by the kernels (uniform grids, linear interpolation, clamped)."""
import numpy as np
from .dispatch import kernel


@kernel(cache=True,
        aot="f8[::1](f8[:, ::1], i8, f8, f8, f8[::1])")
def interp_column(packed, row, t0, dt, temps):
    """Row ``row`` of a (property, temperature) table on a uniform grid at ``temps``."""
    n = packed.shape[1]
    out = np.empty(temps.shape[0])
    for i in range(temps.shape[0]):
        x = (temps[i] - t0) / dt
        if x <= 0.0:
            out[i] = packed[row, 0]
        elif x >= n - 1:
            out[i] = packed[row, n - 1]
        else:
            j = int(x)
            f = x - j
            out[i] = packed[row, j] * (1.0 - f) + packed[row, j + 1] * f
    return out


@kernel(cache=True,
        aot="f8[::1](f8[:, :, ::1], i8[::1], f8, f8, f8, f8, f8[::1], f8[:])")
def plate_ha(table, plate, logq0, dlogq, t0, dt, flow, temp):
    """Bilinear look-up of plate hA [W/K] in (temperature, log flow) for each chip."""
    nt, nq = table.shape[1], table.shape[2]
    out = np.empty(flow.shape[0])
    for i in range(flow.shape[0]):
        if flow[i] <= 0.0:
            out[i] = 0.0
            continue
        x = (np.log(flow[i]) - logq0) / dlogq
        y = (temp[i] - t0) / dt
        x = min(max(x, 0.0), nq - 1.000001)
        y = min(max(y, 0.0), nt - 1.000001)
        jx, jy = int(x), int(y)
        fx, fy = x - jx, y - jy
        p = plate[i]
        out[i] = ((table[p, jy, jx] * (1 - fx) + table[p, jy, jx + 1] * fx) * (1 - fy)
                  + (table[p, jy + 1, jx] * (1 - fx) + table[p, jy + 1, jx + 1] * fx) * fy)
    return out

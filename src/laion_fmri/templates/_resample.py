"""fsnative -> fsaverage barycentric resampling matrix (``SurfaceResampler``'s, vectorised).

``nitransforms.surface.SurfaceResampler(reference=fsaverage_sphere,
moving=subject_sphere_reg)`` scales both spheres to radius 100 (float32), and
for each reference vertex takes the 10 nearest moving vertices, every moving
triangle touching one of them, the triangle closest to the point (first
triangle index on a tie), and barycentric weights of the point's ray through
the origin in that triangle. ``apply`` divides each output vertex's weights by
their sum. It builds the matrix with a Python loop per vertex (minutes for
fsaverage7); :func:`resampling_matrix` computes the same weights in chunks of
NumPy arithmetic.
"""

from __future__ import annotations

import numpy as np

#: Nearest moving vertices whose triangles are searched (nitransforms' ``k``).
N_NEAREST = 10
_CHUNK = 2048


class NotASphereError(ValueError):
    """A surface given as a sphere is not spherical (nitransforms' 0.1 % tolerance)."""


def to_radius(coords: np.ndarray, radius: float = 100.0, what: str = "surface") -> np.ndarray:
    """Scale a sphere's vertices to ``radius`` in float32, as nitransforms does.

    Parameters
    ----------
    coords : numpy.ndarray
        ``(n, 3)`` vertex coordinates of a sphere centred on the origin.
    radius : float
        Target radius.
    what : str
        Name used in the error message.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, 3)``.

    Raises
    ------
    NotASphereError
        If the vertex norms vary by more than 0.1 %.

    Examples
    --------
    >>> import numpy as np
    >>> to_radius(np.array([[2.0, 0, 0], [0, 0, -2]])).tolist()
    [[100.0, 0.0, 0.0], [0.0, 0.0, -100.0]]
    """
    pts = np.asarray(coords, dtype=np.float32)
    dist = np.linalg.norm(pts, axis=1)
    if not dist.min() * 1.001 > dist.max():
        raise NotASphereError(
            f"{what} is not a sphere centred on the origin (vertex radii {dist.min():.3g} to "
            f"{dist.max():.3g}); pass a sphere such as surf/<h>.sphere.reg."
        )
    return pts * (np.float32(radius) / dist).reshape(-1, 1)


def _vertex_triangles(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """``(n_vertices, max_degree)`` triangle indices per vertex, ascending, padded with -1."""
    vert = faces.ravel()
    tri = np.repeat(np.arange(len(faces)), 3)
    order = np.lexsort((tri, vert))
    vert, tri = vert[order], tri[order]
    counts = np.bincount(vert, minlength=n_vertices)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(vert.size) - start[vert]
    table = np.full((n_vertices, max(int(counts.max()), 1)), -1, dtype=np.int64)
    table[vert, slot] = tri
    return table


def _closest_point_distance(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Squared-free Euclidean distance from each point to each of its candidate triangles.

    ``points`` is ``(n, 3)``, ``tris`` ``(n, m, 3, 3)``; the arithmetic follows
    nitransforms' ``_points_to_triangles`` (float32) so ties resolve the same.
    """
    with np.errstate(all="ignore"):
        p0, p1, p2 = tris[:, :, 0], tris[:, :, 1], tris[:, :, 2]
        e0 = p1 - p0
        e1 = p2 - p0
        a = np.einsum("...i,...i", e0, e0)
        b = np.einsum("...i,...i", e0, e1)
        c = np.einsum("...i,...i", e1, e1)
        det = a * c - b * b
        inv_det = 1.0 / det
        denom = a - 2 * b + c
        p = p0 - points[:, None, :]
        d = np.einsum("...i,...i", e0, p)
        e = np.einsum("...i,...i", e1, p)
        u = b * e - c * d
        v = b * d - a * e
        bd = b + d
        ce = c + e
        numer0 = (ce - bd) / denom
        numer1 = (c + e - b - d) / denom
        da = -d / a
        ec = -e / c
        m0 = u + v < det
        m1 = u < 0
        m2 = v < 0
        m3 = d < 0
        m4 = a + d > b + e
        m5 = ce > bd
        t0 = m0 & m1 & m2 & m3
        t1 = m0 & m1 & m2 & ~m3
        t2 = m0 & m1 & ~m2
        t3 = m0 & ~m1 & m2
        t4 = m0 & ~m1 & ~m2
        t5 = ~m0 & m1 & m5
        t6 = ~m0 & m1 & ~m5
        t7 = ~m0 & m2 & m4
        t8 = ~m0 & m2 & ~m4
        t9 = ~m0 & ~m1 & ~m2
        u = np.where(t0, np.clip(da, 0, 1), u)
        v = np.where(t0, 0, v)
        u = np.where(t1, 0, u)
        v = np.where(t1, 0, v)
        u = np.where(t2, 0, u)
        v = np.where(t2, np.clip(ec, 0, 1), v)
        u = np.where(t3, np.clip(da, 0, 1), u)
        v = np.where(t3, 0, v)
        u = u * np.where(t4, inv_det, 1)
        v = v * np.where(t4, inv_det, 1)
        u = np.where(t5, np.clip(numer0, 0, 1), u)
        v = np.where(t5, 1 - u, v)
        u = np.where(t6, 0, u)
        v = np.where(t6, 1, v)
        u = np.where(t7, np.clip(numer1, 0, 1), u)
        v = np.where(t7, 1 - u, v)
        u = np.where(t8, 1, u)
        v = np.where(t8, 0, v)
        u = np.where(t9, np.clip(numer1, 0, 1), u)
        v = np.where(t9, 1 - u, v)
        closest = p0 + u[..., None] * e0 + v[..., None] * e1
        diff = closest.astype(np.float64) - points[:, None, :].astype(np.float64)
        return np.sqrt((diff * diff).sum(axis=-1))


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Weights ``(n, 3)`` of each point's ray through the origin in its triangle."""
    pts = points.astype(np.float64)
    tri = corners.astype(np.float64)
    a = tri[:, 0]
    e1 = tri[:, 1] - a
    e2 = tri[:, 2] - a
    normal = np.cross(e1, e2)
    det = (pts * normal).sum(axis=1)
    det = np.where(det == 0, np.finfo(np.float64).tiny, det)
    u = (pts * np.cross(e2, a)).sum(axis=1) / det
    v = (pts * np.cross(a, e1)).sum(axis=1) / det
    return np.stack([1.0 - (u + v), u, v], axis=1)


def resampling_matrix(target_sphere: np.ndarray, source_sphere: np.ndarray,
                      source_faces: np.ndarray) -> object:
    """Sparse ``(n_target, n_source)`` matrix: source-surface values -> target vertices.

    Parameters
    ----------
    target_sphere : numpy.ndarray
        ``(n_target, 3)`` vertices of the output sphere (e.g. fsaverage5).
    source_sphere : numpy.ndarray
        ``(n_source, 3)`` vertices of the subject's registered sphere
        (``surf/<h>.sphere.reg``), in the same order as its white/pial surfaces.
    source_faces : numpy.ndarray
        ``(n_faces, 3)`` triangles of the source sphere.

    Returns
    -------
    scipy.sparse.csr_array
        float64; each row holds the barycentric weights of one target vertex,
        divided by their sum (``SurfaceResampler.apply(normalize="element")``).

    Raises
    ------
    NotASphereError
        If either surface is not a sphere.

    Examples
    --------
    >>> import numpy as np
    >>> sphere = np.array([[100.0, 0, 0], [0, 100, 0], [0, 0, 100], [-100, 0, 0]])
    >>> faces = np.array([[0, 1, 2], [1, 3, 2]])
    >>> resampling_matrix(sphere, sphere, faces).toarray().round(6).tolist()[0]
    [1.0, 0.0, 0.0, 0.0]
    """
    from scipy import sparse
    from scipy.spatial import KDTree

    ref = to_radius(target_sphere, what="the template sphere")
    mov = to_radius(source_sphere, what="the subject's sphere.reg")
    faces = np.asarray(source_faces, dtype=np.int64)
    table = _vertex_triangles(faces, len(mov))
    _, nearest = KDTree(mov).query(ref, k=min(N_NEAREST, len(mov)))
    nearest = nearest.reshape(len(ref), -1)
    n_ref = len(ref)
    chosen = np.empty(n_ref, dtype=np.int64)
    big = np.iinfo(np.int64).max
    for start in range(0, n_ref, _CHUNK):
        stop = min(start + _CHUNK, n_ref)
        cand = table[nearest[start:stop]].reshape(stop - start, -1)
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        dist = _closest_point_distance(ref[start:stop], mov[faces[safe]])
        dist = np.where(valid, dist, np.inf)
        best = dist.min(axis=1, keepdims=True)
        tie = valid & (dist == best)
        chosen[start:stop] = np.where(tie, cand, big).min(axis=1)
    corners = faces[chosen]
    weights = _barycentric(ref, mov[corners])
    rows = np.repeat(np.arange(n_ref), 3)
    mat = sparse.csr_array((weights.ravel(), (rows, corners.ravel())), shape=(n_ref, len(mov)))
    mat.sum_duplicates()
    mat.eliminate_zeros()
    total = np.asarray(mat.sum(axis=1)).ravel()
    scale = np.zeros_like(total)
    scale[total != 0] = 1.0 / total[total != 0]
    return sparse.csr_array(sparse.diags_array(scale) @ mat)


__all__ = [
    "N_NEAREST",
    "NotASphereError",
    "resampling_matrix",
    "to_radius",
]

"""Seeded generator of mid-sagittal T2-like (or T1-like) lumbar MR slices with complete 14-class labels.

Canonical orientation: rows run head -> feet, columns anterior -> posterior (anterior on the LEFT).
Label indices follow BianqueNet (spec 2.9): 0 background, 1 CSF, 2 L1, 3 L1/L2, 4 L2, ..., 10 L5,
11 L5/S1, 12 S1, 13 presacral fat.

Geometry is built in millimetres: each vertebral body is a rounded rectangle in its own frame
(u along the spine axis, caudal positive; v across it, posterior positive) deformed by wedging and
endplate concavity, then placed along a lordotic chain. Discs fill the space between the endplates
of neighbouring bodies, with a bright nucleus and a darker annulus whose contrast and height follow
a degeneration grade. The image is rendered at twice the output resolution and area-averaged
(partial volume); labels are rasterised on the output grid.

Ground truth per disc (``DiscTruth``):
* ``height_mm``: true mean central height = mean distance between the two endplates measured
  perpendicular to the disc axis A->P (A/P = mid-points of the anterior/posterior corner pairs),
  over the central 80 % of the axis (10 %..90 % from A). The spec's DH = A80 / WD_small equals
  0.8 x this value on a perfect mask.
* ``delta_si``: |nucleus - annulus| x 255 / CSF from the drawn (noise- and bias-free) intensities;
  this is what the spec's mode/second-peak ΔSI measures on a clean image whose grey scale is a
  zero-offset linear map of the signal.
* ``grade``: the grade whose ΔSI range (spec 5.9) contains ``delta_si``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from inference.synthetic.anatomy import (
    BODY_LABELS,
    DISC_LABELS,
    DISC_LEVELS,
    GRADE_DELTA_SI,
    LABEL_CSF,
    LABEL_FAT,
    LABEL_S1,
    Tissue,
    grade_from_delta_si,
    tissue_intensities,
)

_SHIFT = 4  # fixed-point bits for cv2.fillPoly
_SCALE = float(1 << _SHIFT)


@dataclass(frozen=True)
class PhantomOptions:
    """What to vary. Defaults give a realistic, augmented slice; ``clean()`` gives an exact one."""

    rows: int = 512
    cols: int = 512
    weighting: str = "T2"  # "T2" or "T1"
    fov_mm: tuple[float, float] = (260.0, 340.0)  # range the (square-pixel) field of view is drawn from
    noise_sigma: tuple[float, float] = (0.01, 0.035)  # Rician sigma relative to CSF signal
    bias_strength: float = 0.25  # peak-to-peak relative amplitude of the multiplicative coil bias
    rotation_deg: float = 6.0  # uniform +- range of an in-plane rotation of the whole anatomy
    contrast_jitter: float = 0.12  # relative jitter of each tissue's intensity (except disc/CSF truth)
    blur_sigma_px: tuple[float, float] = (0.0, 0.8)  # resolution variation (Gaussian blur of the image)
    texture: float = 0.06  # relative amplitude of smooth texture in soft tissue and marrow
    grades: tuple[int, ...] | None = None  # force the five disc grades (L1/L2..L5/S1); random if None
    lateral_mm: float = 0.0  # distance from the midline: narrower canal, smaller nuclei (para-sagittal)
    noise_seed: int | None = None  # separate noise realisation (same anatomy), e.g. per slice

    @staticmethod
    def clean(**kw: object) -> "PhantomOptions":
        """No noise, no bias, no rotation, no blur, no texture: measured values equal the truth."""
        base = dict(
            noise_sigma=(0.0, 0.0), bias_strength=0.0, rotation_deg=0.0, contrast_jitter=0.0,
            blur_sigma_px=(0.0, 0.0), texture=0.0,
        )
        base.update(kw)
        return PhantomOptions(**base)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DiscTruth:
    level: str  # "L1/L2" .. "L5/S1"
    label: int  # channel index 3, 5, 7, 9, 11
    grade: int  # 1 (best) .. 5
    height_mm: float  # true mean central height (see module docstring)
    width_mm: float  # |P - A| (corner-defined width, WD_small)
    delta_si: float  # |nucleus - annulus| * 255 / CSF from drawn intensities
    nucleus_intensity: float
    annulus_intensity: float
    anterior_mid: tuple[float, float]  # (row, col) in pixels of the output grid
    posterior_mid: tuple[float, float]


@dataclass(frozen=True)
class VertebraTruth:
    level: str  # "L1".."L5", "S1"
    label: int
    height_mm: float  # mean of anterior and posterior heights (corner to corner)
    depth_mm: float  # antero-posterior width


@dataclass(frozen=True)
class Phantom:
    image: np.ndarray = field(repr=False)  # float32 (rows, cols), CSF ~ 1.0 on T2
    labels: np.ndarray = field(repr=False)  # uint8 (rows, cols), 0..13
    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing)
    weighting: str
    csf_intensity: float  # drawn CSF signal (noise/bias free)
    discs: tuple[DiscTruth, ...]
    vertebrae: tuple[VertebraTruth, ...]
    seed: int
    rotation_deg: float


# ----------------------------------------------------------------------------------------------
# geometry helpers
# ----------------------------------------------------------------------------------------------


def _frame(phi: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis u (caudal) and normal v (posterior) for axis angle phi (radians from straight down,
    positive tilting the caudal direction toward posterior). Vectors are (x=col, y=row) in mm."""
    u = np.array([math.sin(phi), math.cos(phi)])
    v = np.array([math.cos(phi), -math.sin(phi)])
    return u, v


@dataclass(frozen=True)
class _Body:
    centre: np.ndarray  # (x, y) mm
    phi: float
    width: float  # along v (AP depth)
    h_ant: float
    h_post: float
    concavity: float
    radius: float

    def local_to_global(self, vv: np.ndarray, uu: np.ndarray) -> np.ndarray:
        u, v = _frame(self.phi)
        return self.centre[None, :] + uu[:, None] * u[None, :] + vv[:, None] * v[None, :]

    def half_height(self, vv: np.ndarray) -> np.ndarray:
        t = np.clip(vv / self.width + 0.5, 0.0, 1.0)  # 0 anterior .. 1 posterior
        return 0.5 * (self.h_ant * (1 - t) + self.h_post * t)

    def _concave(self, vv: np.ndarray) -> np.ndarray:
        x = np.clip(2 * vv / self.width, -1.0, 1.0)
        return self.concavity * (1 - x**2)

    def endplate(self, side: str, vv: np.ndarray) -> np.ndarray:
        """Global points of the superior ('sup') or inferior ('inf') endplate at local v values."""
        hh = self.half_height(vv)
        c = self._concave(vv)
        uu = (-hh + c) if side == "sup" else (hh - c)
        return self.local_to_global(vv, uu)

    def outline(self, n: int = 24) -> np.ndarray:
        """Closed outline (rounded corners) in global mm."""
        w2 = self.width / 2
        r = min(self.radius, 0.45 * min(self.h_ant, self.h_post), 0.45 * self.width)
        pts: list[np.ndarray] = []
        # superior endplate: anterior -> posterior, excluding rounded corners
        vv = np.linspace(-w2 + r, w2 - r, n)
        pts.append(self.endplate("sup", vv))
        # posterior-superior corner arc ... posterior side ... posterior-inferior arc
        pts.append(self._corner(w2, "sup", r, posterior=True))
        pts.append(self._corner(w2, "inf", r, posterior=True))
        vv = np.linspace(w2 - r, -w2 + r, n)
        pts.append(self.endplate("inf", vv))
        pts.append(self._corner(-w2, "inf", r, posterior=False))
        pts.append(self._corner(-w2, "sup", r, posterior=False))
        return np.concatenate(pts, axis=0)

    def _corner(self, vedge: float, side: str, r: float, posterior: bool) -> np.ndarray:
        hh = float(self.half_height(np.array([vedge]))[0])
        ucorner = -hh if side == "sup" else hh
        # arc centre inside the body
        cv_ = vedge - r if posterior else vedge + r
        cu = ucorner + r if side == "sup" else ucorner - r
        # angles in (v,u) plane; choose quarter arc ordered along a clockwise-ish traversal
        if posterior and side == "sup":
            a = np.linspace(-math.pi / 2, 0.0, 6)
        elif posterior and side == "inf":
            a = np.linspace(0.0, math.pi / 2, 6)
        elif not posterior and side == "inf":
            a = np.linspace(math.pi / 2, math.pi, 6)
        else:
            a = np.linspace(math.pi, 1.5 * math.pi, 6)
        vv = cv_ + r * np.cos(a)
        uu = cu + r * np.sin(a)
        return self.local_to_global(vv, uu)

    def corner_points(self) -> dict[str, np.ndarray]:
        w2 = self.width / 2
        e = np.array([-w2, w2])
        sup = self.endplate("sup", e)
        inf = self.endplate("inf", e)
        return {"as": sup[0], "ps": sup[1], "ai": inf[0], "pi": inf[1]}


def _rot(points: np.ndarray, centre: np.ndarray, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    d = points - centre
    return np.stack([centre[0] + c * d[:, 0] - s * d[:, 1], centre[1] + s * d[:, 0] + c * d[:, 1]], axis=1)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _fill(canvas: np.ndarray, pts_px: np.ndarray, value: int) -> None:
    p = np.round(pts_px * _SCALE).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [p], int(value), lineType=cv2.LINE_8, shift=_SHIFT)


_LABEL_SUPERSAMPLING = 8


def _fill_by_area(canvas: np.ndarray, pts_px: np.ndarray, value: int) -> None:
    """Paint ``value`` into every pixel that the polygon covers by at least half its area.

    ``cv2.fillPoly`` on the output grid paints every pixel the outline touches, so each shape comes
    out about half a pixel too big on every side (a disc drawn between two bodies then ends up one
    pixel thinner than its drawn height). The label map is the ground truth of the phantom, so it is
    rasterised by area instead: the polygon is filled on an 8x finer grid over its bounding box (pixel
    centres at integer coordinates on both grids) and each output pixel takes the covered fraction.
    """
    k = _LABEL_SUPERSAMPLING
    pts = np.asarray(pts_px, dtype=np.float64).reshape(-1, 2)
    rows, cols = canvas.shape[:2]
    x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, cols)
    y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, rows)
    if x1 <= x0 or y1 <= y0:
        return
    fine = np.zeros(((y1 - y0) * k, (x1 - x0) * k), np.uint8)
    local = (pts - np.array([x0, y0], dtype=np.float64) + 0.5) * k - 0.5
    _fill(fine, local, 1)
    covered = fine.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3)) >= 0.5
    canvas[y0:y1, x0:x1][covered] = value


def _offset_curve(points: np.ndarray, dist: float) -> np.ndarray:
    """Offset a polyline (x, y) by ``dist`` along its left-hand normal rotated to point posterior."""
    d = np.gradient(points, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    n = np.stack([d[:, 1], -d[:, 0]], axis=1)  # for a curve going down (+y), n points to +x (posterior)
    return points + dist * n


def _heights_along_axis(upper: np.ndarray, lower: np.ndarray, a: np.ndarray, p: np.ndarray) -> float:
    """Mean perpendicular distance between two endplate polylines over 10 %..90 % of A->P."""
    ax = p - a
    length = float(np.linalg.norm(ax))
    e = ax / length
    f = np.array([-e[1], e[0]])
    def proj(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = c - a
        s, t = d @ e, d @ f
        order = np.argsort(s)
        return s[order], t[order]
    su, tu = proj(upper)
    sl, tl = proj(lower)
    s = np.linspace(0.1 * length, 0.9 * length, 161)
    h = np.abs(np.interp(s, sl, tl) - np.interp(s, su, tu))
    return float(h.mean())


# ----------------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------------


def generate_phantom(seed: int = 0, options: PhantomOptions | None = None) -> Phantom:
    """Generate one mid-sagittal lumbar slice. Same seed and options -> identical output."""
    opt = options or PhantomOptions()
    if opt.weighting not in ("T2", "T1"):
        raise ValueError(f"weighting must be 'T2' or 'T1', not {opt.weighting!r}")
    rng = np.random.default_rng(seed)
    rows, cols = opt.rows, opt.cols
    fov = float(rng.uniform(*opt.fov_mm))
    spacing = fov / max(rows, cols)

    # --- disc grades and intensities -------------------------------------------------------------
    if opt.grades is not None:
        if len(opt.grades) != 5 or any(g not in (1, 2, 3, 4, 5) for g in opt.grades):
            raise ValueError("grades must be five integers 1..5 (L1/L2..L5/S1)")
        grades = tuple(int(g) for g in opt.grades)
    else:
        base = rng.uniform(0.0, 2.5)
        grades = tuple(int(np.clip(round(1 + base + 0.35 * k + rng.normal(0, 0.8)), 1, 5)) for k in range(5))
    inten = tissue_intensities(opt.weighting, rng, opt.contrast_jitter, grades)
    csf_i = inten[Tissue.CSF]

    # --- build the vertebral chain (mm, image centre at origin later) ---------------------------
    n_body = 6  # L1..L5, S1
    phis = np.deg2rad(np.array([-14, -8, -2, 5, 14, 34]) + rng.normal(0, 2.5, 6) + rng.uniform(-4, 4))
    heights = rng.uniform(24, 29, 6)
    heights[5] = rng.uniform(26, 31)
    widths = np.linspace(1.0, 1.08, 6) * rng.uniform(33, 42)
    widths[5] = widths[4] * rng.uniform(0.95, 1.08)
    wedge = np.array([-1.5, -1.0, -0.5, 0.3, 2.0, 3.0]) + rng.normal(0, 0.7, 6)  # h_ant - h_post
    disc_h = np.array([
        _disc_height_mm(g, k, rng) for k, g in enumerate(grades)
    ])
    bodies: list[_Body] = []
    centre = np.array([0.0, 0.0])
    for k in range(n_body):
        h = heights[k]
        body = _Body(
            centre=centre.copy(), phi=float(phis[k]), width=float(widths[k]),
            h_ant=float(h + wedge[k] / 2), h_post=float(h - wedge[k] / 2),
            concavity=float(rng.uniform(0.6, 1.8)), radius=float(rng.uniform(2.0, 3.5)),
        )
        if k == 5:  # S1: flat top, no inferior concavity matter
            body = _Body(body.centre, body.phi, body.width, body.h_ant, body.h_post, 0.4, body.radius)
        bodies.append(body)
        if k < n_body - 1:
            u_k, _ = _frame(phis[k])
            u_n, _ = _frame(phis[k + 1])
            u_m = (u_k + u_n) / np.linalg.norm(u_k + u_n)
            centre = centre + u_k * (h / 2) + u_m * disc_h[k] + u_n * (heights[k + 1] / 2)

    # position the chain in the image: L3 slightly above centre, bodies in the anterior half
    all_pts = np.concatenate([b.outline() for b in bodies])
    lo, hi = all_pts.min(0), all_pts.max(0)
    span_y = hi[1] - lo[1]
    fov_x, fov_y = cols * spacing, rows * spacing
    x_shift = fov_x * rng.uniform(0.33, 0.43) - (lo[0] + hi[0]) / 2
    y_shift = (fov_y - span_y) * rng.uniform(0.25, 0.45) - lo[1]
    shift = np.array([x_shift, y_shift])
    rot = math.radians(rng.uniform(-opt.rotation_deg, opt.rotation_deg)) if opt.rotation_deg > 0 else 0.0
    rot_c = np.array([fov_x / 2, fov_y / 2])

    def place(p_mm: np.ndarray) -> np.ndarray:
        q = p_mm + shift
        return _rot(q, rot_c, rot) if rot != 0.0 else q

    # --- rasterise ----------------------------------------------------------------------------------
    ss = 2
    tis = np.full((rows * ss, cols * ss), int(Tissue.MUSCLE), np.uint8)
    lab = np.zeros((rows, cols), np.uint8)

    def to_hr(p_mm: np.ndarray) -> np.ndarray:
        return place(p_mm) / spacing * ss + (ss - 1) / 2.0

    def to_lr(p_mm: np.ndarray) -> np.ndarray:
        return place(p_mm) / spacing

    def draw(p_mm: np.ndarray, tissue: Tissue | None, label: int | None) -> None:
        if tissue is not None:
            _fill(tis, to_hr(p_mm), int(tissue))
        if label is not None:
            _fill_by_area(lab, to_lr(p_mm), label)

    # body wall: subcutaneous fat posteriorly and anteriorly, abdominal contents anterior
    yy = np.array([-0.2 * fov_y, 1.2 * fov_y]) - shift[1]
    def band(x0: float, x1: float) -> np.ndarray:
        return np.array([[x0, yy[0]], [x1, yy[0]], [x1, yy[1]], [x0, yy[1]]]) - np.array([shift[0], 0])
    skin_post = fov_x * rng.uniform(0.9, 1.1)
    draw(band(-0.2 * fov_x, fov_x * rng.uniform(0.05, 0.12)), Tissue.FAT, None)
    draw(band(fov_x * rng.uniform(0.08, 0.14), lo[0] + shift[0] - 8), Tissue.BOWEL, None)
    draw(band(skin_post - 14, skin_post), Tissue.FAT, None)
    draw(band(skin_post, 1.3 * fov_x), Tissue.AIR, None)

    # spinal canal and posterior elements follow the posterior surface of the bodies
    post_pts = []
    for b in bodies[:5]:
        c = b.corner_points()
        post_pts += [c["ps"], (c["ps"] + c["pi"]) / 2, c["pi"]]
    b5 = bodies[5]
    c5 = b5.corner_points()
    post_pts += [c5["ps"], (c5["ps"] + c5["pi"]) / 2, c5["pi"]]
    post = np.array(post_pts)
    # extend above L1 and below S1 along the end directions
    up = post[0] - post[1]
    up /= np.linalg.norm(up)
    dn = post[-1] - post[-2]
    dn /= np.linalg.norm(dn)
    post = np.concatenate([post[:1] + up[None] * np.array([[80.0], [40.0]]), post, post[-1:] + dn[None] * 12.0])
    post = cv2.GaussianBlur(post.reshape(-1, 1, 2).astype(np.float64), (1, 5), 0).reshape(-1, 2)
    gap = rng.uniform(1.2, 2.2)
    canal_w = rng.uniform(12.0, 17.0)
    off = abs(opt.lateral_mm)
    lateral = math.sqrt(max(0.0, 1.0 - (off / 11.0) ** 2))  # canal half-chord at that offset
    canal_w = max(canal_w * lateral, 1.0)
    ant_wall = _offset_curve(post, gap)
    post_wall = _offset_curve(post, gap + canal_w)
    # taper the thecal sac at the bottom (ends around S2)
    post_wall[-2:] = _offset_curve(post, gap + canal_w * 0.45)[-2:]
    lamina = _offset_curve(post, gap + canal_w + rng.uniform(14, 20))
    # posterior elements: a dark-intermediate band with bright fat between spinous processes
    draw(np.concatenate([post_wall, lamina[::-1]]), Tissue.POSTERIOR, None)
    for b in bodies[:6]:
        c = b.corner_points()
        mid = (c["ps"] + c["pi"]) / 2
        _, vdir = _frame(b.phi)
        udir, _ = _frame(b.phi)
        sp0 = mid + vdir * (gap + canal_w + 6)
        sp = np.array([
            sp0 - udir * 9, sp0 - udir * 11 + vdir * 30, sp0 + udir * 5 + vdir * 32, sp0 + udir * 9,
        ])
        draw(sp, Tissue.POSTERIOR, None)
    # epidural fat/ligament gap is drawn dark (ligament) by the canal band's anterior offset
    draw(np.concatenate([_offset_curve(post, 0.0), ant_wall[::-1]]), Tissue.LIGAMENT, None)
    canal = np.concatenate([ant_wall, post_wall[::-1]])
    draw(canal, Tissue.CSF, LABEL_CSF)
    # conus medullaris in the upper canal (labelled CSF as part of the thecal sac, like SPIDER's canal)
    cord_end = rng.integers(1, 4)  # ends at L1..L2 level
    cord_mid = _offset_curve(post[: 2 + 3 * cord_end], gap + canal_w * 0.5)
    cw = canal_w * 0.3
    cord = np.concatenate([_offset_curve(cord_mid, -cw / 2)[:-1], cord_mid[-1:], _offset_curve(cord_mid, cw / 2)[:-1][::-1]])
    draw(cord, Tissue.CORD, None)

    # sacrum below S1 (bone, unlabelled) and presacral fat anterior to it
    u5, v5 = _frame(b5.phi)
    s1_inf_a, s1_inf_p = c5["ai"], c5["pi"]
    phi_s = b5.phi + math.radians(rng.uniform(15, 30))
    u6, v6 = _frame(phi_s)
    sac_len = rng.uniform(45, 60)
    sac = np.array([
        s1_inf_a + u5 * 1.0, s1_inf_p + u5 * 1.0,
        s1_inf_p + u6 * sac_len * 0.9 - v6 * 8, s1_inf_a + u6 * sac_len + v6 * b5.width * 0.55,
    ])
    draw(sac, Tissue.MARROW, None)
    # presacral fat: anterior to the S1 body and upper sacrum
    fat_th = rng.uniform(6, 14)
    fat = np.array([
        c5["as"] - v5 * 2.0 + u5 * 4.0,
        s1_inf_a - v5 * 1.0,
        s1_inf_a + u6 * sac_len * 0.8 + v6 * b5.width * 0.4 - v6 * 1.0,
        s1_inf_a + u6 * sac_len * 0.7 + v6 * b5.width * 0.2 - v6 * fat_th * 1.2,
        s1_inf_a - v5 * fat_th,
        c5["as"] - v5 * fat_th * 0.6 + u5 * 8.0,
    ])
    draw(fat, Tissue.FAT, LABEL_FAT)

    # discs: between the inferior endplate of body k and the superior endplate of body k+1
    disc_truth: list[DiscTruth] = []
    for k in range(5):
        up_b, lo_b = bodies[k], bodies[k + 1]
        cu, cl = up_b.corner_points(), lo_b.corner_points()
        bulge = 0.8 + 0.5 * grades[k] + rng.uniform(0, 1.0)
        vv_u = np.linspace(-up_b.width / 2 - 0.6, up_b.width / 2 + 0.6, 30)
        vv_l = np.linspace(lo_b.width / 2 + 0.6, -lo_b.width / 2 - 0.6, 30)
        upper = up_b.endplate("inf", vv_u)
        lower = lo_b.endplate("sup", vv_l)
        a_mid = (cu["ai"] + cl["as"]) / 2
        p_mid = (cu["pi"] + cl["ps"]) / 2
        axis = (p_mid - a_mid) / np.linalg.norm(p_mid - a_mid)
        ant_bulge = a_mid - axis * bulge
        post_bulge = p_mid + axis * bulge * 0.7
        outline = np.concatenate([upper, [post_bulge], lower, [ant_bulge]])
        label = DISC_LABELS[k]
        draw(outline, Tissue.ANNULUS, label)
        # nucleus: an ellipse in the disc's central part
        mid = (a_mid + p_mid) / 2 + axis * rng.uniform(0.0, 2.5)
        dlen = float(np.linalg.norm(p_mid - a_mid))
        hgt = _heights_along_axis(upper, lower, a_mid, p_mid)
        ang = math.degrees(math.atan2(axis[1], axis[0]))
        shrink = math.sqrt(max(0.05, 1.0 - (off / 25.0) ** 2))
        nuc_frac = (0.62 - 0.03 * grades[k]) * shrink
        nuc_h = max(hgt * (0.62 - 0.04 * grades[k]) * shrink, 1.5)
        nuc = cv2.ellipse2Poly((0, 0), (1000, 1000), 0, 0, 360, 10).astype(np.float64) / 1000.0
        ca, sa = math.cos(math.radians(ang)), math.sin(math.radians(ang))
        ex = nuc[:, 0] * dlen * nuc_frac / 2
        ey = nuc[:, 1] * nuc_h / 2
        nuc_pts = np.stack([mid[0] + ca * ex - sa * ey, mid[1] + sa * ex + ca * ey], axis=1)
        _fill(tis, to_hr(nuc_pts), int(Tissue.NUCLEUS_L1L2) + k)
        a_px = to_lr(a_mid[None])[0]
        p_px = to_lr(p_mid[None])[0]
        n_i = inten[Tissue(int(Tissue.NUCLEUS_L1L2) + k)]
        disc_truth.append(DiscTruth(
            level=DISC_LEVELS[k], label=label, grade=grades[k], height_mm=hgt, width_mm=dlen,
            delta_si=0.0, nucleus_intensity=n_i, annulus_intensity=inten[Tissue.ANNULUS],
            anterior_mid=(float(a_px[1]), float(a_px[0])), posterior_mid=(float(p_px[1]), float(p_px[0])),
        ))

    # vertebral bodies over the discs: cortex rim then marrow
    vert_truth: list[VertebraTruth] = []
    for k, b in enumerate(bodies):
        out = b.outline()
        draw(out, Tissue.CORTEX, BODY_LABELS[k])
        inner = _Body(b.centre, b.phi, b.width - 2.2, b.h_ant - 2.2, b.h_post - 2.2, b.concavity, max(b.radius - 1.1, 0.5))
        _fill(tis, to_hr(inner.outline()), int(Tissue.MARROW))
        vert_truth.append(VertebraTruth(
            level=("L1", "L2", "L3", "L4", "L5", "S1")[k], label=BODY_LABELS[k],
            height_mm=(b.h_ant + b.h_post) / 2, depth_mm=b.width,
        ))
    # S1/S2 remnant disc line (dark, unlabelled) just below S1
    remnant = np.array([s1_inf_a - v5 * 0.5, s1_inf_p + v5 * 0.5, s1_inf_p + u5 * 1.2 + v5 * 0.5, s1_inf_a + u5 * 1.2 - v5 * 0.5])
    draw(remnant, Tissue.CORTEX, None)

    # --- intensities ----------------------------------------------------------------------------------
    lut = np.zeros(256, np.float32)
    for t, val in inten.items():
        lut[int(t)] = val
    img_hr = lut[tis]
    if opt.texture > 0:
        tex = _smooth_noise(rng, img_hr.shape, 24) * opt.texture
        tex_mask = np.isin(tis, [int(Tissue.MUSCLE), int(Tissue.MARROW), int(Tissue.BOWEL), int(Tissue.POSTERIOR), int(Tissue.FAT)])
        img_hr = np.where(tex_mask, img_hr * (1.0 + tex), img_hr)
    img = cv2.resize(img_hr, (cols, rows), interpolation=cv2.INTER_AREA)
    # bias field
    if opt.bias_strength > 0:
        yy_, xx_ = np.mgrid[0:rows, 0:cols].astype(np.float32)
        yy_ = yy_ / rows - 0.5
        xx_ = xx_ / cols - 0.5
        c = rng.normal(0, 1, 5)
        field_ = c[0] * xx_ + c[1] * yy_ + c[2] * xx_ * yy_ + c[3] * xx_**2 + c[4] * yy_**2
        field_ = field_ / (np.ptp(field_) + 1e-6) * opt.bias_strength
        img = img * (1.0 + field_ - field_.mean())
    sig = rng.uniform(*opt.blur_sigma_px)
    if sig > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sig)
    noise = rng.uniform(*opt.noise_sigma) * csf_i
    if noise > 0:
        nrng = rng if opt.noise_seed is None else np.random.default_rng(opt.noise_seed)
        n1 = nrng.standard_normal(img.shape).astype(np.float32) * noise
        n2 = nrng.standard_normal(img.shape).astype(np.float32) * noise
        img = np.sqrt((img + n1) ** 2 + n2**2)
    img = np.clip(img, 0.0, None).astype(np.float32)

    discs = tuple(
        DiscTruth(
            level=d.level, label=d.label, grade=grade_from_delta_si(_dsi(d, csf_i)), height_mm=d.height_mm,
            width_mm=d.width_mm, delta_si=_dsi(d, csf_i), nucleus_intensity=d.nucleus_intensity,
            annulus_intensity=d.annulus_intensity, anterior_mid=d.anterior_mid, posterior_mid=d.posterior_mid,
        )
        for d in disc_truth
    )
    return Phantom(
        image=img, labels=lab, pixel_spacing_mm=(spacing, spacing), weighting=opt.weighting,
        csf_intensity=csf_i, discs=discs, vertebrae=tuple(vert_truth), seed=seed,
        rotation_deg=math.degrees(rot),
    )


def _dsi(d: DiscTruth, csf: float) -> float:
    return abs(d.nucleus_intensity - d.annulus_intensity) * 255.0 / csf


def _disc_height_mm(grade: int, k: int, rng: np.random.Generator) -> float:
    """Nominal central disc height for a grade (L1/L2 thinnest, L4/L5 thickest when healthy)."""
    healthy = (8.5, 9.5, 10.5, 11.5, 11.0)[k]
    factor = (1.0, 0.93, 0.83, 0.70, 0.55)[grade - 1]
    return float(healthy * factor * rng.uniform(0.94, 1.06))


__all__ = [
    "DiscTruth", "Phantom", "PhantomOptions", "VertebraTruth", "generate_phantom", "GRADE_DELTA_SI",
]

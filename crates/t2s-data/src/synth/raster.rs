//! Rasterisation: the canvas (label, colour and depth per pixel) and the few fills everything is
//! drawn with (convex polygons, 3-D faces clipped at the near plane, ellipses, rings).
//!
//! A pixel belongs to a shape when its centre lies inside the shape, and a fill writes the label
//! and the colour of the same pixels at once: the label map is exact for the rendered image by
//! construction. Anti-aliasing and blur happen later, on the image only (`sensor`). Scenes are
//! drawn back to front (painter's algorithm), so later fills overwrite earlier ones.

use super::projection::{Camera, NEAR};

/// How a fill computes the depth it records per pixel (used for haze).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Depth {
    /// The same depth everywhere (faces facing the camera, billboards).
    Const(f32),
    /// A vertical plane `x = const` (side walls of buildings and vehicles).
    XPlane(f32),
    /// A horizontal plane `y = const` (roofs, undersides).
    YPlane(f32),
}

/// Label, colour (linear 0..1 RGB before the sensor) and depth of every pixel, row-major.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    /// The camera the scene is drawn with.
    pub cam: Camera,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Train id per pixel.
    pub label: Vec<u8>,
    /// Colour per pixel.
    pub color: Vec<[f32; 3]>,
    /// Distance along the view axis per pixel, metres (infinite for the sky).
    pub depth: Vec<f32>,
}

/// The pixel columns whose centres lie in `[left, right)`, clipped to `0..width`.
#[inline]
fn span(left: f32, right: f32, width: usize) -> (usize, usize) {
    // Float-to-int casts saturate, so far-off-screen coordinates clamp safely.
    let c0 = (left - 0.5).ceil().max(0.0) as usize;
    let c1 = ((right - 0.5).ceil().max(0.0) as usize).min(width);
    (c0, c1)
}

/// The pixel rows whose centres lie in `[top, bottom)`, clipped to `0..height`.
#[inline]
fn rows(top: f32, bottom: f32, height: usize) -> std::ops::Range<usize> {
    let (r0, r1) = span(top, bottom, height);
    r0..r1.max(r0)
}

impl Canvas {
    /// A canvas of the camera's size; every pixel is expected to be painted by the background.
    pub(crate) fn new(cam: Camera, width: usize, height: usize) -> Self {
        let n = width * height;
        Self { cam, width, height, label: vec![0; n], color: vec![[0.0; 3]; n], depth: vec![f32::INFINITY; n] }
    }

    #[inline]
    fn depth_at(&self, d: Depth, col: usize, row: usize) -> f32 {
        match d {
            Depth::Const(z) => z,
            Depth::XPlane(x) => self.cam.depth_on_x_plane(col as f32 + 0.5, x),
            Depth::YPlane(y) => self.cam.depth_on_y_plane(row as f32 + 0.5, y),
        }
    }

    /// Writes columns `c0..c1` of one row.
    #[inline]
    fn put_span(&mut self, row: usize, c0: usize, c1: usize, label: u8, color: [f32; 3], depth: Depth) {
        if c0 >= c1 {
            return;
        }
        let base = row * self.width;
        for col in c0..c1 {
            let z = self.depth_at(depth, col, row);
            let i = base + col;
            self.label[i] = label;
            self.color[i] = color;
            self.depth[i] = z;
        }
    }

    /// Fills a convex polygon given in pixel coordinates (any winding, at least 3 vertices).
    pub(crate) fn fill_convex(&mut self, pts: &[(f32, f32)], label: u8, color: [f32; 3], depth: Depth) {
        if pts.len() < 3 {
            return;
        }
        let top = pts.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
        let bottom = pts.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
        if !(top.is_finite() && bottom.is_finite()) {
            return;
        }
        for row in rows(top, bottom, self.height) {
            let yc = row as f32 + 0.5;
            let (mut left, mut right) = (f32::INFINITY, f32::NEG_INFINITY);
            for (k, a) in pts.iter().enumerate() {
                let b = pts[(k + 1) % pts.len()];
                // Half-open in y so that a vertex on the scanline is counted once per side.
                if (a.1 <= yc && yc < b.1) || (b.1 <= yc && yc < a.1) {
                    let x = a.0 + (yc - a.1) * (b.0 - a.0) / (b.1 - a.1);
                    left = left.min(x);
                    right = right.max(x);
                }
            }
            if left < right {
                let (c0, c1) = span(left, right, self.width);
                self.put_span(row, c0, c1, label, color, depth);
            }
        }
    }

    /// Fills a planar convex face given in world coordinates, clipped to `z >= NEAR`.
    pub(crate) fn fill_face(&mut self, face: &[[f32; 3]], label: u8, color: [f32; 3], depth: Depth) {
        // Sutherland–Hodgman against the near plane; a quad gains at most one vertex per clip.
        let mut clipped = [(0.0f32, 0.0f32); 8];
        let mut n = 0;
        for (k, &a) in face.iter().enumerate() {
            let b = face[(k + 1) % face.len()];
            let (ina, inb) = (a[2] >= NEAR, b[2] >= NEAR);
            if ina && n < clipped.len() {
                clipped[n] = self.cam.project(a);
                n += 1;
            }
            if ina != inb && n < clipped.len() {
                let t = (NEAR - a[2]) / (b[2] - a[2]);
                let p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), NEAR];
                clipped[n] = self.cam.project(p);
                n += 1;
            }
        }
        self.fill_convex(&clipped[..n], label, color, depth);
    }

    /// Fills the quad of a segment from `a` to `b` (pixel coordinates) `thickness` pixels wide.
    pub(crate) fn fill_segment(&mut self, a: (f32, f32), b: (f32, f32), thickness: f32, label: u8, color: [f32; 3], depth: Depth) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len <= 0.0 {
            return;
        }
        let (nx, ny) = (-dy / len * thickness * 0.5, dx / len * thickness * 0.5);
        let quad = [(a.0 + nx, a.1 + ny), (b.0 + nx, b.1 + ny), (b.0 - nx, b.1 - ny), (a.0 - nx, a.1 - ny)];
        self.fill_convex(&quad, label, color, depth);
    }

    /// Fills the ellipse with centre `(cx, cy)` and semi-axes `rx`, `ry` (pixels).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fill_ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, label: u8, color: [f32; 3], depth: Depth) {
        self.fill_ring(cx, cy, rx, ry, 0.0, label, color, depth);
    }

    /// Fills an elliptic ring: the ellipse `(cx, cy, rx, ry)` minus the concentric one scaled by
    /// `inner` (0 = a full disc, 0.8 = a thin tyre).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fill_ring(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, inner: f32, label: u8, color: [f32; 3], depth: Depth) {
        if !(rx > 0.0 && ry > 0.0) {
            return;
        }
        for row in rows(cy - ry, cy + ry, self.height) {
            let t = (row as f32 + 0.5 - cy) / ry;
            let outer = rx * (1.0 - t * t).max(0.0).sqrt();
            let ti = t / inner.max(1e-6);
            let hole = if inner > 0.0 && ti.abs() < 1.0 { inner * rx * (1.0 - ti * ti).sqrt() } else { 0.0 };
            if hole > 0.0 {
                let (a0, a1) = span(cx - outer, cx - hole, self.width);
                self.put_span(row, a0, a1, label, color, depth);
                let (b0, b1) = span(cx + hole, cx + outer, self.width);
                self.put_span(row, b0, b1, label, color, depth);
            } else {
                let (c0, c1) = span(cx - outer, cx + outer, self.width);
                self.put_span(row, c0, c1, label, color, depth);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas(w: usize, h: usize) -> Canvas {
        let cam = Camera { width: w as f32, height: h as f32, horizon: h as f32 * 0.5, center: w as f32 * 0.5, focal: h as f32, eye: 1.5 };
        Canvas::new(cam, w, h)
    }

    fn count(c: &Canvas, label: u8) -> usize {
        c.label.iter().filter(|&&l| l == label).count()
    }

    #[test]
    fn rectangles_cover_exactly_the_pixel_centres_inside() {
        let mut c = canvas(20, 10);
        // Centres 2.5..=5.5 (4 columns) and 1.5..=2.5 (2 rows) lie in [2.2, 5.9) × [1.2, 3.4).
        c.fill_convex(&[(2.2, 1.2), (5.9, 1.2), (5.9, 3.4), (2.2, 3.4)], 7, [1.0; 3], Depth::Const(1.0));
        assert_eq!(count(&c, 7), 8);
        assert_eq!(c.label[20 + 2], 7);
        assert_eq!(c.label[2 * 20 + 5], 7);
        assert_eq!(c.label[3 * 20 + 5], 0);
        assert_eq!(c.label[20 + 6], 0);
    }

    #[test]
    fn shapes_off_screen_or_degenerate_draw_nothing_and_do_not_panic() {
        let mut c = canvas(16, 8);
        c.fill_convex(&[(-50.0, -50.0), (-10.0, -50.0), (-10.0, -5.0)], 3, [1.0; 3], Depth::Const(1.0));
        c.fill_convex(&[(1.0, 1.0), (5.0, 1.0)], 3, [1.0; 3], Depth::Const(1.0));
        c.fill_ellipse(4.0, 4.0, 0.0, 3.0, 3, [1.0; 3], Depth::Const(1.0));
        c.fill_convex(&[(0.0, 0.0), (1e30, 0.0), (1e30, f32::NAN)], 3, [1.0; 3], Depth::Const(1.0));
        c.fill_face(&[[-1.0, 0.0, -2.0], [1.0, 0.0, -2.0], [1.0, 2.0, -2.0]], 3, [1.0; 3], Depth::Const(1.0));
        assert_eq!(count(&c, 3), 0);
    }

    #[test]
    fn faces_crossing_the_near_plane_are_clipped_not_dropped() {
        let mut c = canvas(64, 32);
        // A wall to the right running from behind the camera to 20 m ahead.
        c.fill_face(&[[2.0, 0.0, -5.0], [2.0, 0.0, 20.0], [2.0, 4.0, 20.0], [2.0, 4.0, -5.0]], 2, [1.0; 3], Depth::XPlane(2.0));
        let n = count(&c, 2);
        assert!(n > 100, "{n} pixels");
        // Its depth grows towards the vanishing point.
        let row = 16;
        let zs: Vec<f32> = (33..64).filter(|&col| c.label[row * 64 + col] == 2).map(|col| c.depth[row * 64 + col]).collect();
        assert!(zs.len() > 10 && zs[0] > zs[zs.len() - 1], "{zs:?}");
        assert!(zs.windows(2).all(|w| w[0] >= w[1]), "{zs:?}");
    }

    #[test]
    fn rings_leave_their_hole_unpainted() {
        let mut c = canvas(40, 40);
        c.fill_ring(20.0, 20.0, 15.0, 15.0, 0.6, 5, [1.0; 3], Depth::Const(1.0));
        assert_eq!(c.label[20 * 40 + 20], 0);
        assert_eq!(c.label[20 * 40 + 6], 5);
        let disc = {
            let mut d = canvas(40, 40);
            d.fill_ellipse(20.0, 20.0, 15.0, 15.0, 5, [1.0; 3], Depth::Const(1.0));
            count(&d, 5)
        };
        let ring = count(&c, 5);
        // Area ratio 1 − 0.6² = 0.64, up to pixelisation.
        assert!((ring as f32 / disc as f32 - 0.64).abs() < 0.05, "{ring}/{disc}");
    }
}

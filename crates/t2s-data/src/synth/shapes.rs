//! The drawing primitives that the scene's objects are made of: a shaded box (its faces visible
//! from the camera) and rectangles on a box's near or side plane. `render.rs` (street, blocks,
//! furniture) and `figures.rs` (vehicles, people, two-wheelers) both draw with them.

use super::appearance::{scaled, Look};
use super::projection::NEAR;
use super::raster::{Canvas, Depth};
use super::scene::Cuboid;

/// Outward normals of the faces a camera can see.
const LEFT: [f32; 3] = [-1.0, 0.0, 0.0];
const RIGHT: [f32; 3] = [1.0, 0.0, 0.0];
const UP: [f32; 3] = [0.0, 1.0, 0.0];
const DOWN: [f32; 3] = [0.0, -1.0, 0.0];
pub(super) const TOWARDS: [f32; 3] = [0.0, 0.0, -1.0];
/// Billboards are lit as if they faced the camera and leaned up a little.
pub(super) const BILLBOARD: [f32; 3] = [0.0, 0.5, -0.866];

/// The faces of a box visible from the camera: its near face, the side facing the camera's `x`
/// and the top or bottom facing its height. The visible faces of a convex solid never overlap in
/// the image, so their order does not matter.
pub(super) fn draw_cuboid(c: &mut Canvas, b: &Cuboid, label: u8, color: [f32; 3], look: &Look) {
    let Cuboid { x: (x0, x1), y: (y0, y1), z: (z0, z1) } = *b;
    if z1 < NEAR {
        return;
    }
    if x0 > 0.0 {
        c.fill_face(&[[x0, y0, z0], [x0, y0, z1], [x0, y1, z1], [x0, y1, z0]], label, scaled(color, look.shade(LEFT)), Depth::XPlane(x0));
    } else if x1 < 0.0 {
        c.fill_face(&[[x1, y0, z0], [x1, y0, z1], [x1, y1, z1], [x1, y1, z0]], label, scaled(color, look.shade(RIGHT)), Depth::XPlane(x1));
    }
    if y1 < c.cam.eye {
        c.fill_face(&[[x0, y1, z0], [x1, y1, z0], [x1, y1, z1], [x0, y1, z1]], label, scaled(color, look.shade(UP)), Depth::YPlane(y1));
    } else if y0 > c.cam.eye {
        c.fill_face(&[[x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]], label, scaled(color, look.shade(DOWN)), Depth::YPlane(y0));
    }
    c.fill_face(&[[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0]], label, scaled(color, look.shade(TOWARDS)), Depth::Const(z0));
}

/// The visible side plane of a box (`x` of the face turned to the camera), if any.
pub(super) fn visible_side(b: &Cuboid) -> Option<(f32, [f32; 3])> {
    if b.x.0 > 0.0 {
        Some((b.x.0, LEFT))
    } else if b.x.1 < 0.0 {
        Some((b.x.1, RIGHT))
    } else {
        None
    }
}

/// A rectangle on the side plane `x`, spanning `y` and `z`.
pub(super) fn side_rect(c: &mut Canvas, x: f32, y: (f32, f32), z: (f32, f32), label: u8, color: [f32; 3]) {
    c.fill_face(&[[x, y.0, z.0], [x, y.0, z.1], [x, y.1, z.1], [x, y.1, z.0]], label, color, Depth::XPlane(x));
}

/// A rectangle on the near plane `z`, spanning `x` and `y`.
pub(super) fn near_rect(c: &mut Canvas, x: (f32, f32), y: (f32, f32), z: f32, label: u8, color: [f32; 3]) {
    if z >= NEAR {
        c.fill_face(&[[x.0, y.0, z], [x.1, y.0, z], [x.1, y.1, z], [x.0, y.1, z]], label, color, Depth::Const(z));
    }
}

/// Whether a detail of `size` metres at depth `z` is worth drawing (at least ~a pixel).
pub(super) fn visible(c: &Canvas, size: f32, z: f32) -> bool {
    z >= NEAR && c.cam.scale(z) * size >= 0.8
}

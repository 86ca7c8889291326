//! The pinhole camera of the generator: a camera `eye` metres above a flat ground plane, looking
//! straight down the street, so that the street's parallel lines meet at one vanishing point on
//! the horizon row.
//!
//! World coordinates, in metres: `x` to the right of the camera, `y` up from the ground, `z`
//! forward (depth). Image coordinates are pixels with `(0, 0)` the top-left corner of the top-left
//! pixel, so pixel `(c, r)` has its centre at `(c + 0.5, r + 0.5)`.

/// Faces closer than this (metres) are clipped: they would project to infinity.
pub(crate) const NEAR: f32 = 0.4;

/// Projection of world points to pixels. Every quantity is derived from normalised parameters
/// (fractions of the image height and width), so one scene renders alike at any resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Camera {
    /// Image width in pixels.
    pub width: f32,
    /// Image height in pixels.
    pub height: f32,
    /// Row (pixels from the top) of the horizon, where the ground plane meets the sky.
    pub horizon: f32,
    /// Column of the vanishing point of the street.
    pub center: f32,
    /// Focal length in pixels (the same for both axes: square pixels).
    pub focal: f32,
    /// Height of the camera above the ground, metres.
    pub eye: f32,
}

impl Camera {
    /// Pixel coordinates of a world point (`p[2]` > 0).
    #[inline]
    pub(crate) fn project(&self, p: [f32; 3]) -> (f32, f32) {
        let inv = self.focal / p[2];
        (self.center + p[0] * inv, self.horizon + (self.eye - p[1]) * inv)
    }

    /// Pixels per metre at depth `z`: how large an object at that distance appears.
    #[inline]
    pub(crate) fn scale(&self, z: f32) -> f32 {
        self.focal / z
    }

    /// Depth of the ground seen through a row (`row` in pixel coordinates, below the horizon).
    #[inline]
    pub(crate) fn ground_depth(&self, row: f32) -> f32 {
        // Rows a hair below the horizon are kilometres away; clamping keeps the numbers finite.
        self.focal * self.eye / (row - self.horizon).max(1e-3)
    }

    /// Lateral world position of the ground point seen at column `col` at depth `z`.
    #[inline]
    pub(crate) fn ground_x(&self, col: f32, z: f32) -> f32 {
        (col - self.center) * z / self.focal
    }

    /// Depth at which the ray through column `col` meets the vertical plane `x = const`
    /// (infinite when the ray runs parallel to it or away from it).
    #[inline]
    pub(crate) fn depth_on_x_plane(&self, col: f32, x: f32) -> f32 {
        let z = x * self.focal / (col - self.center);
        if z > 0.0 {
            z
        } else {
            f32::INFINITY
        }
    }

    /// Depth at which the ray through row `row` meets the horizontal plane `y = const`.
    #[inline]
    pub(crate) fn depth_on_y_plane(&self, row: f32, y: f32) -> f32 {
        let z = (self.eye - y) * self.focal / (row - self.horizon);
        if z > 0.0 {
            z
        } else {
            f32::INFINITY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Camera {
        Camera { width: 256.0, height: 128.0, horizon: 56.0, center: 128.0, focal: 128.0, eye: 1.5 }
    }

    #[test]
    fn ground_points_project_back_onto_themselves() {
        let c = cam();
        for &(x, z) in &[(-3.0f32, 5.0f32), (2.0, 12.0), (7.5, 40.0)] {
            let (col, row) = c.project([x, 0.0, z]);
            let zz = c.ground_depth(row);
            assert!((zz - z).abs() < 1e-3 * z, "{zz} vs {z}");
            assert!((c.ground_x(col, zz) - x).abs() < 1e-3 * z.max(1.0));
        }
    }

    #[test]
    fn farther_is_smaller_and_closer_to_the_horizon() {
        let c = cam();
        let (_, near_foot) = c.project([0.0, 0.0, 5.0]);
        let (_, far_foot) = c.project([0.0, 0.0, 50.0]);
        assert!(near_foot > far_foot && far_foot > c.horizon);
        assert!(c.scale(5.0) > c.scale(50.0));
        // Points at the camera's height lie on the horizon at every depth.
        assert_eq!(c.project([1.0, 1.5, 9.0]).1, c.horizon);
    }

    #[test]
    fn plane_depths_invert_projection() {
        let c = cam();
        let (col, row) = c.project([4.0, 3.0, 20.0]);
        assert!((c.depth_on_x_plane(col, 4.0) - 20.0).abs() < 1e-3);
        assert!((c.depth_on_y_plane(row, 3.0) - 20.0).abs() < 1e-3);
        assert!(c.depth_on_x_plane(c.center - 10.0, 4.0).is_infinite());
    }
}

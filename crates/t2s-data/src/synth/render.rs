//! Draws a scene onto a canvas: the ground and sky per pixel, then the blocks, the front row and
//! the objects back to front, each made of shaded boxes (projected faces), billboards (ellipses
//! and polygons facing the camera) and their details (windows, lamps). Vehicles, people and
//! two-wheelers are drawn by `figures.rs`.

use super::appearance::{class, mix, scaled, Look};
use super::figures::{draw_cycle, draw_person, draw_vehicle};
use super::projection::NEAR;
use super::raster::{Canvas, Depth};
use super::scene::{Cuboid, Pattern, Scene, SignShape, Thing};
use super::shapes::{draw_cuboid, near_rect, side_rect, visible, visible_side, BILLBOARD, TOWARDS};

/// Rasterises a scene lit by `look` at `width × height`.
pub(crate) fn rasterize(scene: &Scene, look: &Look, width: usize, height: usize) -> Canvas {
    let mut c = Canvas::new(scene.camera, width, height);
    background(&mut c, scene, look);
    for thing in scene.back.iter().chain(&scene.front).chain(&scene.objects) {
        draw(&mut c, thing, look);
    }
    c
}

/// Sky above the horizon, ground zones and markings below it.
fn background(c: &mut Canvas, scene: &Scene, look: &Look) {
    let cam = c.cam;
    let ground_shade = look.ambient + look.diffuse * look.sun[1].max(0.0);
    for row in 0..c.height {
        let yc = row as f32 + 0.5;
        let base = row * c.width;
        if yc < cam.horizon {
            // Darker at the zenith, lighter at the horizon.
            let t = (yc / cam.horizon).powi(2);
            let color = mix(scene.sky.0, scene.sky.1, t);
            for i in base..base + c.width {
                c.label[i] = class::SKY;
                c.color[i] = color;
                c.depth[i] = f32::INFINITY;
            }
        } else {
            let z = cam.ground_depth(yc);
            for col in 0..c.width {
                let x = cam.ground_x(col as f32 + 0.5, z);
                let label = scene.ground.label_at(x, z);
                let i = base + col;
                c.label[i] = label;
                c.color[i] = scaled(scene.ground.color_at(x, z, label), ground_shade);
                c.depth[i] = z;
            }
        }
    }
}

fn draw(c: &mut Canvas, thing: &Thing, look: &Look) {
    match thing {
        Thing::Block { label, b, color, pattern } => {
            draw_cuboid(c, b, *label, *color, look);
            draw_pattern(c, b, *label, pattern, look);
        }
        Thing::Crown { x, y, z, r, color } => billboard_disc(c, [*x, *y, *z], *r, class::VEGETATION, scaled(*color, look.shade(BILLBOARD))),
        Thing::Tree { x, z, trunk, bark, crowns } => {
            let t = Cuboid { x: (x - 0.14, x + 0.14), y: (0.0, trunk + 0.6), z: (*z, z + 0.28) };
            draw_cuboid(c, &t, class::VEGETATION, *bark, look);
            for &(dx, y, r, color) in crowns {
                billboard_disc(c, [x + dx, y, *z], r, class::VEGETATION, scaled(color, look.shade(BILLBOARD)));
            }
        }
        Thing::Vehicle(v) => draw_vehicle(c, v, look),
        Thing::Person(p) => draw_person(c, p, look),
        Thing::Cycle(cy) => draw_cycle(c, cy, look),
        Thing::Pole { x, z, height, arm, color } => {
            draw_cuboid(c, &Cuboid { x: (x - 0.08, x + 0.08), y: (0.0, *height), z: (*z, z + 0.16) }, class::POLE, *color, look);
            if *arm != 0.0 {
                let (a0, a1) = if *arm > 0.0 { (*x, x + arm) } else { (x + arm, *x) };
                draw_cuboid(c, &Cuboid { x: (a0, a1), y: (height - 0.12, *height), z: (z + 0.02, z + 0.14) }, class::POLE, *color, look);
                let end = x + arm;
                let lamp = Cuboid { x: (end - 0.3, end + 0.3), y: (height - 0.28, height - 0.05), z: (z - 0.07, z + 0.23) };
                draw_cuboid(c, &lamp, class::POLE, scaled(*color, 1.2), look);
            }
        }
        Thing::Sign { x, z, y, size, shape, face, rim, post } => {
            if let Some(post) = post {
                draw_cuboid(c, &Cuboid { x: (x - 0.04, x + 0.04), y: (0.0, *y), z: (z + 0.03, z + 0.11) }, class::POLE, *post, look);
            }
            draw_sign(c, [*x, *y, *z], *size, *shape, scaled(*face, look.shade(BILLBOARD)), scaled(*rim, look.shade(BILLBOARD)));
        }
        Thing::Light { x, z, y, housing, lit, pole, mast } => {
            let top = y + 0.95;
            match mast {
                None => {
                    draw_cuboid(c, &Cuboid { x: (x - 0.07, x + 0.07), y: (0.0, top), z: (z + 0.25, z + 0.39) }, class::POLE, *pole, look)
                }
                Some(px) => {
                    draw_cuboid(c, &Cuboid { x: (px - 0.1, px + 0.1), y: (0.0, top + 0.3), z: (*z, z + 0.2) }, class::POLE, *pole, look);
                    let (a0, a1) = if *px > *x { (*x, *px) } else { (*px, *x) };
                    draw_cuboid(c, &Cuboid { x: (a0, a1), y: (top + 0.1, top + 0.22), z: (z + 0.05, z + 0.15) }, class::POLE, *pole, look);
                }
            }
            let b = Cuboid { x: (x - 0.17, x + 0.17), y: (*y, y + 0.9), z: (*z, z + 0.25) };
            draw_cuboid(c, &b, class::TRAFFIC_LIGHT, *housing, look);
            if visible(c, 0.15, *z) {
                const LAMPS: [[f32; 3]; 3] = [[1.0, 0.15, 0.1], [1.0, 0.7, 0.1], [0.2, 1.0, 0.45]];
                for (k, lamp) in LAMPS.iter().enumerate() {
                    let color = if k == *lit { *lamp } else { mix(scaled(*lamp, 0.25), *housing, 0.5) };
                    billboard_disc(c, [*x, y + 0.75 - 0.3 * k as f32, z - 0.01], 0.1, class::TRAFFIC_LIGHT, color);
                }
            }
        }
    }
}

/// Windows on buildings and posts on fences, on the near face and the visible side face.
fn draw_pattern(c: &mut Canvas, b: &Cuboid, label: u8, pattern: &Pattern, look: &Look) {
    match *pattern {
        Pattern::None => {}
        Pattern::Windows { storey, bay, fill, glass } => {
            let (win_h, win_w) = (storey * fill.1, bay * fill.0);
            let storeys = ((b.y.1 - 0.8) / storey).floor().max(0.0) as usize;
            let sill = |k: usize| k as f32 * storey + storey * (1.0 - fill.1) * 0.6;
            if let Some((x, n)) = visible_side(b) {
                let color = scaled(glass, look.shade(n));
                // Bays start at whole multiples of the bay width from the block's start; stop
                // where windows shrink below a pixel (they only change the image, not the label).
                let first = ((b.z.0.max(NEAR) - b.z.0) / bay).floor() as usize;
                for j in first..((b.z.1 - b.z.0) / bay).floor().min(first as f32 + 200.0) as usize {
                    let z0 = b.z.0 + j as f32 * bay + (bay - win_w) * 0.5;
                    if !visible(c, win_w.min(win_h), z0 + win_w) {
                        break;
                    }
                    for k in 0..storeys.min(40) {
                        side_rect(c, x, (sill(k), sill(k) + win_h), (z0, z0 + win_w), label, color);
                    }
                }
            }
            if visible(c, win_w.min(win_h), b.z.0) {
                let color = scaled(glass, look.shade(TOWARDS));
                let bays = ((b.x.1 - b.x.0) / bay).floor().min(100.0) as usize;
                for j in 0..bays {
                    let x0 = b.x.0 + j as f32 * bay + (bay - win_w) * 0.5;
                    for k in 0..storeys.min(40) {
                        near_rect(c, (x0, x0 + win_w), (sill(k), sill(k) + win_h), b.z.0, label, color);
                    }
                }
            }
        }
        Pattern::Posts { spacing, color } => {
            if let Some((x, n)) = visible_side(b) {
                let color = scaled(color, look.shade(n));
                let mut z = b.z.0.max(NEAR);
                while z < b.z.1 && visible(c, 0.1, z) {
                    side_rect(c, x, (b.y.0, b.y.1 + 0.05), (z, z + 0.1), label, color);
                    z += spacing;
                }
            }
        }
    }
}

/// A disc of radius `r` metres facing the camera, centred on a world point.
fn billboard_disc(c: &mut Canvas, p: [f32; 3], r: f32, label: u8, color: [f32; 3]) {
    if p[2] < NEAR {
        return;
    }
    let (cx, cy) = c.cam.project(p);
    let rp = r * c.cam.scale(p[2]);
    c.fill_ellipse(cx, cy, rp, rp, label, color, Depth::Const(p[2]));
}

fn draw_sign(c: &mut Canvas, p: [f32; 3], size: f32, shape: SignShape, face: [f32; 3], rim: [f32; 3]) {
    if p[2] < NEAR {
        return;
    }
    let (cx, cy) = c.cam.project(p);
    let r = 0.5 * size * c.cam.scale(p[2]);
    let depth = Depth::Const(p[2]);
    let label = class::TRAFFIC_SIGN;
    let poly = |k: f32, pts: &[(f32, f32)]| -> Vec<(f32, f32)> { pts.iter().map(|(u, v)| (cx + k * r * u, cy + k * r * v)).collect() };
    match shape {
        SignShape::Disc => {
            c.fill_ellipse(cx, cy, r, r, label, rim, depth);
            c.fill_ellipse(cx, cy, 0.72 * r, 0.72 * r, label, face, depth);
        }
        SignShape::Triangle => {
            let tri = [(0.0, -1.0), (0.866, 0.5), (-0.866, 0.5)];
            c.fill_convex(&poly(1.0, &tri), label, rim, depth);
            c.fill_convex(&poly(0.6, &tri), label, face, depth);
        }
        SignShape::Square => {
            let sq = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)];
            c.fill_convex(&poly(1.0, &sq), label, rim, depth);
            c.fill_convex(&poly(0.85, &sq), label, face, depth);
        }
        SignShape::Diamond => {
            let dia = [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)];
            c.fill_convex(&poly(1.0, &dia), label, rim, depth);
            c.fill_convex(&poly(0.8, &dia), label, face, depth);
        }
    }
}

//! Drawing vehicles (boxes with wheels, glass and lamps), people (billboards of legs, torso,
//! arms and head) and two-wheelers (side views foreshortened towards the camera).

use super::appearance::{class, mix, scaled, Look};
use super::projection::NEAR;
use super::raster::{Canvas, Depth};
use super::scene::{Cuboid, Cycle, Person, Vehicle, VehicleKind};
use super::shapes::{draw_cuboid, near_rect, side_rect, visible, visible_side, BILLBOARD, TOWARDS};

/// Label of a vehicle kind.
fn vehicle_class(kind: VehicleKind) -> u8 {
    match kind {
        VehicleKind::Car => class::CAR,
        VehicleKind::Truck => class::TRUCK,
        VehicleKind::Bus => class::BUS,
        VehicleKind::Tram => class::TRAIN,
    }
}

/// A vehicle's frame: `across` and `along` its length, whichever world axes those are.
struct Frame {
    b: Cuboid,
    crossing: bool,
}

impl Frame {
    fn across(&self) -> (f32, f32) {
        if self.crossing {
            self.b.z
        } else {
            self.b.x
        }
    }
    fn along(&self) -> (f32, f32) {
        if self.crossing {
            self.b.x
        } else {
            self.b.z
        }
    }
    /// The box spanning `across`, `y` and `along` in vehicle coordinates.
    fn part(&self, across: (f32, f32), y: (f32, f32), along: (f32, f32)) -> Cuboid {
        if self.crossing {
            Cuboid { x: along, y, z: across }
        } else {
            Cuboid { x: across, y, z: along }
        }
    }
}

fn inset(r: (f32, f32), a: f32, b: f32) -> (f32, f32) {
    (r.0 + a, r.1 - b)
}

/// Glass on the visible faces of a cabin-like box, inset from its edges.
fn glaze(c: &mut Canvas, b: &Cuboid, label: u8, glass: [f32; 3], y: (f32, f32), look: &Look) {
    if let Some((x, n)) = visible_side(b) {
        if visible(c, y.1 - y.0, b.z.1) {
            side_rect(c, x, y, inset(b.z, 0.15, 0.15), label, scaled(glass, look.shade(n)));
        }
    }
    if visible(c, y.1 - y.0, b.z.0) {
        near_rect(c, inset(b.x, 0.12, 0.12), y, b.z.0, label, scaled(glass, look.shade(TOWARDS)));
    }
}

pub(super) fn draw_vehicle(c: &mut Canvas, v: &Vehicle, look: &Look) {
    let label = vehicle_class(v.kind);
    let f = Frame { b: v.b, crossing: v.crossing };
    let (across, along, h) = (f.across(), f.along(), v.b.y.1);
    let len = along.1 - along.0;
    let clearance = if v.kind == VehicleKind::Car { 0.3 } else { 0.45 };
    // Wheels first: the body hides all but their lower part and the gap under the vehicle.
    let wheel_len = if v.kind == VehicleKind::Car { 0.66 } else { 1.0 };
    for (a0, a1) in [(along.1 - 0.6 - wheel_len, along.1 - 0.6), (along.0 + 0.6, along.0 + 0.6 + wheel_len)] {
        for (s0, s1) in [(across.0 + 0.05, across.0 + 0.32), (across.1 - 0.32, across.1 - 0.05)] {
            draw_cuboid(c, &f.part((s0, s1), (0.0, 2.0 * clearance + 0.05), (a0, a1)), label, v.tyre, look);
        }
    }
    match v.kind {
        VehicleKind::Car => {
            let waist = clearance + (h - clearance) * 0.55;
            let body = f.part(across, (clearance, waist), along);
            draw_cuboid(c, &body, label, v.color, look);
            let cabin = f.part(inset(across, 0.1, 0.1), (waist, h), inset(along, len * 0.25, len * 0.25));
            draw_cuboid(c, &cabin, label, v.color, look);
            glaze(c, &cabin, label, v.glass, (waist + 0.06, h - 0.07), look);
            if !v.crossing && visible(c, 0.15, along.0) {
                // Tail lights (red) or headlights (pale yellow) on the face towards the camera.
                let lamp = if v.oncoming { [1.0, 0.95, 0.75] } else { [0.85, 0.08, 0.06] };
                let y = (waist - 0.25, waist - 0.08);
                near_rect(c, (across.0 + 0.08, across.0 + 0.38), y, along.0, label, lamp);
                near_rect(c, (across.1 - 0.38, across.1 - 0.08), y, along.0, label, lamp);
            }
        }
        VehicleKind::Truck => {
            // Seen from behind the cargo box is nearer; oncoming, the cab is.
            let cab_len = 2.3;
            let (cargo_along, cab_along) = if v.oncoming {
                ((along.0 + cab_len + 0.2, along.1), (along.0, along.0 + cab_len))
            } else {
                ((along.0, along.1 - cab_len - 0.2), (along.1 - cab_len, along.1))
            };
            let cab = f.part(inset(across, 0.05, 0.05), (clearance, (h * 0.8).min(2.9)), cab_along);
            let cargo = f.part(across, (clearance + 0.3, h), cargo_along);
            let cab_color = mix(v.color, [0.9, 0.9, 0.9], 0.4);
            if v.oncoming {
                draw_cuboid(c, &cargo, label, v.color, look);
                draw_cuboid(c, &cab, label, cab_color, look);
            } else {
                draw_cuboid(c, &cab, label, cab_color, look);
                draw_cuboid(c, &cargo, label, v.color, look);
            }
            let top = cab.y.1;
            if v.oncoming && visible(c, 0.3, cab.z.0) {
                near_rect(c, inset(cab.x, 0.15, 0.15), (top - 0.9, top - 0.15), cab.z.0, label, scaled(v.glass, look.shade(TOWARDS)));
            }
            if !v.oncoming && visible(c, 0.1, cargo.z.0) {
                // The split of the rear doors.
                let mid = 0.5 * (cargo.x.0 + cargo.x.1);
                near_rect(c, (mid - 0.03, mid + 0.03), (cargo.y.0 + 0.1, cargo.y.1 - 0.1), cargo.z.0, label, scaled(v.color, 0.55));
            }
        }
        VehicleKind::Bus | VehicleKind::Tram => {
            let body = f.part(across, (clearance, h), along);
            draw_cuboid(c, &body, label, v.color, look);
            glaze(c, &body, label, v.glass, (1.25, h - 0.45), look);
            if v.kind == VehicleKind::Tram && visible(c, 0.15, along.0) {
                // A coloured stripe under the windows, the tram company's livery.
                near_rect(
                    c,
                    inset(across, 0.0, 0.0),
                    (0.9, 1.1),
                    along.0,
                    label,
                    scaled(mix(v.color, [0.8, 0.1, 0.1], 0.7), look.shade(TOWARDS)),
                );
            }
        }
    }
}

/// A standing, walking or riding person: legs, torso, arms and head facing the camera.
pub(super) fn draw_person(c: &mut Canvas, p: &Person, look: &Look) {
    if p.z < NEAR {
        return;
    }
    let s = c.cam.scale(p.z);
    let (fx, fy) = c.cam.project([p.x, p.base, p.z]);
    let hp = p.height * s;
    let depth = Depth::Const(p.z);
    let k = look.shade(BILLBOARD);
    let (top, bottom, skin) = (scaled(p.top, k), scaled(p.bottom, k), scaled(p.skin, k));
    let hip = fy - 0.47 * hp;
    let shoulder = fy - 0.82 * hp;
    let leg = 0.08 * hp;
    let step = p.stride * 0.1 * hp;
    c.fill_segment((fx - 0.05 * hp, hip), (fx - 0.05 * hp + step, fy), leg, p.label, bottom, depth);
    c.fill_segment((fx + 0.05 * hp, hip), (fx + 0.05 * hp - step, fy), leg, p.label, bottom, depth);
    let torso =
        [(fx - 0.13 * hp, shoulder), (fx + 0.13 * hp, shoulder), (fx + 0.1 * hp, hip + 0.02 * hp), (fx - 0.1 * hp, hip + 0.02 * hp)];
    c.fill_convex(&torso, p.label, top, depth);
    let swing = -0.5 * step;
    c.fill_segment((fx - 0.14 * hp, shoulder + 0.03 * hp), (fx - 0.17 * hp + swing, fy - 0.5 * hp), 0.06 * hp, p.label, top, depth);
    c.fill_segment((fx + 0.14 * hp, shoulder + 0.03 * hp), (fx + 0.17 * hp - swing, fy - 0.5 * hp), 0.06 * hp, p.label, top, depth);
    c.fill_ellipse(fx, fy - 0.91 * hp, 0.065 * hp, 0.085 * hp, p.label, skin, depth);
}

/// A two-wheeler in side view, foreshortened by `k`, then its rider on top.
pub(super) fn draw_cycle(c: &mut Canvas, cy: &Cycle, look: &Look) {
    if cy.z < NEAR {
        return;
    }
    let s = c.cam.scale(cy.z);
    let (fx, fy) = c.cam.project([cy.x, 0.0, cy.z]);
    // Bike coordinates: `a` metres along the bike (towards `dir`), `y` metres up.
    let at = |a: f32, y: f32| (fx + cy.dir * cy.k * a * s, fy - y * s);
    let depth = Depth::Const(cy.z);
    let k = look.shade(BILLBOARD);
    let (frame, tyre) = (scaled(cy.color, k), scaled(cy.tyre, k));
    if cy.motor {
        let label = class::MOTORCYCLE;
        for a in [-0.7, 0.7] {
            let (wx, wy) = at(a, 0.32);
            c.fill_ellipse(wx, wy, cy.k * 0.32 * s, 0.32 * s, label, tyre, depth);
        }
        let (bx, by) = at(0.0, 0.68);
        c.fill_ellipse(bx, by, cy.k * 0.62 * s, 0.24 * s, label, frame, depth);
        let engine = [at(-0.3, 0.22), at(0.35, 0.22), at(0.35, 0.5), at(-0.3, 0.5)];
        c.fill_convex(&engine, label, tyre, depth);
        c.fill_segment(at(0.7, 0.32), at(0.5, 1.05), 0.07 * s, label, frame, depth);
    } else {
        let label = class::BICYCLE;
        for a in [-0.52, 0.52] {
            let (wx, wy) = at(a, 0.34);
            c.fill_ring(wx, wy, cy.k * 0.34 * s, 0.34 * s, 0.78, label, tyre, depth);
        }
        let (rear, bracket, seat, head, front) = (at(-0.52, 0.34), at(0.0, 0.3), at(-0.12, 0.85), at(0.42, 0.9), at(0.52, 0.34));
        let t = 0.05 * s;
        for (a, b) in [(rear, bracket), (bracket, seat), (seat, head), (head, bracket), (head, front), (rear, seat)] {
            c.fill_segment(a, b, t, label, frame, depth);
        }
        c.fill_segment(head, at(0.36, 1.05), t, label, frame, depth);
    }
    if let Some(rider) = &cy.rider {
        draw_person(c, rider, look);
    }
}

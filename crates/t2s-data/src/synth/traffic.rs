//! Placing people and vehicles: pedestrians on the sidewalks and crossing, cyclists and
//! motorcyclists near the kerbs, parked bicycles, parked cars, moving cars, trucks, buses, trams
//! in the lanes and cars driving through the cross street.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::appearance::{class, scaled, uniform, Palette};
use super::draws::{away, chance, log_uniform, poisson};
use super::layout::LayoutStats;
use super::scene::{Cuboid, Cycle, Ground, Person, Thing, Vehicle, VehicleKind};

/// The lanes of the carriageway: how many, how wide, where lane 0's left edge lies, and which
/// sides have a parking strip. The left half of the lanes carries oncoming traffic.
#[derive(Debug, Clone)]
pub(super) struct Carriageway {
    pub lanes: usize,
    pub lane_w: f32,
    pub left: f32,
    pub parking: [bool; 2],
}

impl Carriageway {
    fn center(&self, lane: usize) -> f32 {
        self.left + (lane as f32 + 0.5) * self.lane_w
    }

    fn oncoming(&self, lane: usize) -> bool {
        lane < self.lanes / 2
    }
}

/// Lane occupancy, so that vehicles in one lane do not overlap.
struct Lanes {
    taken: Vec<(usize, f32, f32)>,
}

impl Lanes {
    fn try_take(&mut self, lane: usize, z0: f32, z1: f32) -> bool {
        let free = self.taken.iter().all(|&(l, a, b)| l != lane || z1 + 2.0 < a || z0 > b + 2.0);
        if free {
            self.taken.push((lane, z0, z1));
        }
        free
    }
}

fn person(pal: &Palette, x: f32, z: f32, label: u8, rng: &mut ChaCha8Rng) -> Person {
    let child = label == class::PERSON && chance(rng, 0.1);
    let cls = if label == class::RIDER { class::RIDER } else { class::PERSON };
    Person {
        x,
        z,
        base: 0.0,
        height: if child { uniform(rng, (1.0, 1.35)) } else { uniform(rng, (1.55, 1.95)) },
        skin: pal.materials.skin.sample(rng),
        top: pal.color(cls, rng),
        bottom: scaled(pal.color(cls, rng), 0.7),
        stride: uniform(rng, (-1.0, 1.0)),
        label,
    }
}

/// Pedestrians, cyclists, motorcyclists and parked bicycles.
pub(super) fn people(stats: &LayoutStats, pal: &Palette, g: &Ground, road: &Carriageway, rng: &mut ChaCha8Rng, out: &mut Vec<Thing>) {
    let road_edge = |side: usize| if side == 0 { g.road.0 } else { g.road.1 };
    let lanes_edge = |side: usize| {
        if side == 0 {
            road.left
        } else {
            road.left + road.lanes as f32 * road.lane_w
        }
    };
    for _ in 0..poisson(rng, stats.persons) {
        let (x, z) = if chance(rng, stats.p_crossing) {
            (uniform(rng, g.road), log_uniform(rng, (6.0, 40.0)))
        } else {
            let side = rng.random_range(0..2usize);
            let room = g.front_offset(side);
            (away(side, road_edge(side), uniform(rng, (0.2, (room - 0.3).max(0.25)))), log_uniform(rng, (3.0, 70.0)))
        };
        out.push(Thing::Person(person(pal, x, z, class::PERSON, rng)));
    }
    for _ in 0..poisson(rng, stats.cyclists) {
        let motor = chance(rng, stats.p_motorcycle);
        let crossing = chance(rng, 0.15);
        let side = rng.random_range(0..2usize);
        let (x, z, k) = if crossing {
            (uniform(rng, g.road), log_uniform(rng, (6.0, 40.0)), 1.0)
        } else {
            (
                // Along the kerb-side edge of the outer lanes (outside any parked cars).
                away(side, lanes_edge(side), -uniform(rng, (0.5, 1.2))),
                log_uniform(rng, (4.0, 50.0)),
                uniform(rng, (0.25, 0.5)),
            )
        };
        let mut rider = person(pal, x, z, class::RIDER, rng);
        rider.base = if motor { 0.55 } else { 0.45 };
        rider.height = uniform(rng, (1.1, 1.3));
        let cls = if motor { class::MOTORCYCLE } else { class::BICYCLE };
        out.push(Thing::Cycle(Cycle {
            x,
            z,
            motor,
            k,
            dir: if rng.random::<bool>() { 1.0 } else { -1.0 },
            color: pal.color(cls, rng),
            tyre: pal.materials.tyre.sample(rng),
            rider: Some(rider),
        }));
    }
    for _ in 0..poisson(rng, stats.parked_bicycles) {
        let side = rng.random_range(0..2usize);
        let room = g.front_offset(side);
        out.push(Thing::Cycle(Cycle {
            x: away(side, road_edge(side), uniform(rng, (0.3, (room - 0.3).max(0.35)))),
            z: log_uniform(rng, (3.0, 40.0)),
            motor: false,
            k: uniform(rng, (0.3, 0.9)),
            dir: if rng.random::<bool>() { 1.0 } else { -1.0 },
            color: pal.color(class::BICYCLE, rng),
            tyre: pal.materials.tyre.sample(rng),
            rider: None,
        }));
    }
}

fn vehicle(pal: &Palette, kind: VehicleKind, b: Cuboid, oncoming: bool, crossing: bool, rng: &mut ChaCha8Rng) -> Thing {
    let cls = match kind {
        VehicleKind::Car => class::CAR,
        VehicleKind::Truck => class::TRUCK,
        VehicleKind::Bus => class::BUS,
        VehicleKind::Tram => class::TRAIN,
    };
    Thing::Vehicle(Vehicle {
        kind,
        b,
        color: pal.color(cls, rng),
        glass: pal.materials.glass.sample(rng),
        tyre: pal.materials.tyre.sample(rng),
        oncoming,
        crossing,
    })
}

/// Parked cars, moving traffic in the lanes, crossing cars and a tram.
pub(super) fn vehicles(stats: &LayoutStats, pal: &Palette, g: &Ground, road: &Carriageway, rng: &mut ChaCha8Rng, out: &mut Vec<Thing>) {
    let blocked = |z0: f32, z1: f32| {
        g.cross.is_some_and(|(c0, c1)| z1 > c0 - 1.0 && z0 < c1 + 1.0) || g.crosswalk.is_some_and(|(c0, c1)| z1 > c0 && z0 < c1)
    };
    for (side, &has_parking) in road.parking.iter().enumerate() {
        if !has_parking {
            continue;
        }
        let mut z = uniform(rng, (-3.0, 4.0));
        while z < 90.0 {
            let len = uniform(rng, (3.9, 4.8));
            let width = uniform(rng, (1.7, 1.95));
            if chance(rng, stats.parking_fill) && !blocked(z, z + len) {
                let x = if side == 0 { (g.road.0 + 0.25, g.road.0 + 0.25 + width) } else { (g.road.1 - 0.25 - width, g.road.1 - 0.25) };
                let b = Cuboid { x, y: (0.0, uniform(rng, (1.4, 1.65))), z: (z, z + len) };
                out.push(vehicle(pal, VehicleKind::Car, b, side == 0, false, rng));
            }
            z += len + uniform(rng, (0.8, 2.5));
        }
    }
    let mut taken = Lanes { taken: Vec::new() };
    let mut place = |kind: VehicleKind, count: usize, rng: &mut ChaCha8Rng, out: &mut Vec<Thing>| {
        for _ in 0..count {
            let (width, len, height, near) = match kind {
                VehicleKind::Car => (uniform(rng, (1.7, 1.95)), uniform(rng, (3.9, 4.8)), uniform(rng, (1.4, 1.65)), (6.0, 90.0)),
                VehicleKind::Truck => (2.45, uniform(rng, (6.5, 10.0)), uniform(rng, (3.0, 3.8)), (8.0, 90.0)),
                VehicleKind::Bus => (2.55, uniform(rng, (11.0, 13.0)), uniform(rng, (3.0, 3.3)), (8.0, 90.0)),
                VehicleKind::Tram => (2.65, uniform(rng, (24.0, 32.0)), 3.4, (10.0, 60.0)),
            };
            // Try a few times to find a free stretch of a lane.
            for _ in 0..4 {
                let lane = rng.random_range(0..road.lanes);
                let z = log_uniform(rng, near);
                let cx = road.center(lane) + uniform(rng, (-0.3, 0.3)) * (road.lane_w - width).max(0.0);
                if !blocked(z, z + len) && taken.try_take(lane, z, z + len) {
                    let b = Cuboid { x: (cx - width / 2.0, cx + width / 2.0), y: (0.0, height), z: (z, z + len) };
                    out.push(vehicle(pal, kind, b, road.oncoming(lane), false, rng));
                    break;
                }
            }
        }
    };
    let n = poisson(rng, stats.traffic);
    place(VehicleKind::Car, n, rng, out);
    let n = poisson(rng, stats.trucks);
    place(VehicleKind::Truck, n, rng, out);
    let n = poisson(rng, stats.buses);
    place(VehicleKind::Bus, n, rng, out);
    if chance(rng, stats.p_tram) {
        place(VehicleKind::Tram, 1, rng, out);
    }
    if let Some((c0, c1)) = g.cross {
        // Cars driving through the cross street, seen from the side.
        for _ in 0..rng.random_range(0..3) {
            let len = uniform(rng, (3.9, 4.8));
            let x0 = uniform(rng, (-25.0, 20.0));
            let zc = uniform(rng, (c0 + 1.0, (c1 - 3.0).max(c0 + 1.5)));
            let b = Cuboid { x: (x0, x0 + len), y: (0.0, uniform(rng, (1.4, 1.65))), z: (zc, zc + uniform(rng, (1.7, 1.95))) };
            out.push(vehicle(pal, VehicleKind::Car, b, false, true, rng));
        }
    }
}

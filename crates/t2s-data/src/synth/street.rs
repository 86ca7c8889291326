//! Drawing a scene's street: the camera, the ground zones, the roadside blocks, the front row and
//! the street furniture (lights, signs, traffic lights, trees). People and vehicles are placed by
//! `traffic.rs`. All choices come from the sample's random stream, in a fixed order.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::appearance::{class, scaled, uniform, Palette};
use super::draws::{away, chance, log_uniform, poisson};
use super::layout::LayoutStats;
use super::projection::Camera;
use super::scene::{Cuboid, Ground, Pattern, Scene, SignShape, Thing};
use super::traffic::{people, vehicles, Carriageway};

/// Draws the scene of one sample.
pub(crate) fn sample_scene(stats: &LayoutStats, pal: &Palette, width: u32, height: u32, rng: &mut ChaCha8Rng) -> Scene {
    let (w, h) = (width as f32, height as f32);
    let camera = Camera {
        width: w,
        height: h,
        horizon: h * uniform(rng, stats.horizon),
        center: w * (0.5 + uniform(rng, stats.yaw)),
        focal: h * uniform(rng, stats.focal),
        eye: uniform(rng, stats.eye),
    };

    // The carriageway: the camera drives in one of the right-hand lanes; left lanes are oncoming.
    let lanes = rng.random_range(stats.lanes.0..=stats.lanes.1.max(stats.lanes.0)) as usize;
    let lane_w = uniform(rng, stats.lane_width);
    let own = lanes - 1 - rng.random_range(0..(lanes / 2).max(1));
    let lanes_left = -(own as f32 + 0.5 + uniform(rng, (-0.15, 0.15))) * lane_w;
    let parking = [chance(rng, stats.p_parking), chance(rng, stats.p_parking)];
    let carriageway = Carriageway { lanes, lane_w, left: lanes_left, parking };
    const PARKING_W: f32 = 2.3;
    let road = (
        lanes_left - if parking[0] { PARKING_W } else { 0.0 },
        lanes_left + lanes as f32 * lane_w + if parking[1] { PARKING_W } else { 0.0 },
    );

    let mut sidewalk = [0.0; 2];
    let mut verge = [0.0; 2];
    let mut beyond = [class::TERRAIN; 2];
    for side in 0..2 {
        if chance(rng, stats.p_sidewalk) {
            sidewalk[side] = uniform(rng, stats.sidewalk);
        }
        if chance(rng, stats.p_verge) {
            verge[side] = uniform(rng, stats.verge);
        }
        if sidewalk[side] == 0.0 && verge[side] == 0.0 {
            // The road never runs straight into a facade.
            verge[side] = uniform(rng, (0.5, 2.0));
        }
        if !chance(rng, stats.p_beyond_terrain) {
            beyond[side] = class::SIDEWALK;
        }
    }
    let cross = chance(rng, stats.p_cross).then(|| {
        let z0 = uniform(rng, (12.0, 60.0));
        (z0, z0 + uniform(rng, (9.0, 16.0)))
    });
    let crosswalk = cross.filter(|_| chance(rng, 0.7)).map(|(z0, _)| (z0 - 4.5, z0 - 1.0));
    let ground = Ground {
        road,
        sidewalk,
        verge,
        beyond,
        cross,
        lane_lines: (1..lanes).map(|k| lanes_left + k as f32 * lane_w).collect(),
        crosswalk,
        road_color: pal.color(class::ROAD, rng),
        sidewalk_color: pal.color(class::SIDEWALK, rng),
        terrain_color: pal.color(class::TERRAIN, rng),
        paint_color: pal.materials.paint.sample(rng),
    };

    let zenith = pal.color(class::SKY, rng);
    // The sky lightens towards the horizon (more air in the line of sight).
    let sky = (zenith, [zenith[0] * 0.6 + 0.4, zenith[1] * 0.6 + 0.4, zenith[2] * 0.6 + 0.4]);
    let length = uniform(rng, stats.street_length);

    let mut back = Vec::new();
    let mut front = Vec::new();
    for side in 0..2 {
        roadside_blocks(stats, pal, &ground, side, length, rng, &mut back);
        front_row(stats, pal, &ground, side, length, rng, &mut front);
    }
    if chance(rng, stats.p_end_building) {
        // A building across the far end of the street closes the view.
        let z = length * uniform(rng, (0.6, 1.0));
        let b = Cuboid { x: (-80.0, 80.0), y: (0.0, uniform(rng, stats.building_height)), z: (z, z + 15.0) };
        back.push(Thing::Block { label: class::BUILDING, b, color: pal.color(class::BUILDING, rng), pattern: windows(pal, rng) });
    }

    let mut objects = Vec::new();
    street_furniture(stats, pal, &ground, length, rng, &mut objects);
    people(stats, pal, &ground, &carriageway, rng, &mut objects);
    vehicles(stats, pal, &ground, &carriageway, rng, &mut objects);

    for list in [&mut back, &mut front, &mut objects] {
        list.sort_by(|a, b| b.depth().total_cmp(&a.depth()));
    }
    Scene { camera, ground, sky, back, front, objects }
}

fn windows(pal: &Palette, rng: &mut ChaCha8Rng) -> Pattern {
    Pattern::Windows {
        storey: uniform(rng, (2.8, 3.6)),
        bay: uniform(rng, (2.2, 4.0)),
        fill: (uniform(rng, (0.35, 0.7)), uniform(rng, (0.4, 0.65))),
        glass: pal.materials.glass.sample(rng),
    }
}

/// Signed lateral box `[inner, inner + depth]` pointing away from the road on `side`.
fn outward(side: usize, inner: f32, depth: f32) -> (f32, f32) {
    if side == 0 {
        (inner - depth, inner)
    } else {
        (inner, inner + depth)
    }
}

/// The back row of one side: buildings, vegetation blocks, walls and gaps from behind the camera
/// to the end of the street, interrupted by the cross street.
fn roadside_blocks(stats: &LayoutStats, pal: &Palette, g: &Ground, side: usize, length: f32, rng: &mut ChaCha8Rng, out: &mut Vec<Thing>) {
    let edge = g.outer_edge(side);
    let mut z = -10.0;
    while z < length {
        if let Some((c0, c1)) = g.cross {
            if z > c0 - 1.0 && z < c1 + 1.0 {
                z = c1 + 1.0;
                continue;
            }
        }
        let roll = rng.random::<f32>();
        let mut len = if roll < stats.p_building { uniform(rng, stats.building_length) } else { uniform(rng, (8.0, 30.0)) };
        if let Some((c0, _)) = g.cross {
            if z < c0 - 1.0 && z + len > c0 - 1.0 {
                len = c0 - 1.0 - z;
            }
        }
        let z1 = (z + len).min(length);
        let inner = away(side, edge, uniform(rng, stats.setback));
        if roll < stats.p_building {
            let b =
                Cuboid { x: outward(side, inner, uniform(rng, (12.0, 20.0))), y: (0.0, uniform(rng, stats.building_height)), z: (z, z1) };
            out.push(Thing::Block { label: class::BUILDING, b, color: pal.color(class::BUILDING, rng), pattern: windows(pal, rng) });
        } else if roll < stats.p_building + stats.p_vegetation_block {
            // A park or tree line: low bushes and a row of crowns above them.
            let color = pal.color(class::VEGETATION, rng);
            let b = Cuboid { x: outward(side, inner, 6.0), y: (0.0, uniform(rng, (1.0, 3.0))), z: (z, z1) };
            out.push(Thing::Block { label: class::VEGETATION, b, color, pattern: Pattern::None });
            let mut zc = z + uniform(rng, (0.0, 3.0));
            while zc < z1 {
                let r = uniform(rng, (1.8, 3.6));
                let tone = uniform(rng, (0.8, 1.15));
                out.push(Thing::Crown {
                    x: away(side, inner, uniform(rng, (0.5, 4.0))),
                    y: uniform(rng, (3.0, 9.0)),
                    z: zc,
                    r,
                    color: scaled(color, tone),
                });
                zc += uniform(rng, (2.5, 6.0));
            }
        } else if roll < stats.p_building + stats.p_vegetation_block + stats.p_wall_block {
            let b = Cuboid { x: outward(side, inner, 0.4), y: (0.0, uniform(rng, (1.5, 3.5))), z: (z, z1) };
            out.push(Thing::Block { label: class::WALL, b, color: pal.color(class::WALL, rng), pattern: Pattern::None });
            if chance(rng, 0.5) {
                let inner2 = away(side, inner, uniform(rng, (6.0, 15.0)));
                let b = Cuboid { x: outward(side, inner2, 15.0), y: (0.0, uniform(rng, stats.building_height)), z: (z, z1) };
                out.push(Thing::Block { label: class::BUILDING, b, color: pal.color(class::BUILDING, rng), pattern: windows(pal, rng) });
            }
        } else if chance(rng, 0.4) {
            // A gap with a building set far back.
            let inner2 = away(side, inner, uniform(rng, (15.0, 40.0)));
            let b = Cuboid { x: outward(side, inner2, 15.0), y: (0.0, uniform(rng, stats.building_height)), z: (z, z1) };
            out.push(Thing::Block { label: class::BUILDING, b, color: pal.color(class::BUILDING, rng), pattern: windows(pal, rng) });
        }
        z = z1;
    }
}

/// Fences, low walls and hedges along the outer edge of the ground zones.
fn front_row(stats: &LayoutStats, pal: &Palette, g: &Ground, side: usize, length: f32, rng: &mut ChaCha8Rng, out: &mut Vec<Thing>) {
    let edge = if side == 0 { g.road.0 } else { g.road.1 };
    let inner = away(side, edge, g.front_offset(side));
    let mut z = -5.0;
    while z < length.min(150.0) {
        let len = uniform(rng, (6.0, 25.0));
        let (z0, z1) = (z, z + len);
        z = z1 + uniform(rng, (0.0, 10.0));
        if g.cross.is_some_and(|(c0, c1)| z1 > c0 - 1.0 && z0 < c1 + 1.0) {
            continue;
        }
        let roll = rng.random::<f32>();
        if roll < stats.p_fence {
            let b = Cuboid { x: outward(side, inner, 0.08), y: (0.0, uniform(rng, (1.0, 1.8))), z: (z0, z1) };
            let color = pal.color(class::FENCE, rng);
            let pattern = Pattern::Posts { spacing: uniform(rng, (1.5, 3.0)), color: scaled(color, 0.6) };
            out.push(Thing::Block { label: class::FENCE, b, color, pattern });
        } else if roll < stats.p_fence + stats.p_wall {
            let b = Cuboid { x: outward(side, inner, 0.3), y: (0.0, uniform(rng, (0.6, 2.2))), z: (z0, z1) };
            out.push(Thing::Block { label: class::WALL, b, color: pal.color(class::WALL, rng), pattern: Pattern::None });
        } else if roll < stats.p_fence + stats.p_wall + stats.p_hedge {
            let b = Cuboid { x: outward(side, inner, 0.8), y: (0.0, uniform(rng, (0.8, 1.8))), z: (z0, z1) };
            out.push(Thing::Block { label: class::VEGETATION, b, color: pal.color(class::VEGETATION, rng), pattern: Pattern::None });
        }
    }
}

fn sign(pal: &Palette, x: f32, z: f32, y: f32, post: Option<[f32; 3]>, rng: &mut ChaCha8Rng) -> Thing {
    let m = &pal.materials;
    let (shape, face, rim) = match rng.random_range(0..4) {
        0 => (SignShape::Disc, m.sign_white.sample(rng), m.sign_red.sample(rng)),
        1 => (SignShape::Disc, m.sign_blue.sample(rng), m.sign_blue.sample(rng)),
        2 => (SignShape::Triangle, m.sign_white.sample(rng), m.sign_red.sample(rng)),
        _ => {
            if rng.random::<bool>() {
                (SignShape::Diamond, m.sign_yellow.sample(rng), m.sign_white.sample(rng))
            } else {
                (SignShape::Square, m.sign_blue.sample(rng), m.sign_white.sample(rng))
            }
        }
    };
    Thing::Sign { x, z, y, size: uniform(rng, (0.6, 0.9)), shape, face, rim, post }
}

/// Street lights (some carrying signs), free-standing signs, traffic lights at the crossing and
/// rows of street trees.
fn street_furniture(stats: &LayoutStats, pal: &Palette, g: &Ground, length: f32, rng: &mut ChaCha8Rng, out: &mut Vec<Thing>) {
    let reach = length.min(120.0);
    let road_edge = |side: usize| if side == 0 { g.road.0 } else { g.road.1 };
    for side in 0..2 {
        let kerb = away(side, road_edge(side), 0.4f32.min(0.5 * g.front_offset(side)));
        let pole_color = pal.color(class::POLE, rng);
        let mut z = uniform(rng, (2.0, 12.0));
        while z < reach {
            if !g.near_cross(z, 1.0) {
                let arm = if chance(rng, 0.7) { away(side, 0.0, -uniform(rng, (1.0, 2.5))) } else { 0.0 };
                out.push(Thing::Pole { x: kerb, z, height: uniform(rng, (5.0, 9.0)), arm, color: pole_color });
                if chance(rng, stats.p_pole_sign) {
                    let y = uniform(rng, (2.2, 3.2));
                    out.push(sign(pal, kerb, z - 0.05, y, None, rng));
                }
            }
            z += uniform(rng, stats.pole_spacing);
        }
        if chance(rng, stats.p_tree_row) {
            // Trees stand in the verge when there is one, else at the kerb between the lights.
            let x = if g.verge[side] > 2.0 {
                away(side, road_edge(side), g.sidewalk[side] + g.verge[side] * 0.5)
            } else {
                away(side, road_edge(side), 0.9f32.min(0.7 * g.front_offset(side)))
            };
            let bark = pal.materials.bark.sample(rng);
            let color = pal.color(class::VEGETATION, rng);
            let mut z = uniform(rng, (3.0, 10.0));
            while z < reach.min(100.0) {
                if !g.near_cross(z, 2.0) {
                    let trunk = uniform(rng, (1.8, 3.2));
                    let r = uniform(rng, (1.3, 2.6));
                    let crowns = (0..rng.random_range(2..5))
                        .map(|_| {
                            (
                                uniform(rng, (-0.6, 0.6)) * r,
                                trunk + r * uniform(rng, (0.6, 1.4)),
                                r * uniform(rng, (0.6, 0.9)),
                                scaled(color, uniform(rng, (0.8, 1.15))),
                            )
                        })
                        .collect();
                    out.push(Thing::Tree { x, z, trunk, bark, crowns });
                }
                z += uniform(rng, stats.tree_spacing);
            }
        }
    }
    for _ in 0..poisson(rng, stats.signs) {
        let side = rng.random_range(0..2usize);
        let x = away(side, road_edge(side), uniform(rng, (0.3, 1.0)).min(0.8 * g.front_offset(side)));
        let z = log_uniform(rng, (5.0, 60.0));
        let y = uniform(rng, (1.8, 2.8));
        let post = pal.color(class::POLE, rng);
        out.push(sign(pal, x, z, y, Some(post), rng));
    }
    // Traffic lights guard the crossing: one at each near corner, sometimes one over the road.
    let light = |x: f32, z: f32, y: f32, mast: Option<f32>, rng: &mut ChaCha8Rng| Thing::Light {
        x,
        z,
        y,
        housing: pal.color(class::TRAFFIC_LIGHT, rng),
        lit: rng.random_range(0..3),
        pole: pal.color(class::POLE, rng),
        mast,
    };
    if let Some((c0, c1)) = g.cross {
        for side in 0..2 {
            let y = uniform(rng, (2.3, 3.2));
            out.push(light(away(side, road_edge(side), 0.5f32.min(0.8 * g.front_offset(side))), c0 - 0.5, y, None, rng));
            if chance(rng, 0.6) {
                let y = uniform(rng, (2.3, 3.2));
                out.push(light(away(side, road_edge(side), 0.5f32.min(0.8 * g.front_offset(side))), c1 + 0.5, y, None, rng));
            }
        }
        if chance(rng, 0.5) {
            // Over the road, hung from a mast on the right-hand kerb.
            let x = uniform(rng, (g.road.0 * 0.5, g.road.1 * 0.5));
            out.push(light(x, c0 + 0.5, uniform(rng, (4.8, 5.8)), Some(away(1, g.road.1, 0.6)), rng));
        }
    } else if chance(rng, 0.3) {
        let side = rng.random_range(0..2usize);
        let y = uniform(rng, (2.3, 3.2));
        out.push(light(away(side, road_edge(side), 0.5f32.min(0.8 * g.front_offset(side))), log_uniform(rng, (8.0, 50.0)), y, None, rng));
    }
}

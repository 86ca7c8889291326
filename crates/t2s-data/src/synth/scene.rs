//! What a scene holds, in world coordinates: the street's ground zones, the blocks along it and
//! the objects on it, each with its own colour. `street.rs` and `traffic.rs` draw one from a
//! domain's layout statistics (`layout.rs`) and palette (`appearance.rs`); `render.rs` draws it.
//!
//! The street runs straight along `z`; the camera drives in a right-hand lane. Across the street
//! (along `x`) the ground is, from the centre out: road (with parking strips), sidewalk, a grass
//! verge (terrain), then terrain or paving behind the facade line. Blocks (buildings, vegetation,
//! walls) line both sides; a low front row (fences, walls, hedges) stands before them; poles,
//! signs, traffic lights, trees, people, two-wheelers and vehicles stand on the ground. An
//! optional cross street interrupts the blocks and brings traffic lights and a crossing.

use super::appearance::{class, scaled};
use super::projection::Camera;

/// An axis-aligned box in world coordinates: `x` across, `y` up, `z` along the street.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cuboid {
    pub x: (f32, f32),
    pub y: (f32, f32),
    pub z: (f32, f32),
}

/// The ground plane's zones and paint.
#[derive(Debug, Clone)]
pub(crate) struct Ground {
    /// Lateral extent of the carriageway including parking strips.
    pub road: (f32, f32),
    /// Sidewalk widths, left and right (0 = none).
    pub sidewalk: [f32; 2],
    /// Grass verge widths beyond the sidewalks, left and right.
    pub verge: [f32; 2],
    /// Class of the ground behind the verge, left and right (terrain or sidewalk).
    pub beyond: [u8; 2],
    /// Depth range of a cross street (all road).
    pub cross: Option<(f32, f32)>,
    /// Lateral positions of dashed lane lines.
    pub lane_lines: Vec<f32>,
    /// Depth range of a zebra crossing.
    pub crosswalk: Option<(f32, f32)>,
    pub road_color: [f32; 3],
    pub sidewalk_color: [f32; 3],
    pub terrain_color: [f32; 3],
    pub paint_color: [f32; 3],
}

impl Ground {
    /// The class of the ground at `(x, z)`.
    pub(crate) fn label_at(&self, x: f32, z: f32) -> u8 {
        if let Some((z0, z1)) = self.cross {
            if z >= z0 && z < z1 {
                return class::ROAD;
            }
        }
        if x >= self.road.0 && x < self.road.1 {
            return class::ROAD;
        }
        let (side, d) = if x >= self.road.1 { (1, x - self.road.1) } else { (0, self.road.0 - x) };
        if d < self.sidewalk[side] {
            class::SIDEWALK
        } else if d < self.sidewalk[side] + self.verge[side] {
            class::TERRAIN
        } else {
            self.beyond[side]
        }
    }

    /// The colour of the ground at `(x, z)` whose class is `label`, with road markings.
    pub(crate) fn color_at(&self, x: f32, z: f32, label: u8) -> [f32; 3] {
        match label {
            class::ROAD => {
                let dashed = self.lane_lines.iter().any(|&lx| (x - lx).abs() < 0.07) && z.rem_euclid(9.0) < 3.5;
                let zebra = self.crosswalk.is_some_and(|(z0, z1)| z >= z0 && z < z1 && x.rem_euclid(1.2) < 0.6);
                if dashed || zebra {
                    self.paint_color
                } else {
                    self.road_color
                }
            }
            class::SIDEWALK => {
                // Kerb stones along the road edge: a lighter band, a cue to where the road ends.
                let from_road = (x - self.road.1).max(self.road.0 - x);
                if from_road < 0.2 && !self.cross.is_some_and(|(z0, z1)| z >= z0 && z < z1) {
                    scaled(self.sidewalk_color, 1.25)
                } else {
                    self.sidewalk_color
                }
            }
            _ => self.terrain_color,
        }
    }

    /// Lateral position of the outer edge of the ground zones (where the facades' setback
    /// starts) on a side (0 left, 1 right), signed.
    pub(crate) fn outer_edge(&self, side: usize) -> f32 {
        let w = self.sidewalk[side] + self.verge[side];
        if side == 0 {
            self.road.0 - w
        } else {
            self.road.1 + w
        }
    }

    /// Distance from the road edge to the inner face of the front row (fences, walls, hedges)
    /// on a side (0 left, 1 right). Everything standing on the sidewalk or verge stays nearer the
    /// road than this, so that it is in front of the front row along every ray, as the drawing
    /// order assumes.
    pub(crate) fn front_offset(&self, side: usize) -> f32 {
        let room = self.sidewalk[side] + self.verge[side];
        room - 0.9f32.min(0.5 * room)
    }

    /// Whether depth `z` lies within `margin` of the cross street.
    pub(crate) fn near_cross(&self, z: f32, margin: f32) -> bool {
        self.cross.is_some_and(|(z0, z1)| z > z0 - margin && z < z1 + margin)
    }
}

/// Regular marks on a block's faces (appearance only; they keep the block's label).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pattern {
    /// Plain faces.
    None,
    /// A grid of windows: storey height, bay width, window fraction of each, glass colour.
    Windows { storey: f32, bay: f32, fill: (f32, f32), glass: [f32; 3] },
    /// Vertical posts every `spacing` metres (fences).
    Posts { spacing: f32, color: [f32; 3] },
}

/// Kinds of vehicle (each a few boxes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum VehicleKind {
    Car,
    Truck,
    Bus,
    Tram,
}

/// A vehicle: its bounding box, colours and which way it faces.
#[derive(Debug, Clone)]
pub(crate) struct Vehicle {
    pub kind: VehicleKind,
    pub b: Cuboid,
    pub color: [f32; 3],
    pub glass: [f32; 3],
    pub tyre: [f32; 3],
    /// Its front faces the camera (oncoming traffic).
    pub oncoming: bool,
    /// It drives across the view (in a cross street) instead of along it.
    pub crossing: bool,
}

/// A person standing or walking (label person) or riding (label rider).
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub x: f32,
    pub z: f32,
    /// Height of the feet above the ground (a rider sits on a saddle).
    pub base: f32,
    pub height: f32,
    pub skin: [f32; 3],
    pub top: [f32; 3],
    pub bottom: [f32; 3],
    /// Stride of the legs, -1..1.
    pub stride: f32,
    pub label: u8,
}

/// A bicycle or motorcycle seen from the side, foreshortened by `k` (1 = crossing the view).
#[derive(Debug, Clone)]
pub(crate) struct Cycle {
    pub x: f32,
    pub z: f32,
    pub motor: bool,
    pub k: f32,
    /// +1 pointing right, -1 left.
    pub dir: f32,
    pub color: [f32; 3],
    pub tyre: [f32; 3],
    pub rider: Option<Person>,
}

/// Shapes of traffic signs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SignShape {
    Disc,
    Triangle,
    Square,
    Diamond,
}

/// Everything drawn on top of the ground and the sky.
#[derive(Debug, Clone)]
pub(crate) enum Thing {
    /// A box of one class: building, wall, fence, hedge or the lower part of a vegetation block.
    Block {
        label: u8,
        b: Cuboid,
        color: [f32; 3],
        pattern: Pattern,
    },
    /// Foliage seen as an ellipse facing the camera (tree crowns, park trees).
    Crown {
        x: f32,
        y: f32,
        z: f32,
        r: f32,
        color: [f32; 3],
    },
    /// A street tree: trunk and a cluster of crowns `(dx, y, r, colour)`.
    Tree {
        x: f32,
        z: f32,
        trunk: f32,
        bark: [f32; 3],
        crowns: Vec<(f32, f32, f32, [f32; 3])>,
    },
    Vehicle(Vehicle),
    Person(Person),
    Cycle(Cycle),
    /// A street light: a pole with an optional arm (signed length along x) and lamp.
    Pole {
        x: f32,
        z: f32,
        height: f32,
        arm: f32,
        color: [f32; 3],
    },
    /// A traffic sign centred at height `y`, with its own post when `post` is set.
    Sign {
        x: f32,
        z: f32,
        y: f32,
        size: f32,
        shape: SignShape,
        face: [f32; 3],
        rim: [f32; 3],
        post: Option<[f32; 3]>,
    },
    /// A traffic light housing with its bottom at height `y` and lamp `lit` (0 red, 1 amber,
    /// 2 green) on. It stands on its own post, or with `mast: Some(x)` hangs from an arm over the
    /// road held by a pole at `x`.
    Light {
        x: f32,
        z: f32,
        y: f32,
        housing: [f32; 3],
        lit: usize,
        pole: [f32; 3],
        mast: Option<f32>,
    },
}

impl Thing {
    /// The depth painters sort by: the nearest depth of the thing.
    pub(crate) fn depth(&self) -> f32 {
        match self {
            Thing::Block { b, .. } => b.z.0,
            Thing::Crown { z, .. } | Thing::Tree { z, .. } | Thing::Pole { z, .. } | Thing::Sign { z, .. } | Thing::Light { z, .. } => *z,
            Thing::Vehicle(v) => v.b.z.0,
            Thing::Person(p) => p.z,
            Thing::Cycle(c) => c.z,
        }
    }
}

/// A whole scene, ready to rasterise.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub camera: Camera,
    pub ground: Ground,
    /// Sky colour at the zenith and at the horizon.
    pub sky: ([f32; 3], [f32; 3]),
    /// Blocks and foliage behind the facade line, sorted far to near.
    pub back: Vec<Thing>,
    /// The low front row (fences, walls, hedges), sorted far to near.
    pub front: Vec<Thing>,
    /// Objects on the street, sorted far to near.
    pub objects: Vec<Thing>,
}

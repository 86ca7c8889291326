//! The layout statistics of each domain: camera, street geometry and how many of each kind of
//! object a scene holds. These numbers set the class distribution of a domain; together with
//! `appearance.rs` they are the whole domain shift.
//!
//! Both domains share every shape and every placement rule, so a network's knowledge of layout
//! and context transfers; the target differs in proportions: lower buildings and more vegetation
//! blocks and trees (more vegetation and sky), more grass verges (more terrain), more pedestrians
//! and cyclists, fewer parked and moving cars, fewer trucks and buses, a horizon lower in the
//! image and narrower streets.

use super::Domain;

/// A closed range `(low, high)` a value is drawn from uniformly.
pub(crate) type Range = (f32, f32);

/// The numbers a scene is drawn with. Distances in metres; image fractions as stated.
#[derive(Debug, Clone)]
pub(crate) struct LayoutStats {
    /// Horizon row as a fraction of the image height from the top.
    pub horizon: Range,
    /// Focal length as a fraction of the image height.
    pub focal: Range,
    /// Camera height above the road.
    pub eye: Range,
    /// Horizontal offset of the vanishing point from the image centre, fraction of the width.
    pub yaw: Range,
    /// Number of lanes, inclusive range.
    pub lanes: (u32, u32),
    /// Width of one lane.
    pub lane_width: Range,
    /// Probability that a side of the street has a sidewalk, and its width.
    pub p_sidewalk: f32,
    pub sidewalk: Range,
    /// Probability of a grass verge (terrain) beyond a sidewalk, and its width.
    pub p_verge: f32,
    pub verge: Range,
    /// Probability that the ground behind the verge is terrain (else paved, sidewalk).
    pub p_beyond_terrain: f32,
    /// Probability of a cross street.
    pub p_cross: f32,
    /// Length of the visible street: how far the roadside blocks reach.
    pub street_length: Range,
    /// Distance from the sidewalk/verge edge to the facades.
    pub setback: Range,
    /// Probability that a roadside block is a building, a vegetation block (park, tree line)
    /// or a wall; the rest are gaps.
    pub p_building: f32,
    pub p_vegetation_block: f32,
    pub p_wall_block: f32,
    /// Building heights and lengths along the street.
    pub building_height: Range,
    pub building_length: Range,
    /// Per front-row segment: probabilities of a fence, a low wall and a hedge.
    pub p_fence: f32,
    pub p_wall: f32,
    pub p_hedge: f32,
    /// Spacing of street lights; probability that one carries a traffic sign.
    pub pole_spacing: Range,
    pub p_pole_sign: f32,
    /// Mean number of free-standing signs.
    pub signs: f32,
    /// Probability that a side has a row of trees, and their spacing.
    pub p_tree_row: f32,
    pub tree_spacing: Range,
    /// Mean number of pedestrians; share of them crossing the road.
    pub persons: f32,
    pub p_crossing: f32,
    /// Mean number of ridden two-wheelers; share of motorcycles among them.
    pub cyclists: f32,
    pub p_motorcycle: f32,
    /// Mean number of parked bicycles.
    pub parked_bicycles: f32,
    /// Probability that a side has a parking lane, and how full it is.
    pub p_parking: f32,
    pub parking_fill: f32,
    /// Mean numbers of moving cars, trucks and buses; probability of a tram.
    pub traffic: f32,
    pub trucks: f32,
    pub buses: f32,
    pub p_tram: f32,
    /// Probability of a building closing the street at its far end.
    pub p_end_building: f32,
}

impl LayoutStats {
    /// The statistics of a domain.
    pub(crate) fn of(domain: Domain) -> Self {
        match domain {
            Domain::Source => Self {
                horizon: (0.36, 0.46),
                focal: (0.9, 1.1),
                eye: (1.5, 1.8),
                yaw: (-0.06, 0.06),
                lanes: (2, 4),
                lane_width: (3.0, 3.6),
                p_sidewalk: 0.95,
                sidewalk: (2.0, 5.0),
                p_verge: 0.25,
                verge: (0.8, 3.0),
                p_beyond_terrain: 0.3,
                p_cross: 0.5,
                street_length: (140.0, 260.0),
                setback: (0.0, 3.0),
                p_building: 0.82,
                p_vegetation_block: 0.08,
                p_wall_block: 0.04,
                building_height: (8.0, 32.0),
                building_length: (8.0, 30.0),
                p_fence: 0.12,
                p_wall: 0.12,
                p_hedge: 0.04,
                pole_spacing: (14.0, 24.0),
                p_pole_sign: 0.35,
                signs: 1.5,
                p_tree_row: 0.25,
                tree_spacing: (8.0, 15.0),
                persons: 3.0,
                p_crossing: 0.1,
                cyclists: 0.8,
                p_motorcycle: 0.5,
                parked_bicycles: 0.4,
                p_parking: 0.8,
                parking_fill: 0.7,
                traffic: 4.0,
                trucks: 0.6,
                buses: 0.35,
                p_tram: 0.08,
                p_end_building: 0.3,
            },
            Domain::Target => Self {
                horizon: (0.42, 0.54),
                focal: (0.9, 1.1),
                eye: (1.3, 1.6),
                yaw: (-0.06, 0.06),
                lanes: (2, 3),
                lane_width: (2.9, 3.4),
                p_sidewalk: 0.85,
                sidewalk: (1.5, 4.0),
                p_verge: 0.65,
                verge: (1.0, 5.0),
                p_beyond_terrain: 0.7,
                p_cross: 0.35,
                street_length: (120.0, 220.0),
                setback: (0.0, 4.0),
                p_building: 0.5,
                p_vegetation_block: 0.36,
                p_wall_block: 0.04,
                building_height: (5.0, 16.0),
                building_length: (8.0, 24.0),
                p_fence: 0.18,
                p_wall: 0.08,
                p_hedge: 0.22,
                pole_spacing: (18.0, 32.0),
                p_pole_sign: 0.3,
                signs: 1.0,
                p_tree_row: 0.7,
                tree_spacing: (6.0, 11.0),
                persons: 6.0,
                p_crossing: 0.15,
                cyclists: 1.5,
                p_motorcycle: 0.15,
                parked_bicycles: 1.2,
                p_parking: 0.4,
                parking_fill: 0.45,
                traffic: 1.5,
                trucks: 0.25,
                buses: 0.15,
                p_tram: 0.04,
                p_end_building: 0.15,
            },
        }
    }
}

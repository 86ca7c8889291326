//! How each domain looks: per-class colour distributions, per-class textures and the per-image
//! illumination and sensor ranges. This file and `layout.rs` are where the domain shift lives.
//!
//! Every class has a colour *distribution* per domain (hue, saturation and value, each with a
//! spread), and every instance draws its own colour, so a network cannot key on one RGB value.
//! The target's distributions are shifted from the source's by about one to two spreads, in
//! directions chosen to cause the confusions real synthetic-to-real transfer suffers (dry
//! terrain drifting towards sidewalk, olive vegetation towards terrain, an overcast sky towards
//! building grey, warm pavers towards brick), while shape, layout and context stay the same.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Domain;

/// Number of classes (the 19 Cityscapes train ids).
pub(crate) const NUM_CLASSES: usize = 19;

/// Train ids by name, so that scene code reads as words.
pub(crate) mod class {
    pub const ROAD: u8 = 0;
    pub const SIDEWALK: u8 = 1;
    pub const BUILDING: u8 = 2;
    pub const WALL: u8 = 3;
    pub const FENCE: u8 = 4;
    pub const POLE: u8 = 5;
    pub const TRAFFIC_LIGHT: u8 = 6;
    pub const TRAFFIC_SIGN: u8 = 7;
    pub const VEGETATION: u8 = 8;
    pub const TERRAIN: u8 = 9;
    pub const SKY: u8 = 10;
    pub const PERSON: u8 = 11;
    pub const RIDER: u8 = 12;
    pub const CAR: u8 = 13;
    pub const TRUCK: u8 = 14;
    pub const BUS: u8 = 15;
    pub const TRAIN: u8 = 16;
    pub const MOTORCYCLE: u8 = 17;
    pub const BICYCLE: u8 = 18;
}

/// A colour distribution in HSV: means and standard deviations. A hue spread of 180° or more
/// means "any hue" (vehicles, clothes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColorDist {
    h: f32,
    h_sd: f32,
    s: f32,
    s_sd: f32,
    v: f32,
    v_sd: f32,
}

const fn cd(h: f32, h_sd: f32, s: f32, s_sd: f32, v: f32, v_sd: f32) -> ColorDist {
    ColorDist { h, h_sd, s, s_sd, v, v_sd }
}

/// A standard-normal draw (Box–Muller; rand 0.9 has no normal distribution without rand_distr).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

pub(crate) use crate::sample::uniform;

/// HSV (hue in degrees, saturation and value in 0..1) to RGB in 0..1.
pub(crate) fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

impl ColorDist {
    /// One instance's colour.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> [f32; 3] {
        let h = if self.h_sd >= 180.0 { rng.random::<f32>() * 360.0 } else { self.h + self.h_sd * normal(rng) };
        let s = (self.s + self.s_sd * normal(rng)).clamp(0.0, 1.0);
        let v = (self.v + self.v_sd * normal(rng)).clamp(0.03, 1.0);
        hsv(h, s, v)
    }
}

/// Colours of the parts that are not a class of their own (glass, tyres, skin, paint, lamps):
/// they take the label of the object they belong to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Materials {
    /// Windows of buildings and vehicles.
    pub glass: ColorDist,
    /// Tyres and dark mechanical parts.
    pub tyre: ColorDist,
    /// Faces and hands.
    pub skin: ColorDist,
    /// Lane markings and crossings.
    pub paint: ColorDist,
    /// Tree trunks (labelled vegetation, as in Cityscapes).
    pub bark: ColorDist,
    /// The white of sign faces.
    pub sign_white: ColorDist,
    /// Red sign rims.
    pub sign_red: ColorDist,
    /// Blue sign faces.
    pub sign_blue: ColorDist,
    /// Yellow warning signs.
    pub sign_yellow: ColorDist,
}

/// Per-class texture: relative brightness modulation amplitude and spatial frequency (cycles per
/// image height, so textures look alike at any resolution).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Texture {
    pub amp: f32,
    pub freq: f32,
}

const fn tx(amp: f32, freq: f32) -> Texture {
    Texture { amp, freq }
}

/// Everything about a domain's appearance that does not change from image to image.
#[derive(Debug, Clone)]
pub(crate) struct Palette {
    /// Colour distribution of each class, indexed by train id.
    pub classes: [ColorDist; NUM_CLASSES],
    /// Colours of object parts.
    pub materials: Materials,
    /// Texture of each class, indexed by train id.
    pub textures: [Texture; NUM_CLASSES],
    ranges: LookRanges,
}

/// Ranges from which each image's illumination and sensor are drawn.
#[derive(Debug, Clone, Copy)]
struct LookRanges {
    ambient: (f32, f32),
    diffuse: (f32, f32),
    exposure: (f32, f32),
    /// Colour temperature shift: > 0 warm (more red, less blue), < 0 cool.
    temperature: (f32, f32),
    tint: (f32, f32),
    saturation: (f32, f32),
    contrast: (f32, f32),
    p_haze: f32,
    visibility: (f32, f32),
    haze_strength: (f32, f32),
    vignette: (f32, f32),
    /// Gaussian blur sigma as a fraction of the image height.
    blur: (f32, f32),
    noise_sd: (f32, f32),
}

/// One image's illumination and sensor, drawn from the domain's ranges.
#[derive(Debug, Clone)]
pub(crate) struct Look {
    /// Unit vector pointing at the sun (world axes).
    pub sun: [f32; 3],
    /// Brightness of faces turned away from the sun.
    pub ambient: f32,
    /// Extra brightness of faces turned to the sun.
    pub diffuse: f32,
    /// Per-channel gain: exposure times white balance.
    pub gain: [f32; 3],
    /// Saturation multiplier (1 = unchanged).
    pub saturation: f32,
    /// Contrast multiplier around mid-grey (1 = unchanged).
    pub contrast: f32,
    /// Haze colour, visibility (metres, e-folding distance) and maximum strength.
    pub haze: Option<([f32; 3], f32, f32)>,
    /// Darkening at the image corners (0 = none).
    pub vignette: f32,
    /// Blur sigma as a fraction of the image height (0 = sharp).
    pub blur: f32,
    /// Standard deviation of the additive sensor noise (0..1 scale).
    pub noise_sd: f32,
    /// Textures per class.
    pub textures: [Texture; NUM_CLASSES],
    /// Seed of the per-pixel hashes (textures, sensor noise).
    pub pixel_seed: u64,
}

impl Look {
    /// Brightness factor of a face with outward unit normal `n`.
    #[inline]
    pub(crate) fn shade(&self, n: [f32; 3]) -> f32 {
        let d = n[0] * self.sun[0] + n[1] * self.sun[1] + n[2] * self.sun[2];
        self.ambient + self.diffuse * d.max(0.0)
    }
}

/// Scales a colour by a brightness factor.
#[inline]
pub(crate) fn scaled(c: [f32; 3], k: f32) -> [f32; 3] {
    [c[0] * k, c[1] * k, c[2] * k]
}

/// Linear interpolation between two colours.
#[inline]
pub(crate) fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

const ANY: f32 = 360.0;

impl Palette {
    /// The palette of a domain.
    pub(crate) fn of(domain: Domain) -> Self {
        match domain {
            Domain::Source => Self::source(),
            Domain::Target => Self::target(),
        }
    }

    /// The "game engine": saturated, bright, clean colours; flat faces with strong sun shading;
    /// no haze, blur, noise or vignetting; almost untextured surfaces.
    fn source() -> Self {
        Self {
            classes: [
                cd(250.0, 10.0, 0.06, 0.03, 0.40, 0.05), // road: cool dark grey
                cd(30.0, 15.0, 0.10, 0.05, 0.70, 0.06),  // sidewalk: light beige-grey
                cd(30.0, 25.0, 0.18, 0.08, 0.62, 0.12),  // building
                cd(40.0, 20.0, 0.10, 0.05, 0.74, 0.07),  // wall
                cd(30.0, 15.0, 0.35, 0.10, 0.55, 0.10),  // fence: wood
                cd(210.0, 20.0, 0.06, 0.03, 0.45, 0.08), // pole
                cd(80.0, 20.0, 0.25, 0.10, 0.22, 0.05),  // traffic light housing
                cd(220.0, 10.0, 0.75, 0.10, 0.70, 0.10), // traffic sign (overridden per sign type)
                cd(100.0, 10.0, 0.62, 0.08, 0.42, 0.07), // vegetation: saturated green
                cd(82.0, 8.0, 0.52, 0.08, 0.64, 0.07),   // terrain: light grass green
                cd(208.0, 6.0, 0.50, 0.08, 0.92, 0.04),  // sky: clear blue
                cd(0.0, ANY, 0.50, 0.20, 0.50, 0.20),    // person: clothes
                cd(0.0, ANY, 0.55, 0.20, 0.50, 0.20),    // rider: clothes
                cd(0.0, ANY, 0.65, 0.20, 0.62, 0.20),    // car: any bright colour
                cd(0.0, ANY, 0.35, 0.20, 0.70, 0.15),    // truck
                cd(0.0, ANY, 0.70, 0.15, 0.70, 0.10),    // bus
                cd(15.0, 30.0, 0.15, 0.10, 0.85, 0.06),  // train (tram)
                cd(0.0, ANY, 0.60, 0.20, 0.45, 0.15),    // motorcycle
                cd(0.0, ANY, 0.60, 0.20, 0.50, 0.15),    // bicycle
            ],
            materials: Materials {
                glass: cd(210.0, 10.0, 0.35, 0.10, 0.30, 0.06),
                tyre: cd(0.0, 0.0, 0.0, 0.0, 0.12, 0.03),
                skin: cd(25.0, 8.0, 0.40, 0.10, 0.80, 0.08),
                paint: cd(0.0, 0.0, 0.0, 0.02, 0.95, 0.03),
                bark: cd(25.0, 8.0, 0.50, 0.10, 0.30, 0.05),
                sign_white: cd(0.0, 0.0, 0.0, 0.02, 0.97, 0.02),
                sign_red: cd(355.0, 4.0, 0.85, 0.08, 0.85, 0.06),
                sign_blue: cd(220.0, 6.0, 0.80, 0.08, 0.75, 0.06),
                sign_yellow: cd(50.0, 5.0, 0.85, 0.08, 0.92, 0.05),
            },
            textures: [
                tx(0.04, 40.0), // road
                tx(0.00, 1.0),  // sidewalk
                tx(0.00, 1.0),  // building
                tx(0.00, 1.0),  // wall
                tx(0.00, 1.0),  // fence
                tx(0.00, 1.0),  // pole
                tx(0.00, 1.0),  // traffic light
                tx(0.00, 1.0),  // traffic sign
                tx(0.08, 25.0), // vegetation
                tx(0.05, 30.0), // terrain
                tx(0.00, 1.0),  // sky
                tx(0.00, 1.0),  // person
                tx(0.00, 1.0),  // rider
                tx(0.00, 1.0),  // car
                tx(0.00, 1.0),  // truck
                tx(0.00, 1.0),  // bus
                tx(0.00, 1.0),  // train
                tx(0.00, 1.0),  // motorcycle
                tx(0.00, 1.0),  // bicycle
            ],
            ranges: LookRanges {
                ambient: (0.55, 0.65),
                diffuse: (0.45, 0.60),
                exposure: (1.0, 1.08),
                temperature: (0.0, 0.0),
                tint: (0.0, 0.0),
                saturation: (1.0, 1.1),
                contrast: (1.0, 1.1),
                p_haze: 0.0,
                visibility: (1.0, 1.0),
                haze_strength: (0.0, 0.0),
                vignette: (0.0, 0.0),
                blur: (0.0, 0.0),
                noise_sd: (0.0, 0.0),
            },
        }
    }

    /// The "camera": muted, shifted class colours, textured surfaces, overcast light with a
    /// colour cast, haze, vignetting, blur and sensor noise.
    fn target() -> Self {
        Self {
            classes: [
                cd(30.0, 20.0, 0.06, 0.03, 0.52, 0.08),  // road: lighter, warmer
                cd(15.0, 10.0, 0.24, 0.08, 0.56, 0.08),  // sidewalk: reddish pavers (towards building)
                cd(20.0, 20.0, 0.30, 0.10, 0.48, 0.12),  // building: brick and render
                cd(35.0, 15.0, 0.15, 0.08, 0.58, 0.10),  // wall
                cd(120.0, 50.0, 0.15, 0.08, 0.42, 0.10), // fence: painted metal
                cd(200.0, 30.0, 0.08, 0.04, 0.36, 0.08), // pole
                cd(60.0, 30.0, 0.10, 0.05, 0.18, 0.05),  // traffic light housing
                cd(220.0, 10.0, 0.60, 0.10, 0.60, 0.10), // traffic sign (overridden per sign type)
                cd(72.0, 14.0, 0.45, 0.10, 0.33, 0.08),  // vegetation: olive, darker (towards terrain)
                cd(48.0, 12.0, 0.38, 0.10, 0.56, 0.08),  // terrain: dry grass (towards sidewalk)
                cd(205.0, 15.0, 0.12, 0.08, 0.86, 0.06), // sky: overcast grey (towards wall, building)
                cd(0.0, ANY, 0.30, 0.15, 0.35, 0.15),    // person: darker clothes
                cd(0.0, ANY, 0.30, 0.15, 0.35, 0.15),    // rider
                cd(0.0, ANY, 0.20, 0.15, 0.50, 0.25),    // car: greys, blacks, whites
                cd(0.0, ANY, 0.20, 0.15, 0.60, 0.15),    // truck
                cd(0.0, ANY, 0.50, 0.15, 0.60, 0.10),    // bus
                cd(40.0, 40.0, 0.20, 0.10, 0.75, 0.08),  // train (tram)
                cd(0.0, ANY, 0.30, 0.15, 0.30, 0.12),    // motorcycle
                cd(0.0, ANY, 0.40, 0.15, 0.35, 0.12),    // bicycle
            ],
            materials: Materials {
                glass: cd(200.0, 20.0, 0.15, 0.08, 0.22, 0.06),
                tyre: cd(0.0, 0.0, 0.0, 0.0, 0.10, 0.03),
                skin: cd(25.0, 10.0, 0.35, 0.10, 0.65, 0.12),
                paint: cd(45.0, 10.0, 0.10, 0.05, 0.80, 0.06),
                bark: cd(30.0, 10.0, 0.30, 0.10, 0.22, 0.05),
                sign_white: cd(0.0, 0.0, 0.0, 0.03, 0.85, 0.04),
                sign_red: cd(355.0, 5.0, 0.70, 0.10, 0.65, 0.08),
                sign_blue: cd(215.0, 8.0, 0.70, 0.10, 0.55, 0.08),
                sign_yellow: cd(48.0, 6.0, 0.75, 0.10, 0.80, 0.06),
            },
            textures: [
                tx(0.12, 50.0), // road: asphalt grain
                tx(0.12, 35.0), // sidewalk: pavers
                tx(0.14, 12.0), // building: weathering
                tx(0.12, 20.0), // wall
                tx(0.10, 40.0), // fence
                tx(0.05, 30.0), // pole
                tx(0.00, 1.0),  // traffic light
                tx(0.04, 30.0), // traffic sign
                tx(0.30, 28.0), // vegetation: leaves
                tx(0.22, 35.0), // terrain: grass tufts
                tx(0.06, 3.0),  // sky: clouds
                tx(0.08, 30.0), // person
                tx(0.08, 30.0), // rider
                tx(0.05, 20.0), // car
                tx(0.06, 20.0), // truck
                tx(0.06, 20.0), // bus
                tx(0.06, 20.0), // train
                tx(0.06, 30.0), // motorcycle
                tx(0.06, 30.0), // bicycle
            ],
            ranges: LookRanges {
                ambient: (0.70, 0.85),
                diffuse: (0.10, 0.30),
                exposure: (0.8, 1.05),
                temperature: (-0.4, 1.0),
                tint: (-0.04, 0.04),
                saturation: (0.65, 0.9),
                contrast: (0.8, 0.95),
                p_haze: 0.7,
                visibility: (60.0, 250.0),
                haze_strength: (0.3, 0.7),
                vignette: (0.25, 0.5),
                blur: (0.003, 0.007),
                noise_sd: (0.01, 0.03),
            },
        }
    }

    /// One instance's colour of a class.
    pub(crate) fn color(&self, class: u8, rng: &mut ChaCha8Rng) -> [f32; 3] {
        self.classes[class as usize % NUM_CLASSES].sample(rng)
    }

    /// Draws one image's illumination and sensor. `sky` is the image's sky colour (haze takes
    /// its hue from it).
    pub(crate) fn look(&self, sky: [f32; 3], rng: &mut ChaCha8Rng) -> Look {
        let r = &self.ranges;
        // The sun stands behind the camera within ±70° and 25–60° up, so facades facing the street
        // on one side are lit and the other side is in shade.
        let az = uniform(rng, (-70f32, 70.0)).to_radians();
        let el = uniform(rng, (25f32, 60.0)).to_radians();
        let sun = [az.sin() * el.cos(), el.sin(), -az.cos() * el.cos()];
        let exposure = uniform(rng, r.exposure);
        let temp = uniform(rng, r.temperature);
        let tint = uniform(rng, r.tint);
        let gain = [exposure * (1.0 + 0.12 * temp), exposure * (1.0 + tint), exposure * (1.0 - 0.12 * temp)];
        let haze = if rng.random::<f32>() < r.p_haze {
            let grey = (sky[0] + sky[1] + sky[2]) / 3.0;
            Some((mix(sky, [grey; 3], 0.5), uniform(rng, r.visibility), uniform(rng, r.haze_strength)))
        } else {
            None
        };
        Look {
            sun,
            ambient: uniform(rng, r.ambient),
            diffuse: uniform(rng, r.diffuse),
            gain,
            saturation: uniform(rng, r.saturation),
            contrast: uniform(rng, r.contrast),
            haze,
            vignette: uniform(rng, r.vignette),
            blur: uniform(rng, r.blur),
            noise_sd: uniform(rng, r.noise_sd),
            textures: self.textures,
            pixel_seed: rng.random(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::seeded_rng;

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [1.0, 0.0, 0.0]);
        assert_eq!(hsv(120.0, 1.0, 1.0), [0.0, 1.0, 0.0]);
        assert_eq!(hsv(240.0, 1.0, 0.5), [0.0, 0.0, 0.5]);
        assert_eq!(hsv(-120.0, 0.0, 0.25), [0.25, 0.25, 0.25]);
    }

    #[test]
    fn instance_colours_vary_and_stay_in_range() {
        let mut rng = seeded_rng(3, 0);
        for domain in [Domain::Source, Domain::Target] {
            let p = Palette::of(domain);
            for class in 0..NUM_CLASSES as u8 {
                let a = p.color(class, &mut rng);
                let b = p.color(class, &mut rng);
                assert_ne!(a, b, "class {class} has one fixed colour");
                assert!(a.iter().chain(&b).all(|v| (0.0..=1.0).contains(v)));
            }
        }
    }

    /// The documented shift: the target's terrain is more yellow than the source's, its sky far
    /// less saturated, its vegetation darker.
    #[test]
    fn target_colours_shift_in_the_documented_directions() {
        let (s, t) = (Palette::of(Domain::Source), Palette::of(Domain::Target));
        let (terrain, sky, veg) = (class::TERRAIN as usize, class::SKY as usize, class::VEGETATION as usize);
        assert!(t.classes[terrain].h < s.classes[terrain].h - 20.0);
        assert!(t.classes[sky].s < s.classes[sky].s * 0.5);
        assert!(t.classes[veg].v < s.classes[veg].v);
    }
}

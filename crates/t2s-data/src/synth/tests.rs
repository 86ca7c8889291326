//! Tests of the generator as a whole: determinism, sizes, class coverage, the documented domain
//! shift, exact labels and the dataset wrapper.

use super::appearance::{class, Look, Texture, NUM_CLASSES};
use super::projection::Camera;
use super::raster::Canvas;
use super::scene::Cuboid;
use super::*;
use crate::sample::Dataset;
use crate::IGNORE_LABEL;

fn labels(s: &Sample) -> &[u8] {
    s.label.as_ref().expect("synthetic samples are labelled").as_raw()
}

#[test]
fn label_only_rendering_gives_the_same_label() {
    for domain in Domain::ALL {
        for index in [0, 5, VAL_STREAM_BASE + 2] {
            let full = render(domain, 80, 40, 3, index);
            assert_eq!(Some(render_label(domain, 80, 40, 3, index)), full.label, "{domain} {index}");
        }
    }
    let ds = SyntheticDataset::new(SynthConfig { len: 3, width: 64, height: 32, ..SynthConfig::default() }).unwrap();
    assert_eq!(ds.label(2).unwrap(), ds.get(2).unwrap().label);
    assert!(ds.label(3).is_err());
}

#[test]
fn same_seed_and_index_give_identical_bytes_and_others_differ() {
    for domain in Domain::ALL {
        let a = render(domain, 96, 48, 7, 3);
        let b = render(domain, 96, 48, 7, 3);
        assert_eq!(a, b, "{domain}");
        for other in [render(domain, 96, 48, 7, 4), render(domain, 96, 48, 8, 3)] {
            assert_ne!(a.image, other.image, "{domain}");
            assert_ne!(labels(&a), labels(&other), "{domain}");
        }
    }
    assert_ne!(render(Domain::Source, 96, 48, 7, 3).image, render(Domain::Target, 96, 48, 7, 3).image);
}

#[test]
fn any_size_renders_with_label_the_size_of_the_image() {
    for (w, h) in [(64, 32), (257, 129), (512, 256), (1, 1), (3, 50), (0, 0), (0, 5)] {
        for domain in Domain::ALL {
            let s = render(domain, w, h, 1, 0);
            assert_eq!(s.image.dimensions(), (w, h));
            assert_eq!(s.label.as_ref().map(|l| l.dimensions()), Some((w, h)));
        }
    }
}

#[test]
fn the_same_scene_at_two_resolutions_agrees() {
    // Geometry is normalised: downsampling the 256×128 label by 2 (nearest) matches the 128×64
    // render at most pixels (they differ only along edges).
    for domain in Domain::ALL {
        let big = render(domain, 256, 128, 5, 11);
        let small = render(domain, 128, 64, 5, 11);
        let (lb, ls) = (labels(&big), labels(&small));
        let same = (0..64)
            .flat_map(|r| (0..128).map(move |c| (r, c)))
            .filter(|&(r, c)| ls[r * 128 + c] == lb[(2 * r + 1) * 256 + 2 * c + 1])
            .count();
        assert!(same as f32 > 0.9 * 128.0 * 64.0, "{domain}: {same} of {} agree", 128 * 64);
    }
}

#[test]
fn every_label_is_a_train_id_and_sky_and_road_sit_on_their_side_of_the_horizon() {
    for domain in Domain::ALL {
        for index in 0..12 {
            let (s, scene) = render_scene(domain, 128, 64, 2, index);
            let scene = scene.expect("a non-empty image has a scene");
            let l = labels(&s);
            assert!(l.iter().all(|&v| (v as usize) < NUM_CLASSES && v != IGNORE_LABEL));
            let horizon = scene.camera.horizon;
            for (i, &v) in l.iter().enumerate() {
                let yc = (i / 128) as f32 + 0.5;
                if v == class::SKY {
                    assert!(yc < horizon, "{domain} #{index}: sky at row centre {yc} below the horizon {horizon}");
                }
                if v == class::ROAD || v == class::SIDEWALK || v == class::TERRAIN {
                    assert!(yc >= horizon, "{domain} #{index}: ground class {v} at {yc} above the horizon {horizon}");
                }
            }
            // The bottom row is ground or something standing on it, never sky.
            assert!(l[63 * 128..].iter().all(|&v| v != class::SKY));
        }
    }
}

#[test]
fn each_domain_shows_at_least_ten_classes_in_a_handful_of_samples() {
    for domain in Domain::ALL {
        let mut seen = [false; NUM_CLASSES];
        for index in 0..6 {
            for &v in labels(&render(domain, 256, 128, 0, index)) {
                seen[v as usize] = true;
            }
        }
        let n = seen.iter().filter(|&&s| s).count();
        assert!(n >= 10, "{domain}: only {n} classes in 6 samples: {seen:?}");
    }
}

#[test]
fn every_class_occurs_in_both_domains() {
    for domain in Domain::ALL {
        let f = class_frequencies(domain, Split::Train, 128, 64, 0, 150);
        for (c, &share) in f.iter().enumerate() {
            assert!(share > 0.0, "{domain}: class {c} never occurs in 150 samples");
        }
        assert!((f.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}

/// The class distributions differ as docs/synthetic.md states: the target has more vegetation,
/// terrain, sky, people and bicycles, less building and fewer cars.
#[test]
fn class_distributions_shift_in_the_documented_direction() {
    let n = 80;
    let s = class_frequencies(Domain::Source, Split::Train, 128, 64, 0, n);
    let t = class_frequencies(Domain::Target, Split::Train, 128, 64, 0, n);
    let c = |k: u8| k as usize;
    assert!(t[c(class::VEGETATION)] > 1.5 * s[c(class::VEGETATION)], "vegetation {s:?} {t:?}");
    assert!(t[c(class::TERRAIN)] > 1.5 * s[c(class::TERRAIN)], "terrain");
    assert!(t[c(class::SKY)] > 1.5 * s[c(class::SKY)], "sky");
    assert!(t[c(class::PERSON)] > 1.5 * s[c(class::PERSON)], "person");
    assert!(t[c(class::BICYCLE)] > 1.5 * s[c(class::BICYCLE)], "bicycle");
    assert!(t[c(class::CAR)] < 0.67 * s[c(class::CAR)], "car");
    assert!(t[c(class::BUILDING)] < 0.8 * s[c(class::BUILDING)], "building");
}

#[test]
fn the_target_is_noisier_and_blurrier_than_the_source() {
    // Mean absolute difference between horizontal neighbours inside a flat-labelled region is
    // zero-ish for the clean source and clearly positive for the noisy target.
    let roughness = |d: Domain| {
        let (mut sum, mut n) = (0u64, 0u64);
        for index in 0..4 {
            let s = render(d, 128, 64, 3, index);
            let l = labels(&s);
            for r in 0..64 {
                for col in 1..127 {
                    let i = r * 128 + col;
                    if l[i - 1] == l[i] && l[i] == l[i + 1] && l[i] == class::SKY {
                        let (a, b) = (s.image.get_pixel(col as u32 - 1, r as u32).0, s.image.get_pixel(col as u32, r as u32).0);
                        sum += (0..3).map(|k| (a[k] as i32 - b[k] as i32).unsigned_abs() as u64).sum::<u64>();
                        n += 3;
                    }
                }
            }
        }
        sum as f64 / n.max(1) as f64
    };
    let (src, tgt) = (roughness(Domain::Source), roughness(Domain::Target));
    assert!(src < 0.5 && tgt > 2.0 * src.max(0.3), "source {src}, target {tgt}");
}

/// A hand-built scene: one box ahead of the camera straddling its axis, taller than the camera,
/// shows only its near face, whose pixels are exactly those whose centres fall in the projected
/// rectangle.
#[test]
fn a_rendered_box_labels_exactly_the_pixels_it_covers() {
    let cam = Camera { width: 160.0, height: 80.0, horizon: 36.3, center: 81.7, focal: 80.0, eye: 1.5 };
    let look = Look {
        sun: [0.0, 1.0, 0.0],
        ambient: 1.0,
        diffuse: 0.0,
        gain: [1.0; 3],
        saturation: 1.0,
        contrast: 1.0,
        haze: None,
        vignette: 0.0,
        blur: 0.0,
        noise_sd: 0.0,
        textures: [Texture { amp: 0.0, freq: 1.0 }; NUM_CLASSES],
        pixel_seed: 0,
    };
    let mut canvas = Canvas::new(cam, 160, 80);
    let b = Cuboid { x: (-0.9, 1.1), y: (0.0, 2.9), z: (7.3, 11.0) };
    super::shapes::draw_cuboid(&mut canvas, &b, class::TRUCK, [0.2, 0.4, 0.6], &look);
    let (left, top) = cam.project([-0.9, 2.9, 7.3]);
    let (right, bottom) = cam.project([1.1, 0.0, 7.3]);
    for r in 0..80 {
        for col in 0..160 {
            let (xc, yc) = (col as f32 + 0.5, r as f32 + 0.5);
            let inside = xc >= left && xc < right && yc >= top && yc < bottom;
            assert_eq!(canvas.label[r * 160 + col] == class::TRUCK, inside, "pixel ({col}, {r})");
            if inside {
                assert_eq!(canvas.color[r * 160 + col], [0.2, 0.4, 0.6]);
            }
        }
    }
    // The developed image of a look with every effect off is the canvas colour, quantised.
    let image = super::sensor::develop(&canvas, &look);
    let (col, r) = (((left + right) / 2.0) as u32, ((top + bottom) / 2.0) as u32);
    assert_eq!(image.get_pixel(col, r).0, [51, 102, 153]);
}

#[test]
fn dataset_splits_use_disjoint_streams_and_names() {
    let cfg = SynthConfig { len: 3, width: 64, height: 32, ..SynthConfig::default() };
    let train = SyntheticDataset::new(cfg.clone()).unwrap();
    let val = SyntheticDataset::new(SynthConfig { split: Split::Val, ..cfg.clone() }).unwrap();
    let (a, b) = (train.get(0).unwrap(), val.get(0).unwrap());
    assert_ne!(a.image, b.image);
    assert_eq!(a.name, "source_train_000000");
    assert_eq!(b.name, "source_val_000000");
    assert_eq!(train.name(2), "source_train_000002");
    assert_eq!(a.image, render(Domain::Source, 64, 32, 0, 0).image);
    assert!(train.has_labels() && train.len() == 3 && train.label_space().len() == 19);
    assert!(train.get(3).is_err());
}

#[test]
fn config_defaults_reject_unknown_fields_and_bad_sizes() {
    let cfg: SynthConfig = serde_json::from_str(r#"{"domain": "target", "split": "val"}"#).unwrap();
    assert_eq!(cfg, SynthConfig { domain: Domain::Target, split: Split::Val, ..SynthConfig::default() });
    assert_eq!((cfg.len, cfg.width, cfg.height, cfg.seed), (1000, 256, 128, 0));
    assert!(serde_json::from_str::<SynthConfig>(r#"{"domian": "target"}"#).is_err());
    assert!(serde_json::from_str::<SynthConfig>(r#"{"domain": "real"}"#).is_err());
    for (w, h) in [(0, 10), (10, 0), (MAX_SIDE + 1, 10)] {
        let err = SyntheticDataset::new(SynthConfig { width: w, height: h, ..SynthConfig::default() }).unwrap_err();
        let bad = if w == 10 { h } else { w };
        assert!(err.to_string().contains(&format!("{bad} is not between 1 and {MAX_SIDE} pixels")), "{err}");
    }
    assert_eq!("target".parse::<Domain>(), Ok(Domain::Target));
    assert!("both".parse::<Domain>().is_err());
}

//! Every run configuration shipped in `configs/` parses, validates, and says what its name says.

use std::path::Path;

use t2s_data::DatasetKind;
use t2s_train::config::Method;
use t2s_train::train::rcs_counts::rare_class_sampler;
use t2s_train::{open_set, RunConfig, SetRole};

fn configs() -> Vec<(String, RunConfig)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            out.push((path.file_stem().unwrap().to_string_lossy().into_owned(), cfg));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn shipped_configs_parse_and_match_their_names() {
    let all = configs();
    for (source, model) in [("gta2cs", "daformer"), ("gta2cs", "deeplabv2"), ("syn2cs", "daformer"), ("syn2cs", "deeplabv2")] {
        for (method, want) in [("source_only", Method::SourceOnly), ("dacs", Method::Dacs), ("t2s", Method::T2s)] {
            let name = format!("{source}_{model}_{method}");
            let (_, c) = all.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("configs/{name}.toml is missing"));
            assert_eq!(c.uda.method, want, "{name}");
            let (kind, resize) = if source == "gta2cs" { (DatasetKind::Gta5, [1280, 720]) } else { (DatasetKind::Synthia, [1280, 760]) };
            assert_eq!(c.data.source.file_kind(), Some(kind), "{name}");
            assert_eq!(c.data.source.resize, Some(resize), "{name}");
            assert_eq!(c.data.target.is_some(), want != Method::SourceOnly, "{name}");
            assert_eq!(c.data.eval[0].file_kind(), Some(DatasetKind::Cityscapes), "{name}");
            assert_eq!(c.eval.resize, Some([1024, 512]), "{name}");
            let preset = c.model.preset.as_deref().unwrap();
            assert!(preset.starts_with(model), "{name}: {preset}");
            // SYNTHIA runs report mIoU over 19, 16 and 13 classes.
            let protocols: Vec<String> = c.protocols(19).into_iter().map(|p| p.name).collect();
            let want_protocols = if source == "syn2cs" { vec!["mIoU19", "mIoU16", "mIoU13"] } else { vec!["mIoU19"] };
            assert_eq!(protocols, want_protocols, "{name}");
            // The anchors' recipe.
            assert_eq!((c.schedule.max_iters, c.data.batch_size, c.data.crop, c.optim.lr), (40_000, 2, [512, 512], 6e-5), "{name}");
        }
    }
    // The classic DeepLabV2 optimiser (AdaptSegNet/FDA/DACS): SGD, momentum, L2 decay, poly 0.9.
    let (_, sgd) = all.iter().find(|(n, _)| n == "gta2cs_deeplabv2_t2s_sgd").expect("SGD DeepLabV2 config");
    assert_eq!(sgd.optim.kind, t2s_train::config::OptimizerKind::Sgd);
    assert_eq!((sgd.optim.lr, sgd.optim.weight_decay, sgd.optim.momentum, sgd.schedule.power), (2.5e-4, 5e-4, 0.9, 0.9));
    assert_eq!((sgd.schedule.warmup_iters, sgd.optim.head_lr_mult), (0, 10.0));
    let (_, dg) = all.iter().find(|(n, _)| n == "dg_gta_daformer_source_only").expect("domain generalisation config");
    assert!(dg.data.target.is_none());
    let kinds: Vec<Option<DatasetKind>> = dg.data.eval.iter().map(|e| e.file_kind()).collect();
    assert_eq!(kinds, [DatasetKind::Cityscapes, DatasetKind::Bdd100k, DatasetKind::Mapillary].map(Some));
    // The T2S variant of domain generalisation: the same sets, no target.
    let (_, dg_t2s) = all.iter().find(|(n, _)| n == "dg_gta_daformer_t2s").expect("domain generalisation T2S config");
    assert_eq!((dg_t2s.uda.method, dg_t2s.data.target.is_none()), (Method::T2s, true));
    assert_eq!(dg_t2s.data.eval, dg.data.eval);
    // The GPU measurement configuration: the DAFormer T2S-DA recipe, synthetic data at the real
    // datasets' training sizes (GTA5 resized to 1280×720, Cityscapes to 1024×512).
    let (_, real) = all.iter().find(|(n, _)| n == "gta2cs_daformer_t2s").unwrap();
    let (_, syn) = all.iter().find(|(n, _)| n == "synthetic_daformer_t2s").expect("synthetic DAFormer config");
    assert_eq!(syn.model.preset, real.model.preset);
    assert_eq!((&syn.uda, &syn.t2s, &syn.optim, &syn.schedule), (&real.uda, &real.t2s, &real.optim, &real.schedule));
    assert_eq!((syn.data.batch_size, syn.data.crop), (real.data.batch_size, real.data.crop));
    let target = syn.data.target.as_ref().unwrap();
    let (source, target) = (syn.data.source.synthetic().expect("a synthetic source"), target.synthetic().expect("a synthetic target"));
    assert_eq!((source.size, target.size), (Some([1280, 720]), Some([1024, 512])));

    // HRDA (with MIC where named): the DAFormer T2S-DA recipe at HRDA's sizes (lhoyer/HRDA
    // gtaHR2csHR / synthiaHR2csHR: sources at twice DAFormer's size, Cityscapes at 2048×1024,
    // 1024×1024 crops with 512×512 detail crops, full-resolution evaluation in sliding windows).
    for source in ["gta2cs", "syn2cs"] {
        let (_, base) = all.iter().find(|(n, _)| *n == format!("{source}_daformer_t2s")).unwrap();
        for mic in [false, true] {
            let name = format!("{source}_hrda{}_t2s", if mic { "_mic" } else { "" });
            let (_, c) = all.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("configs/{name}.toml is missing"));
            let hrda = c.network().unwrap().unwrap().hrda.unwrap_or_else(|| panic!("{name}: no HRDA"));
            assert_eq!(
                (hrda.detail_crop, hrda.crop_divisible, hrda.detail_loss_weight, hrda.attention_classwise),
                ([512, 512], 8, 0.1, true)
            );
            assert_eq!((c.data.crop, c.uda.mic, c.uda.method), ([1024, 1024], mic, Method::T2s), "{name}");
            let twice = base.data.source.resize.map(|[w, h]| [2 * w, 2 * h]);
            assert_eq!((c.data.source.resize, c.data.target.as_ref().unwrap().resize), (twice, Some([2048, 1024])), "{name}");
            assert_eq!(c.eval.resize, None, "{name}");
            assert_eq!(
                (&c.t2s, &c.optim, &c.schedule, c.model.preset.as_deref()),
                (&base.t2s, &base.optim, &base.schedule, Some("daformer-mitb5"))
            );
            if mic {
                assert_eq!((c.uda.mic_block_size, c.uda.mic_mask_ratio, c.uda.mic_lambda, c.uda.mic_color_aug), (64, 0.7, 1.0, true));
            }
        }
    }
    // The CPU variant: HRDA, MIC and T2S-DA on the synthetic benchmark at twice the demo's size.
    let (_, cpu) = all.iter().find(|(n, _)| n == "synthetic_hrda_mic_t2s").expect("synthetic HRDA config");
    let hrda = cpu.network().unwrap().unwrap().hrda.expect("HRDA");
    assert_eq!((hrda.detail_crop, cpu.data.crop, cpu.uda.mic, cpu.uda.method), ([96, 192], [192, 384], true, Method::T2s));
}

/// `configs/synthetic_hrda_mic_t2s.toml` is, setting for setting, the run that docs/results.md
/// measures as `scripts/hrda_grid.tsv`'s `hrda_t2s_mic_384` row: the demo's configuration with
/// the row's `--set`s and the demo method `t2s_mic` (`uda.mic = true`), so the file trains what
/// the table reports.
#[test]
fn synthetic_hrda_config_is_the_measured_grid_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let grid = std::fs::read_to_string(root.join("scripts/hrda_grid.tsv")).unwrap();
    let row = grid.lines().find(|l| l.starts_with("hrda_t2s_mic_384\t")).expect("the grid's HRDA row");
    let mut sets: Vec<String> = row.split_whitespace().skip(1).filter(|kv| !kv.starts_with("method=")).map(str::to_string).collect();
    assert!(row.contains("method=t2s_mic"), "{row}");
    sets.push("uda.mic=true".into());
    let measured = RunConfig::load(&root.join("configs/synthetic_demo.toml"), &sets).unwrap_or_else(|e| panic!("{e}"));
    let shipped = RunConfig::load(&root.join("configs/synthetic_hrda_mic_t2s.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shipped, measured);
}

/// No shipped configuration starts with a warning. The only start-up warning is rare class
/// sampling's collapse (an effective pool under 5 % of the images), so:
/// - synthetic sources are rendered and counted (those above 256×128 on their first 40 images,
///   since rendering 400 images of 1280×720 takes minutes in a test build; the pool is a
///   fraction, measured at 170 of 400 for synthetic_daformer_t2s);
/// - file datasets are not here: their sampling must be DAFormer's own (T = 0.01, 3,000 pixels
///   at GTA5's and SYNTHIA's resized sizes, where DAFormer reports it working).
#[test]
fn every_shipped_config_starts_without_a_warning() {
    let mut counted = Vec::new();
    for (name, mut cfg) in configs() {
        if !cfg.data.rcs.enabled {
            continue;
        }
        let Some(synth) = cfg.data.source.synthetic() else {
            assert_eq!((cfg.data.rcs.temperature, cfg.data.rcs.min_pixels), (0.01, 3000), "configs/{name}.toml: not DAFormer's sampling");
            continue;
        };
        if synth.size.is_some_and(|[w, h]| w * h > 256 * 128) {
            if let t2s_train::config::SetReader::Synthetic(set) = &mut cfg.data.source.reader {
                set.len = Some(set.len.unwrap_or(40).min(40));
            }
        }
        let source = open_set(&cfg.data.source, SetRole::Source, "data.source").unwrap();
        let (_, notes, warning) = rare_class_sampler(&cfg, &source, 19).unwrap();
        assert!(warning.is_none(), "configs/{name}.toml: {warning:?} ({notes:?})");
        counted.push(name);
    }
    assert_eq!(counted, ["synthetic_daformer_t2s", "synthetic_demo", "synthetic_hrda_mic_t2s", "synthetic_source_only"]);
}

/// Every configuration says, with its reason, the precision of its passes (`[train] precision`)
/// and, where there is more than one student batch, how they run (`uda.student_passes`), rather
/// than leaving the reader to the defaults.
#[test]
fn every_config_says_its_precision_and_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for (name, cfg) in configs() {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let precision = table.get("train").and_then(|t| t.get("precision"));
        assert_eq!(precision.and_then(|p| p.as_str()), Some(cfg.train.precision.name()), "{name}: [train] precision");
        let passes = table.get("uda").and_then(|t| t.get("student_passes"));
        assert_eq!(passes.is_some(), cfg.uda.method != Method::SourceOnly, "{name}: uda.student_passes");
        let before = |key: &str| text.lines().take_while(|l| !l.starts_with(key)).last().unwrap_or("").to_string();
        assert!(before("precision =").starts_with('#'), "{name}: say why above `precision`");
    }
}

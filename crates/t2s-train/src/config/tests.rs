use super::*;

const MINIMAL: &str = r#"
[data.source]
kind = "synthetic"
domain = "source"
size = [1024, 512]
[data.target]
kind = "synthetic"
domain = "target"
"#;

/// [`RunConfig::parse`] with its error as the message the user reads.
fn parse_str(text: &str, overrides: &[String]) -> std::result::Result<RunConfig, String> {
    RunConfig::parse(text, overrides).map_err(|e| e.to_string())
}

#[test]
fn defaults_are_the_documented_recipe() {
    let c = parse_str(MINIMAL, &[]).unwrap();
    assert_eq!(c.uda.method, Method::T2s);
    assert_eq!(c.optim.lr, 6e-5);
    assert_eq!(c.optim.eps, 1e-8);
    assert_eq!(c.optim.betas, [0.9, 0.999]);
    assert_eq!(c.optim.weight_decay, 0.01);
    assert_eq!(c.schedule.max_iters, 40_000);
    assert_eq!(c.schedule.warmup_iters, 1_500);
    assert_eq!(c.t2s.queries, 4_864);
    assert_eq!(c.t2s.negatives, 50);
    assert_eq!(c.t2s.temperature, 0.2);
    assert_eq!(c.uda.pseudo_threshold, 0.968);
    assert_eq!(c.data.batch_size, 2);
    assert_eq!(c.data.crop, [512, 512]);
    // The resolved file parses back to the same configuration.
    assert_eq!(parse_str(&c.to_toml(), &[]).unwrap(), c);
}

#[test]
fn overrides_set_any_key() {
    let c = parse_str(
        MINIMAL,
        &["t2s.temperature=0.1".into(), "uda.method=dacs".into(), "data.crop=[256, 128]".into(), "run.name = smoke".into()],
    )
    .unwrap();
    assert_eq!(c.t2s.temperature, 0.1);
    assert_eq!(c.uda.method, Method::Dacs);
    assert_eq!(c.data.crop, [256, 128]);
    assert_eq!(c.run.name.as_deref(), Some("smoke"));
    assert!(parse_str(MINIMAL, &["nokey".into()]).unwrap_err().contains("section.key=value"));
    // Lists of tables are indexed; inline tables parse.
    let with_eval = format!("{MINIMAL}\n[[data.eval]]\nkind = \"cityscapes\"\nroot = \"a\"\n");
    let c = parse_str(
        &with_eval,
        &["data.eval.0.root=/data/cs".into(), r#"eval.inference={ mode = "slide", crop = [512, 512], stride = [341, 341] }"#.into()],
    )
    .unwrap();
    let SetReader::Files(files) = &c.data.eval[0].reader else { panic!("a file set") };
    assert_eq!(files.root, std::path::Path::new("/data/cs"));
    assert_eq!(c.eval.inference, crate::InferenceMode::Slide { crop: [512, 512], stride: [341, 341] });
    assert!(parse_str(&with_eval, &["data.eval.3.root=x".into()]).unwrap_err().contains("past the end"));
    assert!(parse_str(&with_eval, &["data.eval.root=x".into()]).unwrap_err().contains("index"));
}

#[test]
fn unknown_keys_are_named() {
    let e = parse_str(MINIMAL, &["t2s.temprature=0.1".into()]).unwrap_err();
    assert!(e.contains("unknown key `temprature`"), "{e}");
    let e = parse_str(&format!("{MINIMAL}\n[optim]\nbeta = 1\n"), &[]).unwrap_err();
    assert!(e.contains("unknown key `beta` in [optim]"), "{e}");
    let e = parse_str("[data.source]\nkind = \"gta6\"\n", &[]).unwrap_err();
    assert!(e.contains("unknown dataset kind \"gta6\""), "{e}");
}

#[test]
fn inconsistent_settings_say_what_to_fix() {
    let no_target = "[data.source]\nkind = \"synthetic\"\nsize = [1024, 512]\n";
    // The default method (t2s) without a target is domain generalisation; dacs needs one.
    assert!(parse_str(no_target, &[]).is_ok());
    assert!(parse_str(no_target, &["uda.method=dacs".into()]).unwrap_err().contains("uda.method = \"dacs\" needs a target set"));
    assert!(parse_str(no_target, &["uda.method=source_only".into()]).is_ok());
    let e = parse_str("[uda]\nmethod = \"source_only\"\n[data.source]\nkind = \"gta5\"\n", &[]).unwrap_err();
    assert!(e.contains("data.source: `root` is required for kind gta5"), "{e}");
    assert!(parse_str(MINIMAL, &["data.batch_size=0".into()]).unwrap_err().contains("data.batch_size must be at least 1"));
    assert!(parse_str(MINIMAL, &["t2s.fda_beta=0.9".into()]).unwrap_err().contains("t2s.fda_beta = 0.9 must be in [0, 0.5]"));
}

/// A ResNet of one bottleneck block per stage with the DeepLabV2 head, without a projection head.
pub(crate) const TINY_RESNET: &str = r#"
[model.network]
num_classes = 19
[model.network.backbone]
type = "resnet"
depth = 0
layers = [1, 1, 1, 1]
block = "bottleneck"
stem_width = 8
base_width = 4
[model.network.decode_head]
type = "deeplabv2"
"#;

#[test]
fn method_requirements_name_the_setting() {
    let plain = format!("{MINIMAL}{TINY_RESNET}");
    // `t2s` needs the projection head; `dacs` does not.
    let e = parse_str(&plain, &[]).unwrap_err();
    assert!(e.contains("uda.method = \"t2s\"") && e.contains("[model.network.projection]"), "{e}");
    assert!(parse_str(&plain, &["uda.method=dacs".into()]).is_ok());
    // With one, the crop must be a whole multiple of the embedding's stride (8 at output stride 8).
    let with_head = format!("{plain}[model.network.projection]\ndim = 8\n");
    assert!(parse_str(&with_head, &["data.crop=[512, 256]".into()]).is_ok());
    let e = parse_str(&with_head, &["data.crop=[512, 260]".into()]).unwrap_err();
    assert!(e.contains("data.crop = [512, 260]") && e.contains("stride 8"), "{e}");
    // A finer term resolution (`t2s.embedding_scale`) must divide the stride, and the crop its quotient.
    assert!(parse_str(&with_head, &["data.crop=[512, 260]".into(), "t2s.embedding_scale=2".into()]).is_ok());
    let e = parse_str(&with_head, &["t2s.embedding_scale=3".into()]).unwrap_err();
    assert!(e.starts_with("t2s.embedding_scale = 3 must divide the embedding's stride 8"), "{e}");
    // A preset that does not exist is named under [model].
    let e = parse_str(MINIMAL, &["model.preset=daformer-mitb9".into()]).unwrap_err();
    assert!(e.contains("[model]") && e.contains("daformer-mitb9"), "{e}");
}

#[test]
fn recomputation_is_off_by_default_and_needs_a_mit_backbone() {
    assert_eq!(parse_str(MINIMAL, &[]).unwrap().train.recompute, Recompute::None);
    let resnet = format!("{MINIMAL}{TINY_RESNET}");
    let e = parse_str(&resnet, &["uda.method=dacs".into(), "train.recompute=\"blocks\"".into()]).unwrap_err();
    assert!(e.starts_with("train.recompute = \"blocks\"") && e.contains("ResNet") && e.contains("\"none\""), "{e}");
    let mit = parse_str(MINIMAL, &["model.preset=daformer-mitb0".into(), "train.recompute=\"blocks\"".into()]).unwrap();
    assert_eq!(mit.train.recompute, Recompute::Blocks);
    let e = parse_str(MINIMAL, &["train.recompute=\"stages\"".into()]).unwrap_err();
    assert!(e.contains("stages") && e.contains("blocks"), "{e}");
}

#[test]
fn dataset_tables_are_checked_with_their_setting_name() {
    let with_eval = format!("{MINIMAL}\n[[data.eval]]\nkind = \"synthetic\"\ndomain = \"target\"\n");
    let e = parse_str(&with_eval, &["data.eval.0.root=/x".into()]).unwrap_err();
    assert!(e.starts_with("from --set data.eval.0.root=/x: data.eval[0]: ") && e.contains("no `root`"), "{e}");
    let e = parse_str(MINIMAL, &["data.target.kind=cityscapes".into()]).unwrap_err();
    assert!(
        e.starts_with("from --set data.target.kind=cityscapes: data.target: ") && e.contains("only apply to kind \"synthetic\""),
        "{e}"
    );
    // In the file itself: the setting's name alone.
    let bad = format!("{MINIMAL}\n[[data.eval]]\nkind = \"synthetic\"\ndomain = \"target\"\nroot = \"/x\"\n");
    assert!(parse_str(&bad, &[]).unwrap_err().starts_with("data.eval[0]: "));
}

#[test]
fn notes_say_what_the_settings_turn_off() {
    let c = parse_str("[data.source]\nkind = \"synthetic\"\nsize = [1024, 512]\n", &[]).unwrap();
    let notes = c.notes();
    assert!(notes[0].contains("domain generalisation"), "{notes:?}");
    assert!(notes[1].contains("feature distance is off"), "{notes:?}");
    assert_eq!(notes[2], "no [[data.eval]]: the run is never evaluated and writes no best.safetensors");
    // The rest with an evaluation set.
    let with_eval = format!("{MINIMAL}[[data.eval]]\nkind = \"synthetic\"\ndomain = \"target\"\n");

    assert!(!c.feature_distance_on());
    let c = parse_str(&with_eval, &["model.pretrained=w.pth".into()]).unwrap();
    assert!(c.notes().is_empty() && c.feature_distance_on());
    let c = parse_str(&with_eval, &["model.pretrained=w.pth".into(), "uda.method=source_only".into()]).unwrap();
    assert!(!c.feature_distance_on());
    // A warm-up before a method that does not adapt.
    let c = parse_str(&with_eval, &["model.pretrained=w.pth".into(), "uda.method=source_only".into(), "uda.adapt_from=10".into()]).unwrap();
    assert_eq!(c.notes(), ["uda.adapt_from = 10 has nothing to switch to with uda.method = \"source_only\""]);
    // A preset beside an explicit network is not used.
    let both = [
        "uda.method=dacs",
        "model.pretrained=w.pth",
        "model.preset=\"daformer-mitb0\"",
        "model.network={ num_classes = 19, backbone = { type = \"resnet\", depth = 50 }, decode_head = { type = \"deeplabv2\" } }",
    ];
    let c = parse_str(&with_eval, &both.map(String::from)).unwrap();
    assert_eq!(c.notes(), ["model.preset = \"daformer-mitb0\" is not used: [model.network] gives the network"]);
    // A warm-up longer than the run, a head warm-up over the whole adaptation.
    let c = parse_str(&with_eval, &["model.pretrained=w.pth".into(), "schedule.max_iters=1000".into()]).unwrap();
    assert_eq!(
        c.notes(),
        ["schedule.warmup_iters = 1500 is not below schedule.max_iters = 1000: the learning rate never reaches optim.lr"]
    );
    let sets = ["model.pretrained=w.pth", "uda.adapt_from=100", "schedule.max_iters=2000", "t2s.head_warmup=1900"];
    let c = parse_str(&with_eval, &sets.map(String::from)).unwrap();
    assert_eq!(
        c.notes(),
        ["t2s.head_warmup = 1900 covers all 1900 adaptation iterations: the contrastive term never reaches the backbone"]
    );
}

#[test]
fn a_warm_up_switches_methods_at_its_end() {
    let c = parse_str(MINIMAL, &["uda.adapt_from=200".into(), "schedule.max_iters=800".into()]).unwrap();
    let u = &c.uda;
    assert_eq!(
        (u.method_at(0), u.method_at(199), u.method_at(200), u.method_at(799)),
        (Method::SourceOnly, Method::SourceOnly, Method::T2s, Method::T2s)
    );
    assert_eq!((u.adapting_for(150), u.adapting_for(200), u.adapting_for(205)), (0, 0, 5));
    // The projection-head warm-up counts from the switch too.
    let c = parse_str(MINIMAL, &["uda.adapt_from=200".into(), "t2s.head_warmup=50".into()]).unwrap();
    assert_eq!((c.t2s_head_warming(199), c.t2s_head_warming(249), c.t2s_head_warming(250)), (true, true, false));
    let e = parse_str(MINIMAL, &["uda.adapt_from=800".into(), "schedule.max_iters=800".into()]).unwrap_err();
    assert_eq!(e, "uda.adapt_from = 800 leaves no iteration to adapt in: it must be below schedule.max_iters = 800");
}

#[test]
fn nonsense_values_are_refused_by_name() {
    let refused = |o: &str| parse_str(MINIMAL, &[o.to_string()]).unwrap_err();
    assert_eq!(refused("optim.lr=-1"), "optim.lr = -1 must be a positive number");
    assert_eq!(refused("optim.momentum=2"), "optim.momentum = 2 must be between 0 and 1");
    assert_eq!(refused("optim.weight_decay=-0.01"), "optim.weight_decay = -0.01 must be zero or positive");
    assert!(refused("schedule.min_lr=1").contains("above optim.lr"));
    assert_eq!(refused("t2s.temperature=inf"), "t2s.temperature = inf must be a positive number");
    assert_eq!(refused("t2s.unreliable_start=120"), "t2s.unreliable_start = 120 must be a percentage between 0 and 100");
    assert!(refused("t2s.distribution_momentum=1.5").starts_with("t2s.distribution_momentum = 1.5 must be in [0, 1)"));
    assert!(refused("t2s.prototype_momentum=-0.5").starts_with("t2s.prototype_momentum = -0.5 must be in [0, 1)"));
    // Inputs below what a MiT's spatial reductions take (29 pixels for SegFormer's).
    let mit = |o: &str| parse_str(MINIMAL, &["model.preset=\"daformer-mitb0\"".into(), o.into()]);
    let e = mit("data.crop=[16, 64]").unwrap_err();
    assert!(e.starts_with("data.crop = [16, 64] is too small") && e.contains("29×29"), "{e}");
    assert!(mit("data.crop=[32, 64]").is_ok());
    assert!(mit(r#"eval.inference={ mode = "slide", crop = [24, 24], stride = [16, 16] }"#)
        .unwrap_err()
        .starts_with("eval.inference.crop"));
    // The feature distance (with pretrained weights) needs whole blocks of the deepest feature.
    let fd = |crop: &str| {
        let sets = ["model.preset=\"deeplabv2-r18\"", "uda.method=\"dacs\"", "model.pretrained=\"w.pth\"", crop];
        parse_str(MINIMAL, &sets.map(String::from))
    };
    assert!(fd("data.crop=[700, 700]").unwrap_err().contains("not a whole multiple of 8"));
    assert!(fd("data.crop=[704, 704]").is_ok());
    // With HRDA the feature is the context pass's, at half the crop: a MiT's 32 becomes 64.
    let mit_fd = |hrda: bool, crop: &str| {
        let mut sets = vec!["model.preset=\"daformer-mitb0\"", "uda.method=\"dacs\"", "model.pretrained=\"w.pth\"", crop];
        if hrda {
            sets.push("model.hrda={detail_crop=[64,64]}");
        }
        parse_str(MINIMAL, &sets.into_iter().map(String::from).collect::<Vec<_>>())
    };
    assert!(mit_fd(false, "data.crop=[160, 160]").is_ok());
    assert!(mit_fd(true, "data.crop=[160, 160]").unwrap_err().contains("not a whole multiple of 64"));
    assert!(mit_fd(true, "data.crop=[192, 192]").is_ok());
    // HRDA's sliding windows are halved for the context pass too.
    let mit_hrda =
        |o: &str| parse_str(MINIMAL, &["model.preset=\"daformer-mitb0\"".into(), "model.hrda={detail_crop=[32,32]}".into(), o.into()]);
    let e = mit_hrda(r#"eval.inference={ mode = "slide", crop = [40, 40], stride = [20, 20] }"#).unwrap_err();
    assert!(e.starts_with("eval.inference.crop (halved for HRDA's context pass) = [20, 20]"), "{e}");
    assert_eq!(refused("run.keep_last=0"), "run.keep_last = 0 must be at least 1");
    assert_eq!(
        refused("schedule.max_iters=18446744073709551615"),
        "--set schedule.max_iters=18446744073709551615: 18446744073709551615 is outside the whole numbers a setting takes (-9223372036854775808 to 9223372036854775807)"
    );
    // A zero side shrank images to one pixel.
    assert_eq!(
        refused("eval.resize=[0, 0]"),
        "eval.resize = [0, 0] must be [long side, short side] with both above 0 (Cityscapes: [2048, 1024])"
    );
    assert!(refused("data.source.resize=[2048, 0]").starts_with("data.source.resize = [2048, 0] must be"));
    assert_eq!(
        refused("data.target.resize=[4294967295, 4294967295]"),
        "data.target.resize = [4294967295, 4294967295]: the smaller side must be at most 16384 pixels (Cityscapes: [2048, 1024])"
    );
    // One bound is enough: a large long side under a short one is a short-side resize.
    assert!(parse_str(MINIMAL, &["data.target.resize=[100000, 1024]".into()]).is_ok());
    assert!(refused("data.target.resize=[0, 1]").starts_with("data.target.resize = [0, 1] must be"));
    assert!(refused(r#"data.eval=[{ kind = "synthetic", domain = "target", resize = [0, 5] }]"#)
        .starts_with("data.eval[0].resize = [0, 5] must be"));
    assert_eq!(refused("data.prefetch=0"), "data.prefetch = 0 must be at least 1");
    assert_eq!(refused("run.log_interval=0"), "run.log_interval = 0 must be at least 1");
    // A β of 1 divides Adam's bias correction by zero; Nesterov needs momentum (torch's rules).
    assert_eq!(refused("optim.betas=[0.9, 1.0]"), "optim.betas[1] = 1 must be in [0, 1) (DAFormer's are [0.9, 0.999])");
    let sgd = |o: &str| parse_str(MINIMAL, &["optim.kind=\"sgd\"".into(), "optim.nesterov=true".into(), o.into()]);
    assert!(sgd("optim.momentum=0").unwrap_err().starts_with("optim.nesterov = true needs optim.momentum > 0 and optim.dampening = 0"));
    assert!(sgd("optim.momentum=0.9").is_ok());
    // Weights that would switch a term off unannounced, probabilities, fractions, momenta of 1.
    assert_eq!(refused("t2s.contrastive_weight=-1"), "t2s.contrastive_weight = -1 must be zero (off) or positive (T2S-DA's λ is 1)");
    assert!(refused("t2s.pseudo_target_ce=nan").starts_with("t2s.pseudo_target_ce = NaN must be zero (off)"));
    assert!(refused("uda.fdist_lambda=-0.005").starts_with("uda.fdist_lambda = -0.005 must be zero (off)"));
    assert!(refused("t2s.reweight_gamma=-2").starts_with("t2s.reweight_gamma = -2 must be zero (off)"));
    assert_eq!(refused("uda.pseudo_threshold=1.5"), "uda.pseudo_threshold = 1.5 must be a probability in [0, 1] (DAFormer's is 0.968)");
    assert!(refused("data.flip_prob=7").starts_with("data.flip_prob = 7 must be a probability"));
    assert!(refused("t2s.target_query_confidence=2").starts_with("t2s.target_query_confidence = 2 must be a probability"));
    assert!(refused("uda.blur_prob=-1").starts_with("uda.blur_prob"), "{}", refused("uda.blur_prob=-1"));
    assert!(refused("uda.color_jitter_strength=-3").starts_with("uda.color_jitter_strength"));
    assert!(refused("uda.pseudo_label_margin=[300, 300]").starts_with("uda.pseudo_label_margin = [300, 300] leaves no row"));
    assert!(parse_str(MINIMAL, &["uda.pseudo_label_margin=[300, 200]".into()]).is_ok());
    assert_eq!(refused("t2s.label_min_fraction=1.5"), "t2s.label_min_fraction = 1.5 must be a fraction in [0, 1] (T2S-DA's is 0.75)");
    assert!(refused("uda.fdist_scale_min_ratio=-1").starts_with("uda.fdist_scale_min_ratio = -1 must be a fraction"));
    assert_eq!(
        refused("t2s.prototype_momentum=1"),
        "t2s.prototype_momentum = 1 must be in [0, 1): 1 would never update it (T2S-DA's is 0.99)"
    );
    assert!(refused("t2s.reweight_momentum=1").starts_with("t2s.reweight_momentum = 1 must be in [0, 1)"));
    assert!(refused("t2s.reweight_clamp=[1, inf]").contains("the maximum must be finite"));
    assert!(refused("data.rcs.temperature=0").starts_with("data.rcs.temperature = 0 must be a positive number"));
    assert!(refused("t2s.queries=0").starts_with("t2s.queries = 0: the contrastive term needs queries"));
    assert!(parse_str(MINIMAL, &["t2s.queries=0".into(), "t2s.contrastive_weight=0".into()]).is_ok());
    let e = parse_str(MINIMAL, &["t2s.contrastive_weight=0".into(), "t2s.target_queries=10".into()]).unwrap_err();
    assert!(e.starts_with("t2s.target_queries = 10 draws queries"), "{e}");
    // Another method does not use them (the demo's source-only and dacs runs share its --set): a note.
    let c = parse_str(MINIMAL, &["uda.method=dacs".into(), "t2s.target_queries=10".into()]).unwrap();
    assert!(c.notes().contains(&"t2s.target_queries = 10 is for uda.method = \"t2s\": not used here".to_string()), "{:?}", c.notes());
    // MIC's grid of one block would mask whole images (round(512 / 400) = 1 both ways).
    let mic = |b: &str| parse_str(MINIMAL, &["uda.mic=true".into(), format!("uda.mic_block_size={b}")]);
    assert!(mic("400").unwrap_err().starts_with("uda.mic_block_size = 400 makes one block of data.crop = [512, 512]"));
    assert!(mic("256").is_ok());
    // Feature-distance classes are the network's.
    let fdist = |c: &str, pretrained: bool| {
        let mut sets = vec!["model.preset=\"deeplabv2-r18\"".to_string(), format!("uda.fdist_classes={c}")];
        sets.extend(pretrained.then(|| "model.pretrained=w.pth".to_string()));
        parse_str(MINIMAL, &sets)
    };
    assert!(fdist("[6, 19]", true)
        .unwrap_err()
        .starts_with("uda.fdist_classes holds 19, not a class of this network's 19 (train ids 0 to 18)"));
    assert!(fdist("[6, 18]", true).is_ok());
    // Off (no pretrained weights), the default Cityscapes ids do not stop a network of 5 classes.
    assert!(fdist("[6, 19]", false).is_ok());
    let five = "model.network={ num_classes = 5, backbone = { type = \"resnet\", depth = 50 }, decode_head = { type = \"deeplabv2\" } }";
    assert!(parse_str(MINIMAL, &[five.to_string(), "uda.method=dacs".into()]).is_ok());
    // The teacher is self-training's: source-only runs have none to evaluate.
    let teacher = r#"eval.weights="teacher""#.to_string();
    assert!(parse_str(MINIMAL, std::slice::from_ref(&teacher)).is_ok());
    let e = parse_str(MINIMAL, &[teacher, "uda.method=source_only".into()]).unwrap_err();
    assert!(e.starts_with("eval.weights = \"teacher\"") && e.contains("eval.weights = \"student\""), "{e}");
    assert!(refused("data.rcs.min_fraction=3000").starts_with("data.rcs.min_fraction = 3000 must be a share"));
    assert!(refused(r#"eval.inference={ mode = "slide", crop = [64, 64], stride = [65, 64] }"#).contains("is longer than the crop"));
    // Re-weighting that scales nothing: say so, unless it is off.
    assert!(refused("t2s.reweight_targets=[]").starts_with("t2s.reweight_targets is empty"));
    assert!(parse_str(MINIMAL, &["t2s.reweight_targets=[]".into(), "t2s.reweight=false".into()]).is_ok());
    // 256×128 synthetic images: a 512×512 crop would be three quarters padding.
    let small = |o: &str| parse_str(MINIMAL, &["data.source.size=[256, 128]".into(), o.into()]);
    let e = small("data.crop=[512, 512]").unwrap_err();
    assert!(e.contains("data.crop = [512, 512]") && e.contains("256×128") && e.contains("at most [128, 256]"), "{e}");
    // Larger than the images in one side only is mmseg's padding, and allowed.
    assert!(small("data.crop=[64, 512]").is_ok());
    // A resize is taken into account: [512, 256] keeps the ratio, so 512×256 images.
    assert!(small("data.source.resize=[512, 256]").is_ok());
}

#[test]
fn a_typo_in_a_file_is_placed_and_corrected() {
    let text = format!("{MINIMAL}[optim]\nlr = 1e-3\nweight_decy = 0.01\n");
    let e = parse_str(&text, &[]).unwrap_err();
    assert!(e.starts_with("unknown key `weight_decy` in [optim] at line 11: `weight_decy = 0.01`; did you mean `weight_decay`?"), "{e}");
    let e = parse_str(MINIMAL, &["optim.lrr=1".into()]).unwrap_err();
    assert!(e.starts_with("unknown key `lrr` (from --set optim.lrr=1); did you mean `lr`?"), "{e}");
}

#[test]
fn mic_is_off_by_default_and_checked_when_on() {
    let c = parse_str(MINIMAL, &[]).unwrap();
    assert!(!c.uda.mic);
    // MIC's defaults (lhoyer/MIC: 64-pixel blocks, 70 % masked, λ = 1, colour-augmented).
    assert_eq!((c.uda.mic_block_size, c.uda.mic_mask_ratio, c.uda.mic_lambda, c.uda.mic_color_aug), (64, 0.7, 1.0, true));
    let refused = |o: &[&str]| parse_str(MINIMAL, &o.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err();
    assert_eq!(refused(&["uda.mic=true", "uda.mic_mask_ratio=1"]), "uda.mic_mask_ratio: 1 must be in [0, 1) (MIC's is 0.7)");
    assert_eq!(refused(&["uda.mic=true", "uda.mic_block_size=0"]), "uda.mic_block_size: must be at least 1 pixel");
    assert_eq!(refused(&["uda.mic=true", "uda.mic_lambda=-1"]), "uda.mic_lambda = -1 must be zero or positive (MIC's is 1)");
    // Off, its settings are not checked.
    assert!(parse_str(MINIMAL, &["uda.mic_mask_ratio=1".into()]).is_ok());
    // It needs target images to mask.
    let source_alone = "[data.source]\nkind = \"synthetic\"\nsize = [1024, 512]\n";
    let e = parse_str(source_alone, &["uda.mic=true".into()]).unwrap_err();
    assert!(e.starts_with("uda.mic = true masks target images") && e.contains("[data.target]"), "{e}");
    // Source-only has no target pass: a note says MIC is off.
    let c = parse_str(MINIMAL, &["model.pretrained=w.pth".into(), "uda.method=source_only".into(), "uda.mic=true".into()]).unwrap();
    assert_eq!(c.notes()[0], "uda.mic = true masks target images, and uda.method = \"source_only\" has none: MIC is off");
}

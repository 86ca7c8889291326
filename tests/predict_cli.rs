//! End-to-end tests of `t2s predict` and `t2s import-weights` on generated files, and of the
//! wgpu backend against the CPU backend.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use t2s_model::{save_t2s, SegmentorConfig};

use common::t2s_program;

/// A small network (MiT with the DAFormer head and a projection head) with random weights,
/// saved as a t2s weight file.
fn tiny_model(dir: &Path) -> (PathBuf, SegmentorConfig) {
    tiny_model_of(dir, 5, "tiny.safetensors")
}

/// [`tiny_model`] with `classes` classes, saved as `file`.
fn tiny_model_of(dir: &Path, classes: usize, file: &str) -> (PathBuf, SegmentorConfig) {
    let toml = r#"
[backbone]
type = "mit"
embed_dims = [8, 16, 24, 32]
depths = [1, 1, 1, 1]
num_heads = [1, 2, 3, 4]
sr_ratios = [8, 4, 2, 1]
[decode_head]
type = "daformer"
embed_dim = 16
channels = 16
[projection]
dim = 8
"#;
    let cfg: SegmentorConfig = toml::from_str(&format!("num_classes = {classes}\n{toml}")).expect("tiny config parses");
    let net = cfg.init::<Flex>(&Default::default()).expect("tiny network builds");
    let path = dir.join(file);
    save_t2s(&net, &cfg, &path).expect("save");
    (path, cfg)
}

fn write_image(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x + y) * 3 % 256) as u8]));
    img.save(path).expect("write test image");
}

/// Reads a little-endian float32 `.npy` file: (shape, data).
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("npy exists");
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_text.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let data = bytes[10 + header_len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    (shape, data)
}

/// `t2s --device cpu predict --weights <weights> --input <input> --output <output>`, to which a
/// test adds its options.
fn predict(weights: &Path, input: &Path, output: &Path) -> Command {
    let mut cmd = t2s_program();
    cmd.args(["--device", "cpu", "predict", "--weights"]).arg(weights).arg("--input").arg(input).arg("--output").arg(output);
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("t2s runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "t2s failed: {stderr}");
    stderr
}

#[test]
fn predict_writes_labels_overlays_and_logits_at_any_size() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model(dir.path());
    let inputs = dir.path().join("images");
    std::fs::create_dir(&inputs).unwrap();
    // Odd sizes on purpose: nothing may assume multiples of the network's stride.
    write_image(&inputs.join("a.png"), 37, 23);
    write_image(&inputs.join("b.jpg"), 64, 50);
    let out = dir.path().join("out");
    run_ok(
        t2s_program()
            .args(["--device", "cpu", "predict", "--weights"])
            .arg(&weights)
            .arg("--input")
            .arg(&inputs)
            .arg("--output")
            .arg(&out)
            .arg("--save-logits"),
    );

    for (stem, w, h) in [("a", 37usize, 23usize), ("b", 64, 50)] {
        let labels = image::open(out.join(format!("{stem}_labelTrainIds.png"))).unwrap().to_luma8();
        assert_eq!(labels.dimensions(), (w as u32, h as u32));
        let (shape, logits) = read_npy(&out.join(format!("{stem}_logits.npy")));
        assert_eq!(shape, vec![5, h, w]);
        // The label map is the per-pixel argmax of the saved logits.
        for y in 0..h {
            for x in 0..w {
                let best = (0..5).max_by(|&a, &b| logits[a * h * w + y * w + x].total_cmp(&logits[b * h * w + y * w + x])).unwrap();
                assert_eq!(labels.get_pixel(x as u32, y as u32).0[0] as usize, best, "{stem} ({x},{y})");
            }
        }
        // The overlay is the 50/50 blend of the input and the Cityscapes colour of the label.
        let input = image::open(inputs.join(if stem == "a" { "a.png" } else { "b.jpg" })).unwrap().to_rgb8();
        let overlay = image::open(out.join(format!("{stem}_overlay.png"))).unwrap().to_rgb8();
        let palette = t2s_data::LabelSpace::cityscapes();
        let (x, y) = (3u32, 2u32);
        let c = palette.color(labels.get_pixel(x, y).0[0]);
        for k in 0..3 {
            let expect = (0.5 * c[k] as f32 + 0.5 * input.get_pixel(x, y).0[k] as f32).round() as u8;
            assert_eq!(overlay.get_pixel(x, y).0[k], expect);
        }
    }
}

/// `--label-ids`: every pixel of `<name>_labelIds.png` is the Cityscapes label id of its train id
/// in `<name>_labelTrainIds.png` (cityscapesScripts' labels.py, by hand); a network of other than
/// 19 classes is refused, naming the option.
#[test]
fn label_ids_for_the_cityscapes_benchmark_server() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model_of(dir.path(), 19, "city.safetensors");
    write_image(&dir.path().join("a.png"), 37, 23);
    let out = dir.path().join("out");
    run_ok(predict(&weights, &dir.path().join("a.png"), &out).arg("--label-ids"));
    let train_ids = image::open(out.join("a_labelTrainIds.png")).unwrap().to_luma8();
    let label_ids = image::open(out.join("a_labelIds.png")).unwrap().to_luma8();
    assert_eq!(label_ids.dimensions(), (37, 23));
    let by_hand = [7u8, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33];
    for (t, l) in train_ids.pixels().zip(label_ids.pixels()) {
        assert_eq!(l.0[0], by_hand[t.0[0] as usize], "train id {}", t.0[0]);
    }
    let (five, _) = tiny_model(dir.path());
    let o = predict(&five, &dir.path().join("a.png"), &dir.path().join("out5")).arg("--label-ids").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--label-ids writes Cityscapes label ids, for a network of Cityscapes' 19 classes; this one has 5"), "{err}");
}

/// `--precision bf16`: the network computes in bf16 (the logits differ from f32's) and its logits
/// stay within bf16's precision of the f32 ones (5 % of the largest; measured ~1 % in the model
/// crate's tests); an unknown precision is refused by name.
#[test]
fn predict_in_bf16_is_close_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model(dir.path());
    let input = dir.path().join("a.png");
    write_image(&input, 64, 48);
    let logits = |precision: &str| {
        let out = dir.path().join(precision);
        run_ok(
            t2s_program()
                .args(["--device", "cpu", "predict", "--precision", precision, "--save-logits", "--weights"])
                .arg(&weights)
                .arg("--input")
                .arg(&input)
                .arg("--output")
                .arg(&out),
        );
        read_npy(&out.join("a_logits.npy")).1
    };
    let (full, half) = (logits("f32"), logits("bf16"));
    let scale = full.iter().fold(0f32, |m, v| m.max(v.abs()));
    let gap = full.iter().zip(&half).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
    assert!(gap > 0.0 && gap < 0.05, "relative gap {gap}");
    let out =
        t2s_program().args(["--device", "cpu", "predict", "--precision", "fp16", "--input", "a.png", "--output", "o"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fp16") && err.contains("f32 or bf16"), "{err}");
}

/// Without XDG_RUNTIME_DIR (containers, batch jobs), probing the wgpu adapters does not make
/// Mesa print "XDG_RUNTIME_DIR is invalid or not set" (twice per probe before).
#[cfg(all(target_os = "linux", feature = "wgpu"))]
#[test]
fn wgpu_probes_are_quiet_without_a_runtime_dir() {
    let o = t2s_program()
        .env_remove("XDG_RUNTIME_DIR")
        .args(["--device", "wgpu", "predict", "--model", "deeplabv2-r18", "--input", "/no/such.png", "--output", "/no/out"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    if err.contains("no wgpu adapter") && std::env::var_os("T2S_REQUIRE_WGPU").is_none() {
        return;
    }
    assert!(err.contains("/no/such.png"), "the probe found an adapter and the command went on: {err}");
}

/// A folder with two images of the same stem and an unreadable file, predicted into itself,
/// twice: the two images keep separate outputs, the unreadable file is reported and skipped
/// (non-zero exit, the others written), and the second run does not take the first run's
/// outputs as inputs.
#[test]
fn predict_into_the_input_folder_skips_bad_files_and_keeps_names_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model(dir.path());
    let folder = dir.path().join("images");
    std::fs::create_dir(&folder).unwrap();
    write_image(&folder.join("a.png"), 40, 30);
    write_image(&folder.join("a.jpg"), 40, 30);
    std::fs::write(folder.join("broken.png"), b"not an image").unwrap();
    let predict = || {
        t2s_program()
            .args(["--device", "cpu", "predict", "--weights"])
            .arg(&weights)
            .arg("--input")
            .arg(&folder)
            .arg("--output")
            .arg(&folder)
            .output()
            .unwrap()
    };
    for round in 0..2 {
        let o = predict();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "round {round}: an unreadable input fails the command: {err}");
        assert!(err.contains("broken.png") && err.contains("1 of 3 image(s) could not be read"), "round {round}: {err}");
        assert!(err.contains("wrote predictions for 2 image(s)"), "round {round}: {err}");
        if round == 1 {
            assert!(err.contains("6 earlier prediction file(s)"), "{err}");
        }
    }
    let mut names: Vec<String> =
        std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let want = [
        "a.jpg",
        "a.png",
        "a_jpg_color.png",
        "a_jpg_labelTrainIds.png",
        "a_jpg_overlay.png",
        "a_png_color.png",
        "a_png_labelTrainIds.png",
        "a_png_overlay.png",
        "broken.png",
    ];
    assert_eq!(names, want);
}

/// `--model <t2s weight file>` alone predicts with that file's weights (as `--weights` does),
/// and `--model <run configuration>` with its `model.pretrained`; each says so instead of warning
/// about a random network.
#[test]
fn a_t2s_file_given_as_model_alone_gives_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model(dir.path());
    let input = dir.path().join("a.png");
    write_image(&input, 40, 30);
    let run = |option: &str, out: &str| {
        let stderr = run_ok(
            t2s_program()
                .args(["--device", "cpu", "predict", "--save-logits", option])
                .arg(&weights)
                .arg("--input")
                .arg(&input)
                .arg("--output")
                .arg(dir.path().join(out)),
        );
        (stderr, read_npy(&dir.path().join(out).join("a_logits.npy")).1)
    };
    let (said, by_model) = run("--model", "m");
    assert!(said.contains("(from --model): loaded ") && !said.contains("randomly initialised"), "{said}");
    let by_weights = run("--weights", "w").1;
    assert_eq!(by_model, by_weights);
    // A run configuration as --model: its network and its model.pretrained, as `t2s eval` takes them.
    let config = dir.path().join("run.toml");
    let network = toml::Value::try_from(t2s_model::read_t2s_config(&weights).unwrap().unwrap()).unwrap();
    let mut model = toml::Table::new();
    model.insert("pretrained".into(), toml::Value::String(weights.display().to_string()));
    model.insert("network".into(), network);
    std::fs::write(&config, toml::to_string(&toml::Table::from_iter([("model".to_string(), toml::Value::Table(model))])).unwrap()).unwrap();
    let stderr = run_ok(
        t2s_program()
            .args(["--device", "cpu", "predict", "--save-logits", "--model"])
            .arg(&config)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(dir.path().join("c")),
    );
    assert!(stderr.contains(&format!("{} (from --model): loaded ", weights.display())), "{stderr}");
    assert_eq!(read_npy(&dir.path().join("c").join("a_logits.npy")).1, by_weights);
}

/// An image whose whole-image pass would exceed `--memory-budget` is predicted in windows: the
/// same logits as asking for those windows (`--mode slide`), not those of the whole image. A JPEG
/// whose EXIF orientation says "turned 90°" is predicted upright, like the same pixels turned
/// by hand and saved as PNG.
#[test]
fn predict_cuts_large_images_into_windows_and_turns_exif_photos_upright() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model(dir.path());
    let input = dir.path().join("wide.png");
    write_image(&input, 200, 150);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let stderr = run_ok(predict(&weights, &input, &out).arg("--save-logits").args(extra));
        (stderr, read_npy(&out.join("wide_logits.npy")))
    };
    // The tiny network needs ~3 MB for the whole image and ~2 MB for a 128×128 window: a 1 MB
    // budget halves the window from 1024 down to its floor, 128, with half-window steps.
    let (note, (shape, auto)) = run("auto", &["--memory-budget", "0.001"]);
    assert_eq!(shape, vec![5, 150, 200]);
    assert!(
        note.contains("wide: the whole image would need more than --memory-budget") && note.contains("128×128 windows every 64×64"),
        "{note}"
    );
    let (_, (_, slide)) = run("slide", &["--mode", "slide", "--crop", "128,128", "--stride", "64"]);
    assert_eq!(auto, slide);
    let (quiet, (_, whole)) = run("whole", &[]);
    assert!(!quiet.contains("windows"), "{quiet}");
    let gap = whole.iter().zip(&slide).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(gap > 1e-3, "windows and the whole image gave the same logits ({gap})");

    // EXIF orientation 6 (the camera was turned 90° clockwise): a TIFF block with one IFD entry,
    // tag 0x0112, type SHORT, count 1, value 6.
    let exif: Vec<u8> = [&b"II*\0"[..], &[8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]].concat();
    let photo = dir.path().join("photos");
    std::fs::create_dir(&photo).unwrap();
    let pixels = image::RgbImage::from_fn(40, 24, |x, y| image::Rgb([(x * 6) as u8, (y * 10) as u8, 128]));
    let mut jpeg = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
    image::ImageEncoder::set_exif_metadata(&mut encoder, exif).unwrap();
    image::ImageEncoder::write_image(encoder, pixels.as_raw(), 40, 24, image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(photo.join("phone.jpg"), &jpeg).unwrap();
    // The same decoded pixels, turned by hand.
    let upright = image::imageops::rotate90(&image::load_from_memory(&jpeg).unwrap().to_rgb8());
    upright.save(photo.join("by_hand.png")).unwrap();
    let out = dir.path().join("photos_out");
    let stderr = run_ok(predict(&weights, &photo, &out).arg("--save-logits"));
    assert!(stderr.contains("note: phone: turned upright as its EXIF orientation says") && !stderr.contains("by_hand: turned"), "{stderr}");
    let labels = image::open(out.join("phone_labelTrainIds.png")).unwrap().to_luma8();
    assert_eq!(labels.dimensions(), (24, 40));
    let (phone, by_hand) = (read_npy(&out.join("phone_logits.npy")), read_npy(&out.join("by_hand_logits.npy")));
    assert_eq!(phone.0, vec![5, 40, 24]);
    assert_eq!(phone, by_hand);
}

#[test]
fn bad_inputs_fail_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = t2s_program()
        .args(["--device", "cpu", "predict", "--model", "no-such-preset", "--input", "x.png", "--output"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading --input: x.png: not found"), "{err}");

    write_image(&dir.path().join("i.png"), 8, 8);
    let out = t2s_program()
        .args(["--device", "cpu", "predict", "--model", "no-such-preset", "--input"])
        .arg(dir.path().join("i.png"))
        .arg("--output")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no-such-preset") && err.contains("daformer-mitb5"), "{err}");

    let out = t2s_program()
        .args(["--device", "tpu", "predict", "--model", "daformer-mitb0", "--input", "i.png", "--output", "o"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--device tpu: expected auto, cpu"), "{err}");

    // Window options that do not fit together.
    for (args, want) in [
        (&["--crop", "64,64"][..], "--crop and --stride apply to --mode slide (this command has --mode auto)"),
        (&["--mode", "slide"][..], "--mode slide needs --crop H,W"),
        (&["--mode", "slide", "--crop", "64,64", "--stride", "32,80"][..], "stride [32, 80] is longer than the crop [64, 64]"),
        (&["--memory-budget", "0"][..], "--memory-budget 0: give the memory"),
        (&["--mode", "whole", "--memory-budget", "4"][..], "--memory-budget applies to --mode auto (this command has --mode whole)"),
        (&["--mode", "slide", "--crop", "64x64"][..], "`64x64`: expected H,W in pixels"),
    ] {
        let out = t2s_program()
            .args(["--device", "cpu", "predict", "--model", "daformer-mitb0", "--input"])
            .arg(dir.path().join("i.png"))
            .arg("--output")
            .arg(dir.path().join("o"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }

    // `predict` of i.png with these flags, --weights and --output: its standard error, after
    // checking that it failed.
    let failed = |flags: &[&str], weights: &Path, output: &Path| -> String {
        let out = t2s_program()
            .args(["--device", "cpu", "predict"])
            .args(flags)
            .arg("--weights")
            .arg(weights)
            .arg("--input")
            .arg(dir.path().join("i.png"))
            .arg("--output")
            .arg(output)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{flags:?} {}: accepted", weights.display());
        err
    };
    let r18 = ["--model", "deeplabv2-r18"];
    let o = dir.path().join("o");

    // A t2s checkpoint of another network than --model names is refused, saying so.
    let (weights, _) = tiny_model(dir.path());
    let err = failed(&r18, &weights, &o);
    assert!(err.contains("tiny.safetensors was saved for another network than --model describes"), "{err}");
    // Paths of the wrong kind: a folder as weights, a configuration as weights, a file as --output.
    std::fs::write(dir.path().join("net.toml"), "[model]\npreset = \"deeplabv2-r18\"\n").unwrap();
    for (weights, output, want) in [
        (dir.path().to_path_buf(), o.clone(), "a folder; give a weight file"),
        (dir.path().join("net.toml"), o.clone(), "a .toml file describes a network: give it as --model"),
        (weights.clone(), dir.path().join("i.png"), "a file, not a folder; give a folder"),
    ] {
        let err = failed(&r18, &weights, &output);
        assert!(err.contains(want) && !err.contains("(os error 17): File exists"), "{want}: {err}");
    }
    // A key prefix selects inside a PyTorch checkpoint; a t2s file has none to select.
    let err = failed(&["--prefix", "state_dict.ema_model."], &weights, &o);
    assert!(err.contains("--prefix state_dict.ema_model.: ") && err.contains("is a t2s weight file"), "{err}");

    // A file that is no checkpoint: said once, without the pickle reader's repetitions.
    let err = failed(&r18, &dir.path().join("i.png"), &o);
    assert!(err.contains("not a readable PyTorch checkpoint"), "{err}");
    assert!(err.matches("corrupt").count() + err.matches("damaged").count() == 1 && !err.contains(".."), "{err}");
}

/// The same network gives the same logits on wgpu as on the CPU. On machines without a wgpu
/// adapter this is skipped, unless `T2S_REQUIRE_WGPU` is set (CI installs lavapipe and sets it).
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_logits_match_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = tiny_model(dir.path());
    let img = dir.path().join("w.png");
    write_image(&img, 40, 24);
    let mut logits = Vec::new();
    for device in ["cpu", "wgpu"] {
        let out_dir = dir.path().join(device);
        let mut cmd = t2s_program();
        if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_none() {
            // Autotuning benchmarks kernel variants on first use: minutes on a software Vulkan
            // driver, for no gain in a correctness test.
            cmd.env("CUBECL_AUTOTUNE_LEVEL", "minimal");
        }
        let out = cmd
            .args(["--device", device, "predict", "--weights"])
            .arg(&weights)
            .arg("--input")
            .arg(&img)
            .arg("--output")
            .arg(&out_dir)
            .arg("--save-logits")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if device == "wgpu" && !out.status.success() && err.contains("no wgpu adapter") && std::env::var_os("T2S_REQUIRE_WGPU").is_none() {
            eprintln!("skipped: {err}");
            return;
        }
        assert!(out.status.success(), "{device}: {err}");
        logits.push(read_npy(&out_dir.join("w_logits.npy")));
    }
    assert_eq!(logits[0].0, logits[1].0);
    let scale = logits[0].1.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let max_diff = logits[0].1.iter().zip(&logits[1].1).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(max_diff / scale < 1e-3, "wgpu vs cpu: max |diff| {max_diff} (scale {scale})");
}

/// `import-weights` converts a PyTorch checkpoint into a t2s file that predicts exactly what the
/// checkpoint itself predicts.
#[test]
fn imported_weights_predict_like_the_pytorch_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/t2s-model/tests/fixtures");
    let cfg = dir.path().join("net.toml");
    std::fs::write(
        &cfg,
        "[model]\nnum_classes = 5\n[model.backbone]\ntype = \"mit\"\nembed_dims = [8, 16, 24, 32]\ndepths = [2, 1, 1, 2]\n\
         num_heads = [1, 2, 3, 4]\nsr_ratios = [8, 4, 2, 1]\n[model.decode_head]\ntype = \"segformer\"\nembed_dim = 16\n",
    )
    .unwrap();
    let converted = dir.path().join("net.safetensors");
    let log = run_ok(
        t2s_program()
            .arg("import-weights")
            .arg("--model")
            .arg(&cfg)
            .arg("--weights")
            .arg(fixtures.join("mit.pth"))
            .args(["--prefix", "segformer."])
            .arg("--output")
            .arg(&converted),
    );
    assert!(log.contains("loaded"), "{log}");
    // The output may not be the checkpoint itself (it would be replaced by one sub-model).
    let pth = dir.path().join("copy.pth");
    std::fs::copy(fixtures.join("mit.pth"), &pth).unwrap();
    let o = t2s_program()
        .arg("import-weights")
        .arg("--model")
        .arg(&cfg)
        .arg("--weights")
        .arg(&pth)
        .args(["--prefix", "segformer."])
        .arg("--output")
        .arg(&pth)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("the checkpoint being imported"), "{err}");
    assert_eq!(std::fs::read(&pth).unwrap(), std::fs::read(fixtures.join("mit.pth")).unwrap());
    let img = dir.path().join("x.png");
    write_image(&img, 70, 45);
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    run_ok(
        t2s_program()
            .args(["--device", "cpu", "predict", "--model"])
            .arg(&cfg)
            .arg("--weights")
            .arg(fixtures.join("mit.pth"))
            .args(["--prefix", "segformer."])
            .arg("--input")
            .arg(&img)
            .arg("--output")
            .arg(&a)
            .arg("--save-logits"),
    );
    run_ok(
        t2s_program()
            .args(["--device", "cpu", "predict", "--weights"])
            .arg(&converted)
            .arg("--input")
            .arg(&img)
            .arg("--output")
            .arg(&b)
            .arg("--save-logits"),
    );
    assert_eq!(read_npy(&a.join("x_logits.npy")), read_npy(&b.join("x_logits.npy")));
    // Converting a t2s file again is refused.
    let out = t2s_program()
        .arg("import-weights")
        .arg("--model")
        .arg(&cfg)
        .arg("--weights")
        .arg(&converted)
        .arg("--output")
        .arg(dir.path().join("again.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already a t2s weight file"));
}

/// `--hrda-output detail`: an HRDA network (whole-image detail pass) predicts as the same
/// backbone and decode head without HRDA do; a network without HRDA is refused by name.
#[test]
fn the_hrda_detail_output_is_the_single_scale_networks_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let (_, single_cfg) = tiny_model(dir.path());
    let mut hrda_cfg = single_cfg.clone();
    hrda_cfg.hrda = Some(t2s_model::HrdaConfig { detail_crop: [32, 32], slide_inference: false, ..Default::default() });
    let net = hrda_cfg.init::<Flex>(&Default::default()).unwrap();
    let (hrda, single) = (dir.path().join("hrda.safetensors"), dir.path().join("single.safetensors"));
    save_t2s(&net, &hrda_cfg, &hrda).unwrap();
    let single_net = t2s_model::Segmentor { scale_attention: None, hrda: None, ..net };
    save_t2s(&single_net, &single_cfg, &single).unwrap();
    // Sides of at least 128, so that neither network pads the image (an HRDA network's
    // context pass needs twice the single-scale minimum).
    write_image(&dir.path().join("a.png"), 192, 128);
    let logits = |weights: &Path, out: &str, extra: &[&str]| {
        run_ok(predict(weights, &dir.path().join("a.png"), &dir.path().join(out)).args(["--mode", "whole", "--save-logits"]).args(extra));
        read_npy(&dir.path().join(out).join("a_logits.npy"))
    };
    let (shape, detail) = logits(&hrda, "detail", &["--hrda-output", "detail"]);
    let (_, expected) = logits(&single, "single", &[]);
    assert_eq!(shape, vec![5, 128, 192]);
    let diff = detail.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "largest difference {diff}");
    let (_, fused) = logits(&hrda, "fused", &[]);
    assert!(fused.iter().zip(&expected).any(|(a, b)| (a - b).abs() > 1e-3), "the fusion is not the detail pass alone");

    let o = predict(&single, &dir.path().join("a.png"), &dir.path().join("refused")).args(["--hrda-output", "context"]).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--hrda-output context") && e.contains("model.network.hrda"), "{e}");
}

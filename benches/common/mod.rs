//! Shared by the bench targets: criterion's configuration, and which GPU backends the benchmarks
//! can run on here. Not every bench uses every item.
#![allow(dead_code)]

use criterion::Criterion;

/// Criterion with a font for its plots. pprof's `criterion` feature (the dispatch bench's
/// flamegraphs) turns on criterion's plotters backend, and plotters is built here with `ab_glyph`
/// (t2s's own plots embed their font), which draws only registered fonts: without this every
/// bench panicked at its first plot (`FontUnavailable`). Criterion draws all text in sans-serif.
pub fn criterion() -> Criterion {
    static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
    // A second registration (several groups in one process) is harmless.
    let _ = plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT);
    Criterion::default()
}

#[cfg(feature = "cuda")]
use burn::tensor::{ElementConversion, Tensor};

/// CUDA's runtime panics without a driver or GPU; probe quietly, as `t2s --device` does.
#[cfg(feature = "cuda")]
pub fn has_cuda_device() -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = std::panic::catch_unwind(|| {
        Tensor::<burn::backend::Cuda, 1>::ones([4], &Default::default()).sum().into_scalar().elem::<f32>() == 4.0
    });
    std::panic::set_hook(hook);
    ok.unwrap_or(false)
}

/// Whether wgpu finds an adapter, and the benchmark is not told to skip it (`T2S_BENCH_WGPU=0`).
#[cfg(feature = "wgpu")]
pub fn wgpu_wanted() -> bool {
    if std::env::var("T2S_BENCH_WGPU").as_deref() == Ok("0") {
        return false;
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    !pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).is_empty()
}

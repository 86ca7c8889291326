//! Persistent caches of the GPU backends' compiled kernels and autotuning results.
//!
//! On CUDA, CubeCL compiles every kernel with NVRTC the first time it is used (about 2 s for a
//! matmul variant) and autotuning tries several variants per operation shape, so a first
//! prediction with a small network compiled 350 kernels in 150 s on an H100 (docs/gpu.md).
//! CubeCL keeps autotune results on disk by default but does not cache compiled PTX unless told
//! to; t2s turns both on under one folder so that the cost is paid once per machine, not per run.

use std::path::PathBuf;

use burn::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};

/// The folder for kernel caches: `$T2S_CACHE_DIR`, else `$XDG_CACHE_HOME/t2s/kernels`, else
/// `~/.cache/t2s/kernels`; `None` when no home folder is known (CubeCL's defaults apply).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("T2S_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("t2s").join("kernels"))
}

/// Installs CubeCL's configuration before any GPU work: the user's `cubecl.toml` / `burn.toml` and
/// `CUBECL_*` variables still apply, and where they leave the compiled-kernel cache off and the
/// autotune cache at its default, both go to [`cache_dir`]. Must run before the first GPU call.
pub fn configure() {
    let Some(dir) = cache_dir() else { return };
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if config.compilation.cache.is_none() {
        config.compilation.cache = Some(CacheConfig::File(dir.clone()));
    }
    if matches!(config.autotune.cache, CacheConfig::Target) {
        config.autotune.cache = CacheConfig::File(dir);
    }
    // `set` panics once the configuration has been read; `main` calls this before any GPU work.
    CubeClRuntimeConfig::set(config);
}

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
/// A configuration file that does not parse is an error naming it (CubeCL's own reader panics).
pub fn configure() -> anyhow::Result<()> {
    let mut config = user_config()?.override_from_env();
    if let Some(dir) = cache_dir() {
        if config.compilation.cache.is_none() {
            config.compilation.cache = Some(CacheConfig::File(dir.clone()));
        }
        if matches!(config.autotune.cache, CacheConfig::Target) {
            config.autotune.cache = CacheConfig::File(dir);
        }
    }
    // `set` panics once the configuration has been read; `main` calls this before any GPU work.
    CubeClRuntimeConfig::set(config);
    Ok(())
}

/// CubeCL's configuration as `CubeClRuntimeConfig::from_current_dir` finds it: the first of
/// `cubecl.toml`, `CubeCL.toml` (the whole file) or `burn.toml`, `Burn.toml` (its `[cubecl]`
/// table) in the current folder or the nearest parent holding one; the defaults without one.
fn user_config() -> anyhow::Result<CubeClRuntimeConfig> {
    match std::env::current_dir() {
        Ok(dir) => config_above(dir),
        Err(_) => Ok(CubeClRuntimeConfig::default()),
    }
}

/// [`user_config`] from `dir` up.
fn config_above(mut dir: PathBuf) -> anyhow::Result<CubeClRuntimeConfig> {
    loop {
        for (name, section) in [("cubecl.toml", None), ("CubeCL.toml", None), ("burn.toml", Some("cubecl")), ("Burn.toml", Some("cubecl"))]
        {
            let path = dir.join(name);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let bad = |e: toml1::de::Error| {
                anyhow::anyhow!(
                    "{}: not a CubeCL configuration; fix or remove the file (it configures the GPU backends): {}",
                    path.display(),
                    e.to_string().trim_end()
                )
            };
            let table: toml1::Table = toml1::from_str(&text).map_err(bad)?;
            let value = match section {
                None => toml1::Value::Table(table),
                Some(key) => match table.get(key) {
                    Some(v) => v.clone(),
                    None => continue,
                },
            };
            return value.try_into().map_err(bad);
        }
        if !dir.pop() {
            return Ok(CubeClRuntimeConfig::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written files are read as CubeCL reads them (a `burn.toml` without `[cubecl]` is passed
    /// over), and one that does not parse is named.
    #[test]
    fn reads_and_names_configuration_files() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(dir.path().join("a/burn.toml"), "[other]\nx = 1\n").unwrap();
        std::fs::write(dir.path().join("cubecl.toml"), "[autotune]\nlevel = \"full\"\n").unwrap();
        let found = config_above(inner.clone()).unwrap();
        assert!(matches!(found.autotune.level, burn::cubecl::config::autotune::AutotuneLevel::Full), "{:?}", found.autotune.level);

        std::fs::write(dir.path().join("a/burn.toml"), "[cubecl\n").unwrap();
        let err = config_above(inner).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not a CubeCL configuration; fix or remove the file", dir.path().join("a/burn.toml").display())),
            "{err}"
        );
        // TOML 1.1, which CubeCL's reader takes: a trailing comma in an inline table.
        std::fs::write(dir.path().join("a/burn.toml"), "[cubecl]\nautotune = { level = \"minimal\", }\n").unwrap();
        let found = config_above(dir.path().join("a/b")).unwrap();
        assert!(matches!(found.autotune.level, burn::cubecl::config::autotune::AutotuneLevel::Minimal), "{:?}", found.autotune.level);
    }
}

//! Settings the machine cannot hold are refused at the start of training, with the settings
//! named, instead of aborting on a failed allocation: buffers that alone exceed its memory
//! (`data.prefetch = 1e9` asked the loader's queue for 176 GB of slots; the figures are lower
//! bounds of what the settings allocate, so nothing that could run is refused), and decoding
//! threads far beyond its cores (100,000 ran out of memory maps for their stacks and aborted).

use crate::config::{Method, RunConfig};

/// Host bytes a loader holds per crop pixel: the normalised f32 image (12), the raw RGB bytes (3)
/// and the u8 label (1) of `t2s_data::Batch`.
const BATCH_BYTES_PER_PIXEL: u64 = 16;

/// Decoding threads per core above which `data.workers` is refused: threads beyond the cores
/// only add stacks, and any machine the loader could use has fewer than this many per core.
pub(super) const MAX_WORKERS_PER_CORE: usize = 8;

/// Refuses `data.workers` above [`MAX_WORKERS_PER_CORE`] × `cores`.
pub(super) fn check_workers(workers: usize, cores: usize) -> Result<(), String> {
    let most = MAX_WORKERS_PER_CORE * cores.max(1);
    if workers > most {
        return Err(format!(
            "data.workers = {workers} decoding threads is more than {MAX_WORKERS_PER_CORE} per core of this machine's {cores}: \
             threads beyond the cores add only memory; use 0 (one per core) or at most {most}"
        ));
    }
    Ok(())
}

/// The machine's physical memory in bytes, where the platform reports it.
pub(super) fn total_memory() -> Option<u64> {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    if !sysinfo::IS_SUPPORTED_SYSTEM {
        return None;
    }
    let system = System::new_with_specifics(RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()));
    Some(system.total_memory()).filter(|&b| b > 0)
}

/// Refuses `cfg` when the loaders' queues or the contrastive term's negative indices need more
/// than `total` bytes, for a network of `num_classes` classes.
pub(super) fn check(cfg: &RunConfig, num_classes: usize, total: u64) -> Result<(), String> {
    let have = gib(total as f64);
    let d = &cfg.data;
    let [h, w] = d.crop.map(f64::from);
    let loaders = if cfg.uda.method == Method::SourceOnly || d.target.is_none() { 1.0 } else { 2.0 };
    // The queue's batches and the one being assembled, per loader.
    let batches = (d.prefetch as f64 + 1.0) * loaders;
    let loader_bytes = batches * d.batch_size as f64 * h * w * BATCH_BYTES_PER_PIXEL as f64;
    if loader_bytes > total as f64 {
        return Err(format!(
            "data.prefetch = {} batches ahead, of data.batch_size = {} crops of {}×{} pixels, need at least {} of host memory \
             ({BATCH_BYTES_PER_PIXEL} bytes a pixel, {} loader(s)); this machine has {have}: lower data.prefetch (default 4) or data.batch_size",
            d.prefetch, d.batch_size, d.crop[0], d.crop[1], gib(loader_bytes), loaders
        ));
    }
    let t = &cfg.t2s;
    if cfg.uda.method == Method::T2s && t.contrastive_weight > 0.0 {
        // Every present class gets at least `min_queries_per_class` (the minimum wins over the total).
        let per_set = |n: usize| (n as f64).max(t.min_queries_per_class as f64 * num_classes as f64);
        let queries = per_set(t.queries) + if t.target_queries > 0 { per_set(t.target_queries) } else { 0.0 };
        let bytes = queries * t.negatives as f64 * std::mem::size_of::<usize>() as f64;
        if bytes > total as f64 {
            return Err(format!(
                "t2s.queries = {} (with t2s.min_queries_per_class = {} over {num_classes} classes{}) × t2s.negatives = {} \
                 negative indices need at least {} of host memory; this machine has {have}: lower them (defaults 4864, 16 and 50)",
                t.queries,
                t.min_queries_per_class,
                if t.target_queries > 0 { format!(", and t2s.target_queries = {}", t.target_queries) } else { String::new() },
                t.negatives,
                gib(bytes)
            ));
        }
    }
    Ok(())
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> RunConfig {
        RunConfig::parse(include_str!("../../../../configs/synthetic_demo.toml"), &[]).unwrap()
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_demo_fits_and_absurd_counts_do_not() {
        let cfg = demo();
        assert_eq!(check(&cfg, 19, GIB), Ok(()));

        // 5 batches (4 ahead + 1) × 2 loaders × 2 crops × 96·192 px × 16 B = 5.9 MB: fits 6 MB,
        // not 5 MB.
        let mut cfg = demo();
        cfg.t2s.contrastive_weight = 0.0;
        let loader = 5 * 2 * 2 * 96 * 192 * 16;
        assert_eq!((cfg.data.prefetch, cfg.data.batch_size, cfg.data.crop), (4, 2, [96, 192]));
        assert_eq!(check(&cfg, 19, loader), Ok(()));
        let err = check(&cfg, 19, loader - 1).unwrap_err();
        assert!(err.starts_with("data.prefetch = 4 batches ahead, of data.batch_size = 2 crops of 96×192"), "{err}");

        cfg.data.prefetch = 1_000_000_000;
        assert!(check(&cfg, 19, 64 * GIB).unwrap_err().contains("need at least 1098632.8 GiB"));
        cfg.data.prefetch = 4;
        cfg.data.batch_size = 100_000_000;
        assert!(check(&cfg, 19, 64 * GIB).is_err());
    }

    #[test]
    fn the_negative_indices_count_every_query_set() {
        let mut cfg = demo();
        let q = cfg.t2s.queries as u64;
        let room = 16 * GIB; // far above the loaders' few MB
        cfg.t2s.queries = 10_000_000_000;
        let err = check(&cfg, 19, room).unwrap_err();
        assert!(err.starts_with("t2s.queries = 10000000000 (with t2s.min_queries_per_class"), "{err}");
        // 1e10 × 50 × 8 B = 3725.3 GiB.
        assert!(err.contains("need at least 3725.3 GiB"), "{err}");

        // The minimum per class wins over the total: 19 × 1e9 queries.
        cfg.t2s.queries = q as usize;
        cfg.t2s.min_queries_per_class = 1_000_000_000;
        assert!(check(&cfg, 19, room).is_err());
        assert!(check(&cfg, 0, room).is_ok(), "no class, no minimum");
        cfg.t2s.min_queries_per_class = 16;

        // Target queries add their own set (the demo's 608 each, above 19 × 16); exactly at the
        // limit fits (9.1 GiB, far above the loaders' few MB).
        assert_eq!(q, 608);
        cfg.t2s.target_queries = q as usize;
        cfg.t2s.negatives = 1_000_000;
        let exact = 2 * q * 1_000_000 * 8;
        assert!(check(&cfg, 19, exact).is_ok());
        assert!(check(&cfg, 19, exact - 1).unwrap_err().contains(&format!("t2s.target_queries = {q}")));

        // Without the contrastive term nothing is sampled.
        cfg.t2s.negatives = usize::MAX;
        assert!(check(&cfg, 19, room).is_err());
        cfg.t2s.contrastive_weight = 0.0;
        assert!(check(&cfg, 19, room).is_ok());
    }

    #[test]
    fn workers_stop_at_eight_per_core() {
        assert_eq!(check_workers(0, 2), Ok(()));
        assert_eq!(check_workers(16, 2), Ok(()));
        let err = check_workers(17, 2).unwrap_err();
        assert!(err.starts_with("data.workers = 17 decoding threads is more than 8 per core of this machine's 2"), "{err}");
        assert!(err.ends_with("at most 16"), "{err}");
    }

    #[test]
    fn the_machine_reports_its_memory() {
        // Linux, macOS and Windows all report it; a machine running these tests has at least 256 MB.
        if sysinfo::IS_SUPPORTED_SYSTEM {
            assert!(total_memory().unwrap() > 256 << 20);
        }
    }
}

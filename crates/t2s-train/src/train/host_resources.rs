//! Settings the machine cannot hold are refused at the start of training, with the settings
//! named, instead of aborting on a failed allocation: buffers that alone exceed its memory
//! (`data.prefetch = 1e9` asked the loader's queue for 176 GB of slots; the figures are lower
//! bounds of what the settings allocate, so nothing that could run is refused), and thousands of
//! decoding threads (100,000 ran out of memory maps for their stacks and aborted).

use crate::config::{Method, RunConfig};

/// Host bytes a loader holds per crop pixel: the normalised f32 image (12) and the raw RGB bytes
/// (3) of `t2s_data::Batch`, and the u8 label (1) of a labelled set.
const IMAGE_BYTES_PER_PIXEL: f64 = 15.0;
const LABEL_BYTES_PER_PIXEL: f64 = 1.0;

/// The most decoding threads `data.workers` may ask for: far above what reading from slow
/// network storage wants (16–32), far below what a process's memory maps allow.
pub(super) const MAX_WORKERS: usize = 1024;

/// Decoding threads per core above which a run is warned: beyond the cores threads help only
/// while reads wait on storage.
pub(super) const WARN_WORKERS_PER_CORE: usize = 8;

/// Refuses `data.workers` above [`MAX_WORKERS`]; a warning above [`WARN_WORKERS_PER_CORE`] per
/// core of `cores` (when known; a CPU quota counts, as in a SLURM job or a container).
pub(super) fn check_workers(workers: usize, cores: Option<usize>) -> Result<Option<String>, String> {
    if workers > MAX_WORKERS {
        return Err(format!(
            "data.workers = {workers} decoding threads is more than the {MAX_WORKERS} a loader may start: use 0 (one per core) or fewer"
        ));
    }
    Ok(cores.filter(|&c| workers > WARN_WORKERS_PER_CORE * c).map(|c| {
        format!(
            "data.workers = {workers} is more than {WARN_WORKERS_PER_CORE} decoding threads per core of the {c} this process may use: \
             beyond the cores, threads help only while reads wait on storage"
        )
    }))
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
/// than `total` bytes.
pub(super) fn check(cfg: &RunConfig, total: u64) -> Result<(), String> {
    let have = gib(total as f64);
    let d = &cfg.data;
    let [h, w] = d.crop.map(f64::from);
    // The queue's batches and the one being assembled, per loader; the target's have no labels.
    let per_batch = d.batch_size as f64 * h * w;
    let target = cfg.uda.method != Method::SourceOnly && d.target.is_some();
    let per_pixel = IMAGE_BYTES_PER_PIXEL + LABEL_BYTES_PER_PIXEL + if target { IMAGE_BYTES_PER_PIXEL } else { 0.0 };
    let loader_bytes = (d.prefetch as f64 + 1.0) * per_batch * per_pixel;
    if loader_bytes > total as f64 {
        return Err(format!(
            "data.prefetch = {} batches ahead, of data.batch_size = {} crops of {}×{} pixels, need at least {} of host memory \
             ({per_pixel} bytes a pixel over the loaders); this machine has {have}: lower data.prefetch (default 4) or data.batch_size",
            d.prefetch,
            d.batch_size,
            d.crop[0],
            d.crop[1],
            gib(loader_bytes)
        ));
    }
    let t = &cfg.t2s;
    if cfg.uda.method == Method::T2s && t.contrastive_weight > 0.0 {
        // A query set has its total, or more: every present class (one at least) gets the minimum.
        let per_set = |n: usize| n.max(t.min_queries_per_class) as f64;
        let queries = per_set(t.queries) + if t.target_queries > 0 { per_set(t.target_queries) } else { 0.0 };
        let bytes = queries * t.negatives as f64 * std::mem::size_of::<usize>() as f64;
        if bytes > total as f64 {
            return Err(format!(
                "t2s.queries = {} (at least t2s.min_queries_per_class = {}{}) × t2s.negatives = {} negative indices need at least {} \
                 of host memory; this machine has {have}: lower them (defaults 4864, 16 and 50)",
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
        assert_eq!(check(&cfg, GIB), Ok(()));

        // 5 batches (4 ahead + 1) × 2 crops × 96·192 px × (16 B source + 15 B target): the exact
        // byte count fits, one byte less does not.
        let mut cfg = demo();
        cfg.t2s.contrastive_weight = 0.0;
        let loader = 5 * 2 * 96 * 192 * (16 + 15);
        assert_eq!((cfg.data.prefetch, cfg.data.batch_size, cfg.data.crop), (4, 2, [96, 192]));
        assert_eq!(check(&cfg, loader), Ok(()));
        let err = check(&cfg, loader - 1).unwrap_err();
        assert!(err.starts_with("data.prefetch = 4 batches ahead, of data.batch_size = 2 crops of 96×192"), "{err}");
        // Source-only reads no target: 16 B a pixel.
        cfg.uda.method = Method::SourceOnly;
        assert_eq!(check(&cfg, 5 * 2 * 96 * 192 * 16), Ok(()));
        assert!(check(&cfg, 5 * 2 * 96 * 192 * 16 - 1).is_err());
        cfg.uda.method = Method::T2s;

        // (1e9 + 1) × 2 × 96·192 × 31 B.
        cfg.data.prefetch = 1_000_000_000;
        assert!(check(&cfg, 64 * GIB).unwrap_err().contains("need at least 1064300.5 GiB"));
        cfg.data.prefetch = 4;
        cfg.data.batch_size = 100_000_000;
        assert!(check(&cfg, 64 * GIB).is_err());
    }

    #[test]
    fn the_negative_indices_count_every_query_set() {
        let mut cfg = demo();
        let q = cfg.t2s.queries as u64;
        let room = 16 * GIB; // far above the loaders' few MB
        cfg.t2s.queries = 10_000_000_000;
        let err = check(&cfg, room).unwrap_err();
        assert!(err.starts_with("t2s.queries = 10000000000 (at least t2s.min_queries_per_class"), "{err}");
        // 1e10 × 50 × 8 B = 3725.3 GiB.
        assert!(err.contains("need at least 3725.3 GiB"), "{err}");

        // A minimum per class above the total: at least the minimum.
        cfg.t2s.queries = q as usize;
        cfg.t2s.min_queries_per_class = 1_000_000_000;
        assert!(check(&cfg, room).is_err());
        cfg.t2s.min_queries_per_class = 16;

        // Target queries add their own set (the demo's 608 each); exactly at the limit fits
        // (9.1 GiB, far above the loaders' few MB).
        assert_eq!(q, 608);
        cfg.t2s.target_queries = q as usize;
        cfg.t2s.negatives = 1_000_000;
        let exact = 2 * q * 1_000_000 * 8;
        assert!(check(&cfg, exact).is_ok());
        assert!(check(&cfg, exact - 1).unwrap_err().contains(&format!("t2s.target_queries = {q}")));

        // Without the contrastive term nothing is sampled.
        cfg.t2s.negatives = usize::MAX;
        assert!(check(&cfg, room).is_err());
        cfg.t2s.contrastive_weight = 0.0;
        assert!(check(&cfg, room).is_ok());
    }

    #[test]
    fn workers_warn_above_eight_per_core_and_stop_above_1024() {
        assert_eq!(check_workers(0, Some(2)), Ok(None));
        assert_eq!(check_workers(16, Some(2)), Ok(None));
        let warning = check_workers(17, Some(2)).unwrap().unwrap();
        assert!(warning.starts_with("data.workers = 17 is more than 8 decoding threads per core of the 2"), "{warning}");
        // Unknown cores: no warning; the limit holds whatever the cores.
        assert_eq!(check_workers(1024, None), Ok(None));
        assert!(check_workers(1024, Some(1)).unwrap().is_some());
        let err = check_workers(1025, Some(512)).unwrap_err();
        assert!(err.starts_with("data.workers = 1025 decoding threads is more than the 1024"), "{err}");
    }

    #[test]
    fn the_machine_reports_its_memory() {
        // Linux, macOS and Windows all report it; a machine running these tests has at least 256 MB.
        if sysinfo::IS_SUPPORTED_SYSTEM {
            assert!(total_memory().unwrap() > 256 << 20);
        }
    }
}
